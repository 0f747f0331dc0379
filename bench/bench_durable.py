"""End-to-end DurableWorker throughput on SQLite, next to the store-level number.

Run: ``.venv/bin/python bench/bench_durable.py [--tasks 5000] [--concurrency 100] [--rounds 3]``

Single process, no-op ``async`` tasks registered in a :class:`taskmill.TaskRegistry`.
Per round and ``synchronous`` mode (``normal`` and ``full``, both WAL), a fresh database:

* worker: N payloads built and encoded by the real codec (envelope, JSON), pre-enqueued
  with ``enqueue_many`` (not timed); then a :class:`taskmill.DurableWorker`
  (``concurrency``) is started and the time until all N are acked ``succeeded`` is
  measured (decode, run, encode result, group-committed ack, lease bookkeeping);
* store: the same pre-filled database drained by ``claim(limit=100)`` + ``ack_many``
  only (no decode, no task run): the ceiling the worker works under.

Reports best-of-rounds tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import taskmill as tm
from taskmill.payloads import PayloadCodec
from taskmill.sqlite import NewTask, SqliteStore

registry = tm.TaskRegistry()


@registry.task(name="noop")
async def noop(i: int) -> None:
    return None


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _filled(path: Path, synchronous: str, count: int) -> SqliteStore:
    _fresh(path)
    store = await SqliteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    codec = PayloadCodec(registry)
    tasks = [
        NewTask(payload=codec.encode(codec.build(noop, (i,), {})), name="noop")
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        await store.enqueue_many(tasks[start : start + 1000])
    return store


async def worker_drain(path: Path, synchronous: str, count: int, concurrency: int) -> float:
    store = await _filled(path, synchronous, count)
    worker = tm.DurableWorker(store, registry, concurrency=concurrency, poll_interval=0.001)
    start = time.perf_counter()
    run = asyncio.create_task(worker.run())
    while worker.statistics().succeeded < count:  # noqa: ASYNC110 - the worker has no event
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await worker.stop()
    await run
    assert count == (await store.statistics()).by_status["succeeded"]
    await store.close()
    return count / elapsed


async def store_drain(path: Path, synchronous: str, count: int) -> float:
    store = await _filled(path, synchronous, count)
    start = time.perf_counter()
    while claims := await store.claim(["default"], worker="bench", limit=100):
        await store.ack_many([(claim.task_id, claim.token, None) for claim in claims])
    elapsed = time.perf_counter() - start
    assert count == (await store.statistics()).by_status["succeeded"]
    await store.close()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.db"
        print(f"tasks={args.tasks} concurrency={args.concurrency} rounds={args.rounds} (best)")
        for sync in ("normal", "full"):
            worker = max(
                [
                    await worker_drain(path, sync, args.tasks, args.concurrency)
                    for _ in range(args.rounds)
                ]
            )
            store = max([await store_drain(path, sync, args.tasks) for _ in range(args.rounds)])
            print(
                f"synchronous={sync:<6} worker end-to-end {worker:>9,.0f} tasks/s   "
                f"store claim+ack_many {store:>9,.0f} tasks/s   ratio {worker / store:.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
