"""A real ``DurableWorker`` process over ``RedisStore`` for the Redis fault tests.

It runs the product's worker loop (claims, renewals, group-committed acks, reclaim
sweep, graceful stop on SIGTERM and an immediate stop on a second one, exactly as
``taskmill worker`` does) with the registry below. Task bodies write to an oracle, a
separate SQLite file apart from the system under test:

* ``started(task, pid, worker)`` when a body starts, ``effects(task, pid, worker)``
  when it finished its work (just before it returns, so before the ack).

Tasks (the first argument is always the task's id, so the body can record it):

* ``ok(tid)``: the effect, at once;
* ``sleep(tid, seconds)``: sleep, then the effect (cancellable while it sleeps);
* ``hold(tid)``: sleep ``--hold`` seconds of *this* worker, then the effect;
* ``boom(tid, kind)`` / ``boom_sync(tid, kind)``: raise ``kind`` (``base``: a custom
  ``BaseException``, ``exit``: ``SystemExit``, ``kbd``: ``KeyboardInterrupt``,
  ``cancel``: the task's own ``CancelledError``) from an async / a sync body.

With ``--idle S`` the worker stops gracefully once the store held nothing live (no
queued, scheduled, retrying or running task) for ``S`` seconds. On exit it writes a
JSON line with its statistics and the asyncio tasks still alive to ``--stats``.

Usage: python durable_worker.py URL ORACLE NAME [--lease S] [--grace S] [--concurrency N]
    [--sweep S] [--hold S] [--idle S] [--socket-timeout S] [--retries N] [--stats PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import logging
import os
import signal
import sqlite3
from pathlib import Path

import taskmill as tm
from taskmill._cli_worker import _serve_alone
from taskmill.redis import RedisStore

registry = tm.TaskRegistry()
ARGS = argparse.Namespace()
_DB: list[sqlite3.Connection] = []


class CustomStop(BaseException):
    """A task's own BaseException subclass."""


def connect_oracle(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS started(task, pid, worker)")
    conn.execute("CREATE TABLE IF NOT EXISTS effects(task, pid, worker)")
    return conn


def record(table: str, tid: str) -> None:
    _DB[0].execute(f"INSERT INTO {table} VALUES (?, ?, ?)", (tid, os.getpid(), ARGS.name))


@registry.task(name="ok")
async def ok(tid: str) -> str:
    record("started", tid)
    record("effects", tid)
    return str(ARGS.name)


@registry.task(name="sleep")
async def sleep(tid: str, seconds: float) -> str:
    record("started", tid)
    await asyncio.sleep(seconds)
    record("effects", tid)
    return str(ARGS.name)


@registry.task(name="hold")
async def hold(tid: str) -> str:
    record("started", tid)
    await asyncio.sleep(ARGS.hold)
    record("effects", tid)
    return str(ARGS.name)


def _raise(kind: str) -> None:
    if kind == "base":
        raise CustomStop("a custom BaseException")
    if kind == "exit":
        raise SystemExit(3)
    if kind == "kbd":
        raise KeyboardInterrupt
    if kind == "cancel":
        raise asyncio.CancelledError("raised by the task itself")
    raise ValueError(kind)


@registry.task(name="boom")
async def boom(tid: str, kind: str) -> None:
    record("started", tid)
    _raise(kind)


@registry.task(name="boom_sync")
def boom_sync(tid: str, kind: str) -> None:
    record("started", tid)
    _raise(kind)


async def stop_when_idle(store: RedisStore, worker: tm.DurableWorker, idle: float) -> None:
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while loop.time() - quiet_since < idle:
        if worker.statistics().state == "stopped":  # stopped by a signal
            return
        await asyncio.sleep(0.1)
        try:
            stats = await store.statistics()
        except tm.BackendError:
            quiet_since = loop.time()
            continue
        live = sum(stats.by_status.get(s, 0) for s in ("queued", "scheduled", "retrying"))
        if live or stats.running or worker.statistics().running:
            quiet_since = loop.time()
    await worker.stop()


def dump_tasks() -> None:
    """SIGUSR1: log every asyncio task's stack (the tests ask for it when a worker hangs)."""
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(file=out)
        logging.getLogger("dump").warning("%r\n%s", task, out.getvalue())


async def main() -> None:
    _DB.append(connect_oracle(ARGS.oracle))
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    store = await RedisStore.open(
        ARGS.url,
        lease=ARGS.lease,
        socket_timeout=ARGS.socket_timeout,
        retries=ARGS.retries,
    )
    worker = tm.DurableWorker(
        store,
        registry,
        concurrency=ARGS.concurrency,
        lease=ARGS.lease,
        grace=ARGS.grace,
        worker_id=ARGS.name,
        reclaim_interval=ARGS.sweep,
        max_poll_interval=0.05,
    )
    watcher = None
    if ARGS.idle is not None:
        watcher = asyncio.create_task(stop_when_idle(store, worker, ARGS.idle))
    try:
        await _serve_alone(worker, None)
    finally:
        # Not cancelled: it calls redis-py, which may swallow a cancellation on 3.11.
        if watcher is not None:
            await watcher
        await store.close()
        logging.getLogger("durable_worker").info("store closed")
    if ARGS.stats:
        current = asyncio.current_task()
        leftover = [t.get_name() for t in asyncio.all_tasks() if t is not current]
        line = {**dataclasses.asdict(worker.statistics()), "leftover_tasks": leftover}
        with Path(ARGS.stats).open("a", encoding="utf-8") as out:  # noqa: ASYNC230 - at exit
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("oracle")
    parser.add_argument("name")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sweep", type=float, default=0.5)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--idle", type=float, default=None)
    parser.add_argument("--socket-timeout", type=float, default=5.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--stats", default="")
    ARGS = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {ARGS.name} %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(main())
    logging.getLogger("durable_worker").info("exiting")
