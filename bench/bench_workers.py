"""Memory per supervised worker (and per group task), beyond the asyncio task itself.

Run: ``.venv/bin/python bench/bench_workers.py [--n 10000] [--repeat 3]``

For each shape, N idle instances are started on a real asyncio loop and the heap
growth is measured with tracemalloc once every task is parked. The baseline is N bare
``asyncio.create_task(worker())`` of the very same idle worker coroutine, measured in
the same run, so "beyond the task" is ``(shape - baseline) / N``. Target: <= 2 KiB for
a supervised worker.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import tracemalloc
from collections.abc import Awaitable, Callable

import taskmill as tm

Starter = Callable[[asyncio.Event], Awaitable[list[asyncio.Task[None]]]]


async def idle(event: asyncio.Event) -> None:
    await event.wait()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def bare(event: asyncio.Event, n: int) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(idle(event)) for _ in range(n)]


async def supervised(event: asyncio.Event, n: int) -> list[asyncio.Task[None]]:
    policy = tm.RestartPolicy()
    worker = functools.partial(idle, event)  # shared, like the baseline's one function
    workers = [tm.supervise(worker, policy, name="w") for _ in range(n)]
    return [asyncio.create_task(w.run()) for w in workers]


async def declarative(event: asyncio.Event, n: int) -> list[asyncio.Task[None]]:
    policy = tm.RestartPolicy()
    workers = [
        tm.DeclarativeWorker(worker=lambda: idle(event), name="w", restart=policy) for _ in range(n)
    ]
    return [asyncio.create_task(w.run()) for w in workers]


async def group_tasks(event: asyncio.Event, n: int) -> list[asyncio.Task[None]]:
    group = tm.Group()
    handles = [group.spawn(f"t{i}", idle, event) for i in range(n)]
    _KEEP.append(group)
    return [h._task for h in handles if h._task is not None]


_KEEP: list[object] = []
SHAPES = {
    "bare asyncio task (baseline)": bare,
    "supervise(worker)": supervised,
    "DeclarativeWorker(name, restart)": declarative,
    "Group.spawn (one attempt)": group_tasks,
}


async def measure(
    shape: Callable[[asyncio.Event, int], Awaitable[list[asyncio.Task[None]]]], n: int
) -> float:
    event = asyncio.Event()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = await shape(event, n)
    await settle()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _KEEP.clear()
    return (after - before) / n


async def main(n: int, repeat: int) -> None:
    results: dict[str, float] = {}
    for name, shape in SHAPES.items():
        results[name] = statistics.median([await measure(shape, n) for _ in range(repeat)])
    base = results["bare asyncio task (baseline)"]
    print(f"N = {n} idle instances, median of {repeat} runs (tracemalloc)")
    print(f"{'shape':36} {'bytes each':>11} {'beyond task':>12}")
    for name, value in results.items():
        print(f"{name:36} {value:11.0f} {value - base:12.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.repeat))
