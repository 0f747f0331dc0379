"""A producer process for the fault tests: enqueue batches, recording intent and ack.

    python sqlite_producer.py DB ORACLE --prefix P --count N [--batch B] [--pause S]
        [--kill-at enqueue_commit [--kill-after N]]

Task ids are ``<prefix>-<i>``; each batch is recorded as ``intent`` in the oracle,
enqueued in one transaction, then recorded as ``acked``. ``--kill-at
enqueue_commit`` SIGKILLs the process inside the N-th enqueue transaction, just
before its COMMIT (that batch must then not exist at all).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlite_oracle import Oracle

from taskmill.sqlite import NewTask, SqliteStore


class CommitKiller:
    """Trace callback: SIGKILL before the COMMIT of the N-th enqueue transaction."""

    def __init__(self, oracle: Oracle, after: int | None) -> None:
        self.oracle = oracle
        self.left = after
        self.inserting = False

    def trace(self, statement: str) -> None:
        if statement.startswith("INSERT INTO tasks"):
            self.inserting = True
        elif statement == "COMMIT" and self.inserting:
            self.inserting = False
            if self.left is not None:
                self.left -= 1
                if self.left <= 0:
                    self.oracle.killed(os.getpid(), "enqueue_commit")
                    os.kill(os.getpid(), signal.SIGKILL)


async def main(args: argparse.Namespace) -> int:
    oracle = Oracle(args.oracle)
    killer = CommitKiller(oracle, args.kill_after if args.kill_at == "enqueue_commit" else None)
    store = await SqliteStore.open(args.db, busy_timeout=10)
    await store._db.run(sqlite3.Connection.set_trace_callback, killer.trace)
    oracle.alive()
    try:
        for start in range(0, args.count, args.batch):
            ids = [f"{args.prefix}-{i}" for i in range(start, min(start + args.batch, args.count))]
            oracle.submitted(ids, "intent")
            tasks = [NewTask(payload=f"task:{i}".encode(), name="t", task_id=i) for i in ids]
            await store.enqueue_many(tasks)
            oracle.submitted(ids, "acked")
            await asyncio.sleep(args.pause)
        return 0
    finally:
        await store.close()
        oracle.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("oracle")
    parser.add_argument("--prefix", default="p")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.01)
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--kill-after", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
