"""Fault tests with real worker processes and real redis-server processes (RELIABILITY.md).

Every scenario ends with a clean consumer run to quiescence and the I1-I5 check against
an oracle kept apart from the system (a separate SQLite file written by the task bodies).
Short leases (2 s, sweep 0.5 s) keep the whole file well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import redis
from taskmill import BackendError
from taskmill.payloads import PayloadCodec
from taskmill.redis import NewTask, RedisStore, Status

pytestmark = pytest.mark.real_time

CONSUMER = Path(__file__).with_name("consumer.py")
CODEC = PayloadCodec()


def envelope(task: str, *args: object) -> bytes:
    return CODEC.encode(CODEC.build(task, list(args)))


def spawn(
    url: str, oracle: Path, name: str, *extra: str, kill_at: str = ""
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TM_KILL_AT": kill_at}
    log = oracle.with_name(f"{name}.log")
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, str(CONSUMER), url, str(oracle), name, *extra],
            env=env,
            stderr=stderr,
        )


def run_clean(url: str, oracle: Path, *extra: str) -> None:
    """Run one well-behaved consumer until there is nothing left to do."""
    proc = spawn(url, oracle, "clean", *extra)
    proc.wait(timeout=60)
    assert 0 == proc.returncode, oracle.with_name("clean.log").read_text()


def effects(oracle: Path) -> Counter[str]:
    with sqlite3.connect(oracle) as conn:
        return Counter(task for (task,) in conn.execute("SELECT task FROM effects"))


def refused(oracle: Path) -> list[str]:
    with sqlite3.connect(oracle) as conn:
        return [task for (task,) in conn.execute("SELECT task FROM refused")]


async def enqueue(url: str, payloads: Iterable[bytes]) -> list[str]:
    async with await RedisStore.open(url) as store:
        out = await store.enqueue_many([NewTask(payload=p, name="t") for p in payloads])
    return [o.task_id for o in out]


def check_invariants(
    url: str, oracle: Path, accepted: list[str], faults: Callable[[str], int]
) -> dict[str, Status]:
    """I1-I5 after quiescence; returns the final status of every accepted task."""

    async def snapshot() -> dict[str, Any]:
        async with await RedisStore.open(url) as store:
            records = {task_id: await store.get(task_id) for task_id in accepted}
            stats = await store.statistics()
        return {"records": records, "stats": stats}

    snap = asyncio.run(snapshot())
    done = effects(oracle)
    final: dict[str, Status] = {}
    for task_id, record in snap["records"].items():
        assert record is not None, f"I1: {task_id} vanished"
        final[task_id] = record.status
        assert done[task_id] >= 1 or record.status is Status.DEAD, f"I1: {task_id} lost"
        assert done[task_id] <= 1 + faults(task_id), f"I2: {task_id} ran {done[task_id]} times"
        assert record.terminal, f"I3: {task_id} is {record.status}"
    client = redis.Redis.from_url(url)
    assert 0 == client.zcard("tm:{default}:l"), "I4: a lease is left"
    assert [] == list(client.scan_iter("tm:{default}:u:*")), "I4: a unique key is left"
    assert [] == list(client.scan_iter("tm:{default}:r:*")), "I4: a ready list is left"
    assert 0 == snap["stats"].running
    client.close()
    assert set(done) <= set(accepted), "I5: an effect for a task never accepted"
    return final


def test_sigkill_workers_with_tasks_in_flight(redis_url: str, tmp_path: Path) -> None:
    """T1: SIGKILL a worker 4 times with tasks in flight; nothing is lost (I1-I5)."""
    oracle = tmp_path / "oracle.db"
    accepted = asyncio.run(enqueue(redis_url, [envelope("slow", 0.15) for _ in range(80)]))
    steady = spawn(redis_url, oracle, "steady", "--batch", "4")
    kills = 0
    for _ in range(4):
        victim = spawn(redis_url, oracle, "victim", "--batch", "4")
        time.sleep(0.8)
        victim.kill()
        victim.wait()
        kills += 1
    steady.wait(timeout=60)
    run_clean(redis_url, oracle)
    final = check_invariants(redis_url, oracle, accepted, lambda _: kills)
    assert {Status.SUCCEEDED} == set(final.values())


@pytest.mark.parametrize("step", ["after_claim", "after_effect", "after_ack"])
def test_crash_at_each_protocol_step(redis_url: str, tmp_path: Path, step: str) -> None:
    """T2: a worker dies at a protocol step; the task is redelivered or already done."""
    oracle = tmp_path / "oracle.db"
    accepted = asyncio.run(enqueue(redis_url, [envelope("ok") for _ in range(5)]))
    crashing = spawn(redis_url, oracle, "crashing", "--batch", "1", kill_at=step)
    crashing.wait(timeout=30)
    assert -signal.SIGKILL == crashing.returncode
    run_clean(redis_url, oracle)
    final = check_invariants(redis_url, oracle, accepted, lambda _: 1)
    assert {Status.SUCCEEDED} == set(final.values())


def test_stale_worker_after_sigstop_is_fenced(redis_url: str, tmp_path: Path) -> None:
    """T4: a worker frozen past its lease comes back; its ack is refused (0 stale writes)."""
    oracle = tmp_path / "oracle.db"
    (task_id,) = asyncio.run(enqueue(redis_url, [envelope("slow", 1.5)]))
    stale = spawn(redis_url, oracle, "stale", "--lease", "1", "--idle", "6")
    deadline = time.monotonic() + 10
    while not effects_started(oracle):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(stale.pid, signal.SIGSTOP)
    fresh = spawn(redis_url, oracle, "fresh", "--lease", "1")
    fresh.wait(timeout=30)
    os.kill(stale.pid, signal.SIGCONT)
    stale.wait(timeout=30)
    assert [task_id] == refused(oracle)
    record = asyncio.run(get(redis_url, task_id))
    assert (Status.SUCCEEDED, b"fresh", 1) == (record.status, record.result, record.worker_lost)
    check_invariants(redis_url, oracle, [task_id], lambda _: 1)


def effects_started(oracle: Path) -> bool:
    if not oracle.exists():
        return False
    with sqlite3.connect(oracle) as conn:
        try:
            return bool(conn.execute("SELECT count(*) FROM started").fetchone()[0] > 0)
        except sqlite3.OperationalError:
            return False


async def get(url: str, task_id: str) -> Any:
    async with await RedisStore.open(url) as store:
        return await store.get(task_id)


def test_poison_task_is_dead_lettered(redis_url: str, tmp_path: Path) -> None:
    """T9: a task that kills its worker every time is dead after 3 deliveries; others run."""
    oracle = tmp_path / "oracle.db"
    accepted = asyncio.run(
        enqueue(redis_url, [envelope("poison")] + [envelope("ok") for _ in range(10)])
    )
    for _ in range(6):
        proc = spawn(redis_url, oracle, "worker", "--batch", "1", "--lease", "1")
        proc.wait(timeout=30)
        if proc.returncode == 0:
            break
    record = asyncio.run(get(redis_url, accepted[0]))
    assert (Status.DEAD, "worker lost 3 times", 3) == (
        record.status,
        record.dead_reason,
        record.deliveries,
    )
    final = check_invariants(redis_url, oracle, accepted, lambda t: 3 if t == accepted[0] else 0)
    assert 10 == list(final.values()).count(Status.SUCCEEDED)


def test_malformed_payloads_are_dead_lettered(redis_url: str, tmp_path: Path) -> None:
    """T10: malformed payloads written straight into Redis: 0 crashes, each dead with a reason."""
    bad = [
        os.urandom(64),
        b"\x80\x04\x95pickle blob",
        b'{"version": 1}',
        json.dumps({"version": 1, "task": "ok", "args": [float("nan")]}).encode(),
        b"[" * 5000 + b"]" * 5000,
        b"",
        envelope("ok")[:-5],
    ] * 20
    oracle = tmp_path / "oracle.db"
    good = asyncio.run(enqueue(redis_url, [envelope("ok") for _ in range(10)]))
    client = redis.Redis.from_url(redis_url)
    for i, payload in enumerate(bad):
        record = b"q,0,1700000000000,1;" + payload
        client.hset("tm:{default}:d", f"bad{i}", record)
        client.rpush("tm:{default}:r:0", f"bad{i}")
    client.close()
    run_clean(redis_url, oracle, "--batch", "50")
    accepted = good + [f"bad{i}" for i in range(len(bad))]
    final = check_invariants(redis_url, oracle, accepted, lambda _: 0)
    assert {Status.SUCCEEDED} == {final[t] for t in good}
    dead = asyncio.run(dead_reasons(redis_url))
    assert len(bad) == len(dead)
    assert all(reason for reason in dead.values())


async def dead_reasons(url: str) -> dict[str, str | None]:
    async with await RedisStore.open(url) as store:
        return {r.task_id: r.dead_reason for r in await store.dead_letters(limit=1000)}


async def _produce_until_killed(server: Any, count: int) -> list[str]:
    acknowledged: list[str] = []
    async with await RedisStore.open(server.url, retries=0, socket_timeout=1) as store:
        for i in range(count):
            if i == count // 2:
                server.kill()
            try:
                out = await store.enqueue(b"x%d" % i, name="t")
            except BackendError:
                continue
            acknowledged.append(out.task_id)
    return acknowledged


async def _count_present(url: str, ids: list[str]) -> int:
    async with await RedisStore.open(url) as store:
        return sum([await store.get(task_id) is not None for task_id in ids])


def test_redis_kill9_with_aof_always_loses_nothing(redis_factory: Callable[..., Any]) -> None:
    """T5: kill -9 Redis (appendfsync always) mid-stream: every acknowledged submit survives."""
    server = redis_factory("always")
    acknowledged = asyncio.run(_produce_until_killed(server, 600))
    assert 300 == len(acknowledged)
    server.start()
    assert len(acknowledged) == asyncio.run(_count_present(server.url, acknowledged))
