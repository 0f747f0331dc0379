"""A real worker process with one periodic task, for the multi-process periodic tests.

The periodic task ``tick`` (every ``--every`` seconds) records its instant in an
oracle SQLite file kept apart from the store: ``runs(instant PRIMARY KEY, pid)``; a
second run of the same instant goes to ``duplicates(instant, pid)`` instead.

The worker runs like ``taskmill worker`` (``_serve_alone``: SIGTERM stops gracefully),
creates ``STATS.<pid>.ready`` once it runs, and appends its worker and scheduler
statistics as one JSON line to ``STATS`` on exit.

Usage: python periodic_worker.py (--db PATH | --redis URL) ORACLE STATS [--every S]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import taskmill as tm
from taskmill._cli_worker import _serve_alone


def record(oracle: str, instant: dt.datetime) -> None:
    ms = round(instant.timestamp() * 1000)
    conn = sqlite3.connect(oracle, timeout=30, isolation_level=None)
    try:
        try:
            conn.execute("INSERT INTO runs VALUES (?, ?)", (ms, os.getpid()))
        except sqlite3.IntegrityError:
            conn.execute("INSERT INTO duplicates VALUES (?, ?)", (ms, os.getpid()))
    finally:
        conn.close()


def build_registry(oracle: str, every: float) -> tm.TaskRegistry:
    registry = tm.TaskRegistry()

    @registry.periodic(every=every, name="tick")
    def tick(instant: dt.datetime) -> None:
        record(oracle, instant)

    return registry


async def announce(worker: tm.DurableWorker, ready: Path) -> None:
    """Create ``ready`` once the worker runs (its SIGTERM handler is installed by then)."""
    while worker.statistics().state != "running":  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.01)
    await asyncio.to_thread(ready.touch)


async def serve(store: object, registry: tm.TaskRegistry, ready: Path) -> dict[str, object]:
    worker = tm.DurableWorker(store, registry, lease=5.0, grace=2.0, concurrency=4)  # type: ignore[arg-type]
    announcing = asyncio.create_task(announce(worker, ready))
    await _serve_alone(worker, None)
    await announcing
    assert worker.scheduler is not None
    return {
        "pid": os.getpid(),
        "worker": dataclasses.asdict(worker.statistics()),
        "scheduler": dataclasses.asdict(worker.scheduler.statistics()),
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    registry = build_registry(args.oracle, args.every)
    ready = Path(f"{args.stats}.{os.getpid()}.ready")
    if args.redis:
        from taskmill.redis import RedisStore

        async with await RedisStore.open(args.redis, lease=5.0) as redis_store:
            return await serve(redis_store, registry, ready)
    else:
        from taskmill.sqlite import SqliteStore

        async with await SqliteStore.open(args.db, lease=5.0) as sqlite_store:
            return await serve(sqlite_store, registry, ready)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    parser.add_argument("--redis")
    parser.add_argument("oracle")
    parser.add_argument("stats")
    parser.add_argument("--every", type=float, default=0.5)
    arguments = parser.parse_args()
    line = asyncio.run(main(arguments))
    with Path(arguments.stats).open("a") as out:
        out.write(json.dumps(line) + "\n")
