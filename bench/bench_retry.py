"""Success-path overhead of taskmill's retry drivers vs a plain call, tenacity and stamina.

Run: ``.venv/bin/python bench/bench_retry.py [--iterations 200000] [--repeat 5] [--uvloop]``

Everything is measured in one process, in the same run, on a real asyncio loop (not
virtual time): per-call nanoseconds, overhead over the plain call, and the ratio of
taskmill's overhead to each peer's (target <= 1.0; absolute target < 2000 ns).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import stamina
import tenacity

import taskmill as tm

POLICY = tm.Retry(max_attempts=3)


async def work() -> int:
    return 1


def work_sync() -> int:
    return 1


tm_deco = tm.retry(POLICY)(work)
tm_deco_sync = tm.retry(POLICY)(work_sync)
_TENACITY = {
    "stop": tenacity.stop_after_attempt(3),
    "wait": tenacity.wait_random_exponential(multiplier=0.1, max=10),
}
ten_deco = tenacity.retry(**_TENACITY)(work)  # type: ignore[call-overload]
ten_deco_sync = tenacity.retry(**_TENACITY)(work_sync)  # type: ignore[call-overload]
st_deco = stamina.retry(on=Exception, attempts=3)(work)
st_deco_sync = stamina.retry(on=Exception, attempts=3)(work_sync)


# One loop per case, so no lambda or indirection is charged to anyone.
async def a_plain(n: int) -> None:
    for _ in range(n):
        await work()


async def a_tm_run(n: int) -> None:
    for _ in range(n):
        await tm.run(work)


async def a_tm_policy_run(n: int) -> None:
    for _ in range(n):
        await POLICY.run(work)


async def a_tm_deco(n: int) -> None:
    for _ in range(n):
        await tm_deco()


async def a_ten_deco(n: int) -> None:
    for _ in range(n):
        await ten_deco()


async def a_ten_async_retrying(n: int) -> None:
    for _ in range(n):
        async for attempt in tenacity.AsyncRetrying(**_TENACITY):  # type: ignore[arg-type]
            with attempt:
                await work()


async def a_st_deco(n: int) -> None:
    for _ in range(n):
        await st_deco()


def s_plain(n: int) -> None:
    for _ in range(n):
        work_sync()


def s_tm_deco(n: int) -> None:
    for _ in range(n):
        tm_deco_sync()


def s_tm_run_sync(n: int) -> None:
    for _ in range(n):
        POLICY.run_sync(work_sync)


def s_ten_deco(n: int) -> None:
    for _ in range(n):
        ten_deco_sync()


def s_st_deco(n: int) -> None:
    for _ in range(n):
        st_deco_sync()


ASYNC_CASES: dict[str, Callable[[int], Awaitable[None]]] = {
    "plain await fn()": a_plain,
    "taskmill await run(fn)": a_tm_run,
    "taskmill await policy.run(fn)": a_tm_policy_run,
    "taskmill @retry async": a_tm_deco,
    "tenacity @retry async": a_ten_deco,
    "tenacity AsyncRetrying loop": a_ten_async_retrying,
    "stamina @retry async": a_st_deco,
}
SYNC_CASES: dict[str, Callable[[int], None]] = {
    "plain fn()": s_plain,
    "taskmill @retry sync": s_tm_deco,
    "taskmill policy.run_sync(fn)": s_tm_run_sync,
    "tenacity @retry sync": s_ten_deco,
    "stamina @retry sync": s_st_deco,
}
TASKMILL_PREFIX = "taskmill"


async def measure_async(n: int, repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(repeat):  # interleave the cases so drift hits all alike
        for name, case in ASYNC_CASES.items():
            start = time.perf_counter()
            await case(n)
            elapsed = (time.perf_counter() - start) / n * 1e9
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def measure_sync(n: int, repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, case in SYNC_CASES.items():
            start = time.perf_counter()
            case(n)
            elapsed = (time.perf_counter() - start) / n * 1e9
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def report(title: str, results: dict[str, float]) -> bool:
    """Print one table; return whether every taskmill row meets both targets."""
    names = list(results)
    plain = results[names[0]]
    peers = {
        k: v - plain for k, v in results.items() if not k.startswith((TASKMILL_PREFIX, "plain"))
    }
    print(f"\n{title}")
    header = f"{'case':<32}{'ns/call':>10}{'overhead ns':>13}"
    header += "".join(f"{'vs ' + k.split()[0] + ' ' + k.split()[-1]:>22}" for k in peers)
    print(header)
    ok = True
    for name, value in results.items():
        overhead = value - plain
        line = f"{name:<32}{value:>10.0f}{overhead:>13.0f}"
        if name.startswith(TASKMILL_PREFIX):
            ratios = [overhead / peer for peer in peers.values()]
            line += "".join(f"{ratio:>22.3f}" for ratio in ratios)
            ok = ok and overhead < 2000 and all(r <= 1.0 for r in ratios)
        print(line)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true", help="run the async cases on uvloop")
    args = parser.parse_args()
    stamina.set_testing(False)  # stamina is active by default; make sure of it
    if args.uvloop:
        import uvloop

        async_results = uvloop.run(measure_async(args.iterations, args.repeat))
    else:
        async_results = asyncio.run(measure_async(args.iterations, args.repeat))
    sync_results = measure_sync(args.iterations, args.repeat)
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(f"iterations={args.iterations} best of {args.repeat}; loop={loop_name}")
    ok = report("async (success path, 3 attempts allowed)", async_results)
    ok = report("sync (success path, 3 attempts allowed)", sync_results) and ok
    print(f"\ntargets (overhead < 2000 ns and <= every peer): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
