"""A consumer process for the fault tests: claim, record, do the effect, ack.

    python sqlite_consumer.py DB ORACLE --worker NAME [--kill-at POINT [--kill-after N]]
        [--until-quiet] [--lease S] [--batch N] [--max-seconds S]

Payloads are ``b"task:<id>"``; ``b"poison"`` kills this process every time it runs;
anything else is dead-lettered as undecodable. ``--kill-at`` makes the process
SIGKILL itself at a named protocol step, the N-th time it gets there:

* ``after_claim``    — a task is claimed and recorded as started;
* ``after_effect``   — the effect is recorded, the ack not sent;
* ``claim_commit``   — inside the claim transaction, just before COMMIT;
* ``ack_commit``     — inside the ack transaction, just before COMMIT;
* ``release_commit`` — the claim is being released (graceful stop), before COMMIT.

With ``--until-quiet`` it exits 0 once the store holds no live task; it also runs
the reclaim sweep, so tasks of killed consumers come back to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlite_oracle import Oracle

from taskmill import _clock
from taskmill.sqlite import Claim, SqliteStore

LIVE = ("queued", "scheduled", "running", "retrying")


class Killer:
    """SIGKILLs this process the N-th time it reaches the armed point."""

    def __init__(self, oracle: Oracle, point: str | None, after: int) -> None:
        self.oracle = oracle
        self.point = point
        self.left = after
        self.last_sql = ""

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        self.left -= 1
        if self.left <= 0:
            self.oracle.killed(os.getpid(), point)
            os.kill(os.getpid(), signal.SIGKILL)

    def trace(self, statement: str) -> None:
        """sqlite3 trace callback (runs in the store's thread, before each statement)."""
        if statement == "COMMIT":
            if self.last_sql.startswith("UPDATE tasks SET status = 'succeeded'"):
                self.reach("ack_commit")
            elif self.last_sql.startswith("UPDATE tasks SET status = 'running'"):
                self.reach("claim_commit")
            elif self.last_sql.startswith("UPDATE tasks SET status = 'queued', lease_until"):
                self.reach("release_commit")
        self.last_sql = statement


async def run_one(store: SqliteStore, oracle: Oracle, killer: Killer, claim: Claim) -> None:
    oracle.started(claim.task_id, claim.deliveries)
    killer.reach("after_claim")
    if claim.payload == b"poison":
        oracle.killed(os.getpid(), "poison")
        os.kill(os.getpid(), signal.SIGKILL)
    if not claim.payload.startswith(b"task:"):
        await store.dead_letter(
            claim.task_id, claim.token, f"undecodable payload {claim.payload!r:.40}"
        )
        return
    await asyncio.sleep(random.uniform(0, 0.004))
    oracle.effect(claim.task_id, claim.deliveries)
    killer.reach("after_effect")
    if await store.ack(claim.task_id, claim.token, b"done"):
        oracle.done(claim.task_id, claim.deliveries)


async def quiet(store: SqliteStore) -> bool:
    stats = await store.statistics()
    return sum(stats.by_status[status] for status in LIVE) == 0


async def main(args: argparse.Namespace) -> int:
    oracle = Oracle(args.oracle)
    killer = Killer(oracle, args.kill_at, args.kill_after)
    store = await SqliteStore.open(args.db, lease=args.lease, busy_timeout=10)
    await store._db.run(sqlite3.Connection.set_trace_callback, killer.trace)
    sweeper = asyncio.create_task(store.run_reclaimer(interval=0.2))
    oracle.alive()
    deadline = _clock.monotonic() + args.max_seconds
    try:
        while _clock.monotonic() < deadline:
            claims = await store.claim(["default"], worker=args.worker, limit=args.batch)
            if args.kill_at == "release_commit" and claims:
                await store.release(claims[0].task_id, claims[0].token)
            for claim in claims:
                await run_one(store, oracle, killer, claim)
            if not claims:
                if args.until_quiet and await quiet(store):
                    return 0
                await asyncio.sleep(0.05)
        return 3  # ran out of time
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await store.close()
        oracle.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("oracle")
    parser.add_argument("--worker", default=f"consumer-{os.getpid()}")
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--kill-after", type=int, default=1)
    parser.add_argument("--until-quiet", action="store_true")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
