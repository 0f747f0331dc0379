"""SQLite store throughput next to huey's SQLite storage, measured in the same run.

Run: ``.venv/bin/python bench/bench_sqlite.py [--tasks 20000] [--single 2000] [--rounds 3]``

Single process, no-op tasks, a fresh database file per case under ``--dir`` (default:
a temporary directory on the same disk as /tmp). For ``synchronous`` = ``full`` and
``normal`` (both WAL) it measures:

* submit, one at a time: ``await store.enqueue(...)`` in a loop (one transaction each);
* submit, batched: ``await store.enqueue_many(...)`` with 100 tasks per transaction;
* process, one at a time: ``claim(limit=1)`` + ``ack`` per task (two transactions each);
* process, batched: ``claim(limit=100)`` + ``ack_many`` of the batch (group commit).

huey (``SqliteHuey``, same run, same disk) with ``fsync=True`` (``synchronous=FULL``)
and ``fsync=False`` (``synchronous=OFF``: huey offers no NORMAL):

* submit: calling a ``@huey.task`` (pickles the call, one INSERT each; no batch API);
* process: ``huey.dequeue()`` + ``huey.execute(task)`` (the consumer's core, result
  stored), and storage only: ``storage.dequeue()`` + ``storage.put_data()``.

huey deletes a task when it dequeues it (at-most-once: a crash after dequeue loses
it); taskmill claims with a lease and a fencing token and acks in a second write,
so the two do different amounts of work per task. Reports best-of-rounds tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from taskmill.sqlite import NewTask, SqliteStore

BATCH = 100


def _fresh(directory: Path, name: str) -> Path:
    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


# -- taskmill ---------------------------------------------------------------------------
async def _filled(path: Path, synchronous: str, count: int) -> SqliteStore:
    store = await SqliteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    for start in range(0, count, 1000):
        size = min(1000, count - start)
        await store.enqueue_many([NewTask(payload=b"{}", name="noop")] * size)
    return store


async def tm_submit_single(path: Path, synchronous: str, count: int) -> float:
    store = await SqliteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(count):
        await store.enqueue(b"{}", name="noop")
    elapsed = time.perf_counter() - start
    await store.close()
    return count / elapsed


async def tm_submit_batched(path: Path, synchronous: str, count: int) -> float:
    store = await SqliteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    task = NewTask(payload=b"{}", name="noop")
    start = time.perf_counter()
    for _ in range(0, count, BATCH):
        await store.enqueue_many([task] * BATCH)
    elapsed = time.perf_counter() - start
    await store.close()
    return count / elapsed


async def tm_process_single(path: Path, synchronous: str, count: int) -> float:
    store = await _filled(path, synchronous, count)
    start = time.perf_counter()
    while claims := await store.claim(["default"], worker="bench"):
        await store.ack(claims[0].task_id, claims[0].token, None)
    elapsed = time.perf_counter() - start
    assert count == (await store.statistics()).by_status["succeeded"]
    await store.close()
    return count / elapsed


async def tm_process_batched(path: Path, synchronous: str, count: int) -> float:
    store = await _filled(path, synchronous, count)
    start = time.perf_counter()
    while claims := await store.claim(["default"], worker="bench", limit=BATCH):
        await store.ack_many([(claim.task_id, claim.token, None) for claim in claims])
    elapsed = time.perf_counter() - start
    assert count == (await store.statistics()).by_status["succeeded"]
    await store.close()
    return count / elapsed


# -- huey -------------------------------------------------------------------------------
def _huey(path: Path, *, fsync: bool) -> tuple[object, Callable[[], object]]:
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(path), fsync=fsync)

    @huey.task()
    def noop() -> None:
        return None

    return huey, noop


def huey_submit(path: Path, fsync: bool, count: int) -> float:  # noqa: FBT001
    _, noop = _huey(path, fsync=fsync)
    start = time.perf_counter()
    for _ in range(count):
        noop()
    return count / (time.perf_counter() - start)


def huey_process(path: Path, fsync: bool, count: int) -> float:  # noqa: FBT001
    huey, noop = _huey(path, fsync=fsync)
    for _ in range(count):
        noop()
    start = time.perf_counter()
    done = 0
    while (task := huey.dequeue()) is not None:  # type: ignore[attr-defined]
        huey.execute(task)  # type: ignore[attr-defined]
        done += 1
    elapsed = time.perf_counter() - start
    assert count == done
    return count / elapsed


def huey_storage_process(path: Path, fsync: bool, count: int) -> float:  # noqa: FBT001
    huey, _ = _huey(path, fsync=fsync)
    storage = huey.storage  # type: ignore[attr-defined]
    for _ in range(count):
        storage.enqueue(b"{}")
    start = time.perf_counter()
    done = 0
    while (data := storage.dequeue()) is not None:
        storage.put_data(f"r{done}", data)
        done += 1
    elapsed = time.perf_counter() - start
    assert count == done
    return count / elapsed


# -- driver -----------------------------------------------------------------------------
def _best(run: Callable[[], float], rounds: int) -> float:
    return max(run() for _ in range(rounds))


def _tm(
    case: Callable[[Path, str, int], Awaitable[float]], directory: Path, sync: str, count: int
) -> Callable[[], float]:
    return lambda: asyncio.run(case(_fresh(directory, "tm.db"), sync, count))


def _hu(
    case: Callable[[Path, bool, int], float],
    directory: Path,
    fsync: bool,  # noqa: FBT001
    count: int,
) -> Callable[[], float]:
    return lambda: case(_fresh(directory, "huey.db"), fsync, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per batched case")
    parser.add_argument("--single", type=int, default=2_000, help="tasks per one-at-a-time case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
    n, one, rounds = args.tasks, args.single, args.rounds
    print(f"SQLite {sqlite3.sqlite_version}, WAL, files in {directory}, pid {os.getpid()}")
    print(f"best of {rounds} rounds; {one:,} tasks one at a time, {n:,} batched ({BATCH})")
    rows: list[tuple[str, str, float]] = []
    for sync in ("full", "normal"):
        rows += [
            (
                f"taskmill {sync}",
                "submit, one at a time",
                _best(_tm(tm_submit_single, directory, sync, one), rounds),
            ),
            (
                f"taskmill {sync}",
                "submit, batched",
                _best(_tm(tm_submit_batched, directory, sync, n), rounds),
            ),
            (
                f"taskmill {sync}",
                "process, one at a time",
                _best(_tm(tm_process_single, directory, sync, one), rounds),
            ),
            (
                f"taskmill {sync}",
                "process, batched",
                _best(_tm(tm_process_batched, directory, sync, n), rounds),
            ),
        ]
    for fsync, label in ((True, "huey fsync=True (FULL)"), (False, "huey fsync=False (OFF)")):
        rows += [
            (
                label,
                "submit, one at a time",
                _best(_hu(huey_submit, directory, fsync, one), rounds),
            ),
            (
                label,
                "process (dequeue+execute)",
                _best(_hu(huey_process, directory, fsync, one), rounds),
            ),
            (
                label,
                "process (storage only)",
                _best(_hu(huey_storage_process, directory, fsync, one), rounds),
            ),
        ]
    print(f"\n{'store':<26}{'case':<28}{'tasks/s':>12}")
    for store, case, rate in rows:
        print(f"{store:<26}{case:<28}{rate:>12,.0f}")
    rate = {(store, case): value for store, case, value in rows}
    for sync, huey in (("full", "huey fsync=True (FULL)"), ("normal", "huey fsync=False (OFF)")):
        ours = rate[(f"taskmill {sync}", "process, batched")]
        theirs = rate[(huey, "process (dequeue+execute)")]
        print(f"processing, taskmill {sync} batched vs {huey}: {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
