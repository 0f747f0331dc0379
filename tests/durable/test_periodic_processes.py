"""RELIABILITY.md T23: periodic jobs with several schedulers, each instant enqueued once.

Three real worker processes (``periodic_worker.py``) share one store — a SQLite file,
or a private redis-server — and each one schedules the periodic task ``tick`` (every
0.5 s). An oracle apart from the store records every run of an instant, with a unique
constraint. Once all three run and 7 instants ran (3+ s), the workers get SIGTERM,
and the test checks:

* no instant ran twice (the oracle's ``duplicates`` is empty);
* the store holds one task per instant, for a gapless run of instants;
* the workers together *created* exactly that many tasks (every other enqueue of an
  instant was a no-op), and every succeeded task is exactly one oracle run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent
EVERY_MS = 500


def _redis_fixtures() -> ModuleType:
    """tests/redis/conftest.py under another name (as tests/prometheus/conftest.py does)."""
    name = "taskmill_tests_redis_fixtures"
    if name not in sys.modules:
        path = HERE.parent / "redis" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


redis_server = _redis_fixtures().redis_server
redis_url = _redis_fixtures().redis_url


def make_oracle(path: Path) -> str:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE runs(instant INTEGER PRIMARY KEY, pid)")
        conn.execute("CREATE TABLE duplicates(instant, pid)")
    return str(path)


def wait_until(predicate: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert all(proc.poll() is None for proc in procs), "a worker exited early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def count_runs(oracle: str) -> int:
    with closing(sqlite3.connect(oracle, timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def run_workers(store_args: list[str], tmp_path: Path, *, runs: int) -> tuple[str, str]:
    """Start three workers; once all run and ``runs`` instants ran (3+ s), SIGTERM them.

    Returns (oracle path, stats path).
    """
    oracle = make_oracle(tmp_path / "oracle.db")
    stats = str(tmp_path / "stats.jsonl")
    command = [sys.executable, str(HERE / "periodic_worker.py"), *store_args, oracle, stats]
    procs = [
        subprocess.Popen(command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    try:
        wait_until(lambda: len(list(tmp_path.glob("stats.jsonl.*.ready"))) == 3, procs)
        wait_until(lambda: count_runs(oracle) >= runs, procs)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=30)[1].decode() for proc in procs]
        for proc, err in zip(procs, errors, strict=True):
            assert 0 == proc.returncode, err
            assert "Traceback" not in err, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return oracle, stats


def check(oracle: str, stats_path: str, stored: dict[int, str]) -> None:
    with closing(sqlite3.connect(oracle)) as conn:
        runs = {row[0] for row in conn.execute("SELECT instant FROM runs")}
        duplicates = conn.execute("SELECT instant, pid FROM duplicates").fetchall()
    stats = [json.loads(line) for line in Path(stats_path).read_text().splitlines()]
    assert 3 == len(stats)
    assert [] == duplicates
    instants = sorted(stored)
    assert list(range(instants[0], instants[-1] + 1, EVERY_MS)) == instants  # no gap
    assert sum(s["scheduler"]["created"] for s in stats) == len(instants)  # each once
    assert sum(s["scheduler"]["enqueued"] for s in stats) > len(instants)  # others: no-ops
    succeeded = {instant for instant, status in stored.items() if status == "succeeded"}
    assert runs == succeeded
    skipped = {instant for instant, status in stored.items() if status == "cancelled"}
    assert sum(s["worker"]["misfired"] for s in stats) == len(skipped)
    assert len(skipped) <= 1, stored  # a loaded machine may miss one, not more
    assert len(runs) >= 7, stored
    assert set(stored.values()) <= {"succeeded", "cancelled", "scheduled", "queued"}


async def stored_instants(store: object) -> dict[int, str]:
    records = await store.list(limit=1000)  # type: ignore[attr-defined]
    found: dict[int, str] = {}
    for record in records:
        prefix, _, instant = record.task_id.rpartition(":")
        assert "periodic:tick" == prefix, record.task_id  # nothing else was enqueued
        found[int(instant)] = str(record.status)
    return found


@pytest.mark.real_time
def test_three_sqlite_workers_run_each_instant_once(tmp_path: Path) -> None:
    """Three processes on one SQLite file: exactly one task and one run per instant."""
    from taskmill.sqlite import SqliteStore

    db = tmp_path / "tasks.db"
    oracle, stats = run_workers(["--db", str(db)], tmp_path, runs=7)

    async def read() -> dict[int, str]:
        async with await SqliteStore.open(db) as store:
            return await stored_instants(store)

    check(oracle, stats, asyncio.run(read()))


@pytest.mark.real_time
def test_three_redis_workers_run_each_instant_once(tmp_path: Path, redis_url: str) -> None:
    """Three processes on one Redis: exactly one task and one run per instant."""
    from taskmill.redis import RedisStore

    oracle, stats = run_workers(["--redis", redis_url], tmp_path, runs=7)

    async def read() -> dict[int, str]:
        async with await RedisStore.open(redis_url) as store:
            return await stored_instants(store)

    check(oracle, stats, asyncio.run(read()))
