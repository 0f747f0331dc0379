"""TaskManager throughput against the floors it must beat, measured in one process.

Run: ``.venv/bin/python bench/bench_manager.py [--tasks 100000] [--rounds 5] [--no-uvloop]``

Every case pushes the same number of tasks through a pool of 100 and collects one
result per task; all cases run in the same process, interleaved round by round,
on a real event loop (default asyncio, then uvloop), with a no-op body and with a
body that yields once (``await asyncio.sleep(0)``):

* ``pq-floor``: an ``asyncio.PriorityQueue`` fed to 100 long-lived worker
  coroutines (the floor for a priority-ordered pool);
* ``taskgroup``: ``asyncio.TaskGroup`` with a ``Semaphore(100)`` acquired before
  each ``create_task``;
* ``aiojobs``: ``aiojobs.Scheduler(limit=100)``, one ``spawn`` + ``wait`` per task;
* ``taskmill``: ``TaskManager(concurrency=100)`` with default settings, a handle
  per task, ``await mgr.join()`` then ``handle.result()`` for each;
* ``taskmill-await``: the same, awaiting every handle instead of ``join()``.

Targets (issue 4): taskmill >= 50% of pq-floor and >= 2x aiojobs, both loops.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiojobs
import uvloop

import taskmill as tm

POOL = 100
Body = Callable[[], Coroutine[Any, Any, int]]
Case = Callable[[int, Body], Coroutine[Any, Any, float]]


async def noop() -> int:
    return 1


async def yield_once() -> int:
    await asyncio.sleep(0)
    return 1


async def pq_floor(n: int, body: Body) -> float:
    queue: asyncio.PriorityQueue[tuple[int, int, Body]] = asyncio.PriorityQueue()
    results = [0] * n

    async def worker() -> None:
        while True:
            _, index, fn = await queue.get()
            results[index] = await fn()
            queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(POOL)]
    start = time.perf_counter()
    for index in range(n):
        await queue.put((0, index, body))
    await queue.join()
    elapsed = time.perf_counter() - start
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert sum(results) == n
    return elapsed


async def taskgroup(n: int, body: Body) -> float:
    semaphore = asyncio.Semaphore(POOL)

    async def run() -> int:
        try:
            return await body()
        finally:
            semaphore.release()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = []
        for _ in range(n):
            await semaphore.acquire()
            tasks.append(group.create_task(run()))
    total = sum(task.result() for task in tasks)
    elapsed = time.perf_counter() - start
    assert total == n
    return elapsed


async def aiojobs_case(n: int, body: Body) -> float:
    start = time.perf_counter()
    async with aiojobs.Scheduler(limit=POOL, pending_limit=n) as scheduler:
        jobs = [await scheduler.spawn(body()) for _ in range(n)]
        total = 0
        for job in jobs:
            total += await job.wait()
    elapsed = time.perf_counter() - start
    assert total == n
    return elapsed


async def taskmill_join(n: int, body: Body) -> float:
    async with tm.TaskManager(concurrency=POOL) as mgr:
        start = time.perf_counter()
        handles = [await mgr.submit(body) for _ in range(n)]
        await mgr.join()
        total = sum(handle.result() for handle in handles)
        elapsed = time.perf_counter() - start
    assert total == n
    return elapsed


async def taskmill_await(n: int, body: Body) -> float:
    async with tm.TaskManager(concurrency=POOL) as mgr:
        start = time.perf_counter()
        handles = [await mgr.submit(body) for _ in range(n)]
        total = 0
        for handle in handles:
            total += await handle
        elapsed = time.perf_counter() - start
    assert total == n
    return elapsed


CASES: dict[str, Case] = {
    "pq-floor": pq_floor,
    "taskgroup": taskgroup,
    "aiojobs": aiojobs_case,
    "taskmill": taskmill_join,
    "taskmill-await": taskmill_await,
}


def measure(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None, body: Body, n: int, rounds: int
) -> dict[str, list[float]]:
    """Run every case `rounds` times, interleaved; return tasks/s per run."""
    rates: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, case in CASES.items():
            gc.collect()
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                rates[name].append(n / runner.run(case(n, body)))
    return rates


def report(title: str, rates: dict[str, list[float]]) -> bool:
    best = {name: max(values) for name, values in rates.items()}
    print(f"\n{title}")
    print(f"{'case':<16}{'best tasks/s':>14}{'median':>12}{'vs pq-floor':>13}{'vs aiojobs':>12}")
    for name, values in rates.items():
        print(
            f"{name:<16}{best[name]:>14,.0f}{statistics.median(values):>12,.0f}"
            f"{best[name] / best['pq-floor']:>13.2f}{best[name] / best['aiojobs']:>12.2f}"
        )
    ok = best["taskmill"] >= 0.5 * best["pq-floor"] and best["taskmill"] >= 2 * best["aiojobs"]
    print(
        f"targets (taskmill >= 0.50 x pq-floor and >= 2.00 x aiojobs): {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None}
    if not args.no_uvloop:
        loops["uvloop"] = uvloop.new_event_loop
    print(f"{args.tasks:,} tasks, pool {POOL}, best of {args.rounds} interleaved rounds")
    for loop_name, factory in loops.items():
        for body_name, body in (("no-op", noop), ("sleep(0)", yield_once)):
            rates = measure(factory, body, args.tasks, args.rounds)
            report(f"[{loop_name}] body: {body_name}", rates)


if __name__ == "__main__":
    main()
