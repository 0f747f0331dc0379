"""A worker process for the Redis fault tests: claim, run, record in an oracle, ack.

The oracle is a separate SQLite file (apart from the system under test) with
``started(task, attempt, pid)``, ``effects(task, attempt, pid)`` and ``refused(task, op,
pid)`` rows. Task names select behaviour (payloads are taskmill envelopes):

* ``ok``: record the effect, ack with the worker name as result;
* ``slow``: sleep ``args[0]`` seconds (renewing the lease), then as ``ok``;
* ``stall``: sleep ``args[0]`` seconds WITHOUT renewing, then as ``ok``;
* ``poison``: SIGKILL this process.

Undecodable payloads are dead-lettered with the codec's reason. ``TM_KILL_AT`` names a
protocol step (``after_claim``, ``after_effect``, ``after_ack``) at which the process
SIGKILLs itself on the first task it reaches there. The process exits after
``--idle`` seconds without work.

Usage: python consumer.py URL ORACLE NAME [--lease S] [--idle S] [--batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from taskmill import PayloadError
from taskmill.payloads import PayloadCodec
from taskmill.redis import Claim, RedisStore

KILL_AT = os.environ.get("TM_KILL_AT", "")


def oracle(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for table in ("started(task, attempt, pid)", "effects(task, attempt, pid)"):
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table}")
    conn.execute("CREATE TABLE IF NOT EXISTS refused(task, op, pid)")
    return conn


def maybe_die(step: str) -> None:
    if KILL_AT == step:
        os.kill(os.getpid(), signal.SIGKILL)


async def renew_until_done(store: RedisStore, claim: Claim, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        if not await store.renew(claim.task_id, claim.token):
            return


async def run_one(
    store: RedisStore,
    codec: PayloadCodec,
    db: sqlite3.Connection,
    claim: Claim,
    args: argparse.Namespace,
) -> None:
    pid = os.getpid()
    try:
        envelope = codec.decode(claim.payload)
    except PayloadError as exc:
        await store.dead_letter(claim.task_id, claim.token, exc.reason)
        return
    db.execute("INSERT INTO started VALUES (?, ?, ?)", (claim.task_id, claim.attempt, pid))
    maybe_die("after_claim")
    if envelope.task == "poison":
        os.kill(pid, signal.SIGKILL)
    if envelope.task in ("slow", "stall"):
        renewer = None
        if envelope.task == "slow":
            renewer = asyncio.create_task(renew_until_done(store, claim, args.lease))
        await asyncio.sleep(float(envelope.args[0]))
        if renewer is not None:
            renewer.cancel()
    db.execute("INSERT INTO effects VALUES (?, ?, ?)", (claim.task_id, claim.attempt, pid))
    maybe_die("after_effect")
    if not await store.ack(claim.task_id, claim.token, args.name.encode()):
        db.execute("INSERT INTO refused VALUES (?, 'ack', ?)", (claim.task_id, pid))
    maybe_die("after_ack")


async def main(args: argparse.Namespace) -> None:
    db = oracle(args.oracle)
    codec = PayloadCodec()
    async with await RedisStore.open(args.url, lease=args.lease) as store:
        reclaimer = asyncio.create_task(store.run_reclaimer(args.sweep))
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while loop.time() - idle_since < args.idle:
            claims = await store.claim(
                ["default"], worker=args.name, limit=args.batch, block=min(0.25, args.idle)
            )
            if claims:
                await asyncio.gather(*(run_one(store, codec, db, c, args) for c in claims))
                idle_since = loop.time()
            elif (await store.statistics()).running:
                idle_since = loop.time()
        reclaimer.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("oracle")
    parser.add_argument("name")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--sweep", type=float, default=0.5)
    parser.add_argument("--idle", type=float, default=1.5)
    parser.add_argument("--batch", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
