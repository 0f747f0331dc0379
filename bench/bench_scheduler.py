"""Scheduler memory and precision: taskmill vs a plain heapq sleeper vs APScheduler 3.

Run: ``.venv/bin/python bench/bench_scheduler.py [--scheduled 1000000] [--precision 10000]``

1. Memory (tracemalloc, real asyncio loop): bytes per *queued* task (a manager
   whose only worker is busy) and per *scheduled* task (``delay`` in the future),
   with 1,000,000 of each by default. Target <= 1 KiB each. Insert cost per task
   for the first and the last 10% of inserts (GC paused), and the bare heap's push
   cost at 1k..1M entries, show O(log n) inserts (a sorted list would grow linearly).
2. Precision: 10,000 tasks at random times in a 2 s window; lateness = start
   time - due time. Twice: with the window starting 1 s after scheduling starts
   (every task is submitted before the window: this measures the scheduler), and
   with the window starting at once (scheduling overlaps the window: a task due at
   +2 ms but submitted at +150 ms is 148 ms late whatever the scheduler does, so
   this mostly measures how fast each one accepts 10,000 schedules). Contenders,
   same run: taskmill (``submit_after(delay, ...)``), a plain heapq sleeper (one
   coroutine, one heap, woken by earlier inserts) and APScheduler 3's
   ``AsyncIOScheduler`` with ``date`` jobs (``misfire_grace_time=None``). Every
   producer yields to the loop once per 100 submissions. Target p99 <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import heapq
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

import taskmill as tm
from taskmill._scheduler import TimerHeap

WINDOW = 2.0


async def noop() -> None:
    return None


# -- memory ----------------------------------------------------------------------------
async def memory(n: int, *, scheduled: bool) -> tuple[float, float, float]:
    """Return (bytes per task, us per insert in the first 10%, in the last 10%)."""
    return await _bytes_per_task(n, scheduled=scheduled), *await _insert_cost(n, scheduled)


async def _blocked_manager(*, scheduled: bool) -> tuple[tm.TaskManager, tm.TaskSubmitter]:
    """A manager whose only worker is busy, and a submitter for queued or delayed tasks."""
    mgr = tm.TaskManager(concurrency=1, queue_size=None)
    await mgr.start()
    _ = await mgr.submit(asyncio.sleep, 10_000)
    await asyncio.sleep(0)
    return mgr, mgr.with_options(delay=3600) if scheduled else mgr.with_options()


async def _bytes_per_task(n: int, *, scheduled: bool) -> float:
    """Memory the manager retains per queued/scheduled task (the caller keeps no handle)."""
    mgr, submitter = await _blocked_manager(scheduled=scheduled)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        _ = submitter.submit_nowait(noop)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    await mgr.stop(graceful=False)
    return used / n


async def _insert_cost(n: int, scheduled: bool) -> tuple[float, float]:  # noqa: FBT001
    """Microseconds per submit in the first and the last tenth of `n` inserts (GC paused)."""
    mgr, submitter = await _blocked_manager(scheduled=scheduled)
    gc.collect()
    gc.disable()
    rng = random.Random(2)
    tenth = n // 10
    timings = []
    for _ in range(10):
        subs = (
            [mgr.with_options(delay=rng.uniform(1, 7200)) for _ in range(16)]
            if scheduled
            else [submitter]
        )
        start = time.perf_counter()
        for i in range(tenth):
            _ = subs[i & 15 if scheduled else 0].submit_nowait(noop)
        timings.append((time.perf_counter() - start) / tenth * 1e6)
    gc.enable()
    await mgr.stop(graceful=False)
    return timings[0], timings[-1]


def heap_push_cost() -> None:
    """The pure TimerHeap: ns per push+pop at growing sizes (O(log n), GC paused)."""
    rng = random.Random(3)
    print("TimerHeap push at size n (ns/push, GC paused):", end="")
    gc.disable()
    for size in (1_000, 10_000, 100_000, 1_000_000):
        heap: TimerHeap[int] = TimerHeap()
        for i in range(size):
            heap.push(rng.random(), i)
        probes = [rng.random() for _ in range(100_000)]
        start = time.perf_counter()
        for i, when in enumerate(probes):
            heap.push(when, i)
        print(f"  n={size:,}: {(time.perf_counter() - start) / len(probes) * 1e9:.0f}", end="")
    gc.enable()
    print()


# -- precision -------------------------------------------------------------------------
def _offsets(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.0, WINDOW) for _ in range(n)]


async def precision_taskmill(offsets: list[float], lead: float) -> list[float]:
    loop = asyncio.get_running_loop()
    lateness: list[float] = []

    async def record(due: float) -> None:
        lateness.append(loop.time() - due)

    async with tm.TaskManager(concurrency=100, queue_size=None) as mgr:
        start = loop.time()
        for seq, offset in enumerate(offsets):
            due = start + lead + offset
            _ = await mgr.submit_after(max(0.0, due - loop.time()), record, due)
            if seq % 100 == 0:
                await asyncio.sleep(0)  # the producer yields now and then, like every case
        await mgr.join()
    return lateness


async def precision_heapq(offsets: list[float], lead: float) -> list[float]:
    loop = asyncio.get_running_loop()
    heap: list[tuple[float, int, Callable[[], None]]] = []
    wake = asyncio.Event()
    lateness: list[float] = []
    remaining = [len(offsets)]
    done = asyncio.Event()

    async def sleeper() -> None:
        while True:
            wake.clear()
            if heap and heap[0][0] <= loop.time():
                _, _, fn = heapq.heappop(heap)
                fn()
                continue
            timeout = None if not heap else heap[0][0] - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    def make(due: float) -> Callable[[], None]:
        def run() -> None:
            lateness.append(loop.time() - due)
            remaining[0] -= 1
            if not remaining[0]:
                done.set()

        return run

    task = asyncio.create_task(sleeper())
    start = loop.time()
    for seq, offset in enumerate(offsets):
        due = start + lead + offset
        earliest = not heap or due < heap[0][0]
        heapq.heappush(heap, (due, seq, make(due)))
        if earliest:
            wake.set()
        if seq % 100 == 0:
            await asyncio.sleep(0)
    await done.wait()
    task.cancel()
    return lateness


async def precision_apscheduler(offsets: list[float], lead: float) -> tuple[list[float], int]:
    lateness: list[float] = []
    done = asyncio.Event()
    remaining = [len(offsets)]

    async def record(due: float) -> None:
        lateness.append(time.time() - due)
        remaining[0] -= 1
        if not remaining[0]:
            done.set()

    scheduler = AsyncIOScheduler(job_defaults={"misfire_grace_time": None})
    scheduler.start()
    start = time.time()
    for seq, offset in enumerate(offsets):
        due = start + lead + offset
        when = dt.datetime.fromtimestamp(due, dt.UTC)
        scheduler.add_job(record, "date", run_date=when, args=[due])
        if seq % 100 == 0:
            await asyncio.sleep(0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), WINDOW + 60)
    scheduler.shutdown(wait=False)
    return lateness, remaining[0]


def _row(name: str, lateness: list[float], missed: int = 0) -> None:
    ms = sorted(x * 1000 for x in lateness)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<22}{len(ms):>8}{missed:>8}{p50:>11.3f}{p99:>11.3f}{ms[-1]:>11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scheduled", type=int, default=1_000_000)
    parser.add_argument("--precision", type=int, default=10_000)
    args = parser.parse_args()

    print(f"memory: {args.scheduled:,} tasks each (tracemalloc, per task retained by the manager)")
    for label, scheduled in (("queued", False), ("scheduled", True)):
        per_task, first, last = asyncio.run(memory(args.scheduled, scheduled=scheduled))
        print(
            f"  {label:<10} {per_task:>7.0f} B/task (target <= 1024)   insert: "
            f"{first:.2f} us/task in the first 10%, {last:.2f} us/task in the last 10%"
        )

    heap_push_cost()

    offsets = _offsets(args.precision, seed=1)
    for lead, title in ((1.0, "scheduled 1 s ahead"), (0.0, "scheduling overlaps the window")):
        print(
            f"\nprecision: {args.precision:,} tasks at random times in a {WINDOW:g} s window, "
            f"{title} (lateness in ms)"
        )
        print(f"{'scheduler':<22}{'ran':>8}{'missed':>8}{'p50':>11}{'p99':>11}{'max':>11}")
        _row("taskmill", asyncio.run(precision_taskmill(offsets, lead)))
        _row("plain heapq sleeper", asyncio.run(precision_heapq(offsets, lead)))
        lateness, missed = asyncio.run(precision_apscheduler(offsets, lead))
        _row("APScheduler 3", lateness, missed)


if __name__ == "__main__":
    main()
