"""RELIABILITY.md T14 on SQLite, and a graceful SIGTERM of an App worker (real processes).

* Scheduled and retry-delayed tasks survive a worker SIGKILL: they wait in the store
  while no worker runs, and after a restart each runs exactly once, none before its
  time (an oracle apart from the store records every run with its wall time).
* ``taskmill worker MODULE:APP``: SIGTERM with a durable task in flight releases it
  after the grace, without an attempt penalty (same attempt, no lost-worker count).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import durable_tasks
import pytest
import sched_tasks

import taskmill as tm
from taskmill.sqlite import SqliteStore

HERE = Path(__file__).parent


def spawn(*args: str, oracle: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ}
    if oracle is not None:
        env["TASKMILL_ORACLE"] = str(oracle)
    return subprocess.Popen(
        [sys.executable, "-m", "taskmill", *args],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=30)[1]


def oracle_rows(path: Path) -> list[tuple[str, str, float, int]]:
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        return conn.execute("SELECT tag, kind, at, pid FROM runs ORDER BY at").fetchall()


async def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.real_time
async def test_scheduled_and_retrying_tasks_survive_sigkill_and_run_once_on_time(
    tmp_path: Path,
) -> None:
    """T14 (SQLite): SIGKILL with scheduled and retry-delayed tasks; restart; each runs once."""
    db, oracle = tmp_path / "tasks.db", tmp_path / "oracle.db"
    with closing(sqlite3.connect(oracle, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE runs(tag, kind, at, pid)")
    worker_args = ("worker", "sched_tasks:registry", "--db", str(db), "--lease", "2")
    first = spawn(*worker_args, oracle=oracle)
    second: subprocess.Popen[str] | None = None
    try:
        async with await SqliteStore.open(db) as store:
            client = tm.DurableClient(store, sched_tasks.registry)
            retrying = await client.submit(sched_tasks.fail_once, "retry")
            await wait_for(lambda: any(row[1] == "fail" for row in oracle_rows(oracle)))
            failed_at = oracle_rows(oracle)[0][2]
            # due while no worker runs (1-3 s), and after the restart (6-7 s)
            due: dict[str, float] = {}
            handles = []
            for delay in (1.0, 2.0, 3.0, 6.0, 7.0):
                tag = f"at+{delay}"
                due[tag] = time.time() + delay  # a lower bound of the stored run_at
                handles.append(await client.with_options(delay=delay).submit("stamp", tag))
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            assert "retrying" == await retrying.status()
            await asyncio.sleep(3.5)  # everything due so far waits in the store
            assert [("retry", "fail")] == [(row[0], row[1]) for row in oracle_rows(oracle)]
            assert {"scheduled"} == {await h.status() for h in handles}

            second = spawn(*worker_args, oracle=oracle)
            await retrying.result(timeout=30)
            for handle in handles:
                await handle.result(timeout=30)
            record = await store.get(retrying.id)
            assert record is not None
            assert 2 == record.attempt
        rows = oracle_rows(oracle)
        effects = [row for row in rows if row[1] == "ok"]
        assert sorted([*due, "retry"]) == sorted(row[0] for row in effects)  # once each
        for tag, _, at, pid in effects:
            assert pid == second.pid  # the killed worker ran none of them
            earliest = failed_at + 2.0 if tag == "retry" else due[tag]
            assert at >= earliest - 0.01, (tag, at, earliest)  # none early
        second.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(second.wait, 30)
        with closing(sqlite3.connect(db)) as conn:
            assert [("ok",)] == conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        err = finish(first)
        if second is not None:
            err = finish(second)
            assert "Traceback" not in err, err


@pytest.mark.real_time
async def test_app_worker_sigterm_releases_in_flight_task_without_penalty(tmp_path: Path) -> None:
    """SIGTERM of ``taskmill worker MODULE:APP``: the running task is released after the
    grace with its attempt unchanged and no lost-worker count; the next claim is attempt 1."""
    db = str(tmp_path / "t.db")
    grace = 1.0
    proc = spawn(
        "worker",
        "worker_app_module:app",
        "--tasks",
        "durable_tasks:registry",
        "--db",
        db,
        "--grace",
        str(grace),
    )
    try:
        async with await SqliteStore.open(db) as store:
            client = tm.DurableClient(store, durable_tasks.registry)
            long = await client.submit(durable_tasks.sleeper, 600.0)
            await wait_for_status(long, "running")
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            assert 0 == await asyncio.to_thread(proc.wait, grace + 10)
            assert time.monotonic() - began <= grace + 1.0
            record = await store.get(long.id)
            assert record is not None
            assert ("queued", 1, 1, 0) == (
                str(record.status),
                record.attempt,
                record.deliveries,
                record.worker_lost,
            )
            (claim,) = await store.claim(["default"], worker="test", limit=1)
            assert (long.id, 1) == (claim.task_id, claim.attempt)
    finally:
        err = finish(proc)
    assert "Traceback" not in err
    assert "releasing" in err


async def wait_for_status(handle: tm.DurableHandle[object], status: str) -> None:
    deadline = time.monotonic() + 30
    while await handle.status() != status:
        assert time.monotonic() < deadline, f"never {status}"
        await asyncio.sleep(0.05)
