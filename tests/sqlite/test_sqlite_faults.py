"""Fault tests with real processes: SIGKILL consumers and producers, poison, malformed rows.

Consumers (sqlite_consumer.py) and producers (sqlite_producer.py) run as separate
processes on one store file and write what they do to a separate oracle file
(sqlite_oracle.py). After each scenario a clean consumer runs to quiescence and
RELIABILITY.md's invariants are checked against the oracle:

* I1 every acknowledged submit has >= 1 effect or is a dead letter;
* I2 effects of a task <= 1 + kills that hit it (its process died holding it);
* I3 every task in the store is in exactly one terminal status;
* I4 nothing running, no lease, no live unique key left;
* I5 no effect, and no stored task, that no producer ever tried to submit;

plus ``PRAGMA integrity_check`` == ok.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import sys
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlite_oracle import Oracle
from sqlite_support import TERMINAL, insert_raw, integrity, residue

from taskmill.sqlite import NewTask, SqliteStore

pytestmark = pytest.mark.real_time

HERE = Path(__file__).parent
KILLED = -signal.SIGKILL


@dataclass
class Scene:
    """The two files of one scenario and the processes started in it."""

    db: Path
    oracle: Path
    outputs: list[bytes] = field(default_factory=list)

    async def spawn(self, script: str, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / script),
            str(self.db),
            str(self.oracle),
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def finish(self, process: asyncio.subprocess.Process) -> int:
        _, err = await process.communicate()
        self.outputs.append(err)
        assert process.returncode is not None
        return process.returncode

    async def run(self, script: str, *args: str) -> int:
        return await self.finish(await self.spawn(script, *args))

    def alive(self, process: asyncio.subprocess.Process) -> bool:
        """Whether the process started working (opened the store) and still runs."""
        oracle = Oracle(self.oracle)
        try:
            return process.returncode is None and oracle.is_alive(process.pid)
        finally:
            oracle.close()

    async def kill(self, process: asyncio.subprocess.Process, why: str) -> None:
        oracle = Oracle(self.oracle)
        try:
            oracle.killed(process.pid, why)
        finally:
            oracle.close()
        process.kill()
        assert KILLED == await self.finish(process)

    async def drain(self) -> None:
        """Run a clean consumer until the store holds no live task."""
        code = await self.run("sqlite_consumer.py", "--until-quiet", "--batch", "10")
        assert 0 == code, b"\n".join(self.outputs[-1:]).decode()


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    scene = Scene(tmp_path / "tasks.db", tmp_path / "oracle.db")
    Oracle(scene.oracle).close()
    return scene


@dataclass
class Facts:
    """What the oracle and the store say after quiescence."""

    intents: set[str]
    acked: set[str]
    effects: Counter[str]
    started_by: dict[str, set[int]]  # pids whose delivery of the task never finished
    killed: set[int]
    rows: dict[str, tuple[str, str | None, int, int]]  # status, dead_reason, lost, deliveries


def facts(scene: Scene) -> Facts:
    with closing(sqlite3.connect(scene.oracle)) as oracle:
        submitted = oracle.execute("SELECT task_id, phase FROM submitted").fetchall()
        effects = Counter(t for (t,) in oracle.execute("SELECT task_id FROM effects"))
        started_by: dict[str, set[int]] = defaultdict(set)
        for task_id, pid in oracle.execute(
            "SELECT task_id, pid FROM started s WHERE NOT EXISTS (SELECT 1 FROM done d"
            " WHERE d.task_id = s.task_id AND d.delivery = s.delivery AND d.pid = s.pid)"
        ):
            started_by[task_id].add(pid)  # deliveries that never finished
        killed = {pid for (pid,) in oracle.execute("SELECT pid FROM kills")}
    with closing(sqlite3.connect(scene.db)) as store:
        rows = {
            row[0]: row[1:]
            for row in store.execute(
                "SELECT id, status, dead_reason, worker_lost, deliveries FROM tasks"
            )
        }
    return Facts(
        intents={t for t, phase in submitted if phase == "intent"},
        acked={t for t, phase in submitted if phase == "acked"},
        effects=effects,
        started_by=started_by,
        killed=killed,
        rows=rows,
    )


def check_invariants(scene: Scene) -> Facts:
    """Assert I1-I5 and integrity; return the facts for scenario-specific checks."""
    f = facts(scene)
    lost = [t for t in f.acked if f.effects[t] == 0 and f.rows[t][0] != "dead"]
    assert [] == lost, "I1: acknowledged submits with no effect and no dead letter"
    extra = {
        t: (n, len(f.started_by[t] & f.killed))
        for t, n in f.effects.items()
        if n > 1 + len(f.started_by[t] & f.killed)
    }
    assert {} == extra, "I2: more effects than 1 + kills that hit the task"
    not_terminal = {t: row[0] for t, row in f.rows.items() if row[0] not in TERMINAL}
    assert {} == not_terminal, "I3: tasks not in a terminal status"
    assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(scene.db), "I4: residue"
    assert set(f.effects) <= f.intents, "I5: effects of tasks never submitted"
    assert set(f.rows) <= f.intents, "I5: stored tasks never submitted"
    assert "ok" == integrity(scene.db)
    return f


async def produce(scene: Scene, prefix: str, count: int, *extra: str) -> int:
    return await scene.run("sqlite_producer.py", "--prefix", prefix, "--count", str(count), *extra)


async def test_kill_at_each_protocol_step(scene: Scene) -> None:
    """SIGKILL at every step (T2) and inside an enqueue transaction: nothing lost (I1-I5)."""
    assert 0 == await produce(scene, "s", 30, "--batch", "5", "--pause", "0")
    killed_producer = await produce(
        scene,
        "x",
        20,
        "--batch",
        "5",
        "--pause",
        "0",
        "--kill-at",
        "enqueue_commit",
        "--kill-after",
        "2",
    )
    assert KILLED == killed_producer
    points = ["after_claim", "after_effect", "claim_commit", "ack_commit", "release_commit"]
    for point in points:
        code = await scene.run("sqlite_consumer.py", "--kill-at", point, "--batch", "1")
        assert KILLED == code, point
    await scene.drain()
    f = check_invariants(scene)
    # The batch whose COMMIT was killed does not exist; the batch before it does.
    assert {f"x-{i}" for i in range(5)} <= set(f.rows)
    assert not {f"x-{i}" for i in range(5, 10)} & set(f.rows)
    assert 6 == len(f.killed)
    # Exactly two kills fell between an effect and its ack (after_effect, ack_commit).
    assert 2 == sum(n - 1 for n in f.effects.values())
    # Four claims were lost with their worker (claim_commit rolled back its claim).
    assert 4 == sum(row[2] for row in f.rows.values())
    assert {"succeeded"} == {row[0] for row in f.rows.values()}


async def producer(scene: Scene, prefix: str, count: int) -> asyncio.subprocess.Process:
    args = ["--prefix", prefix, "--count", str(count), "--batch", "4", "--pause", "0.04"]
    return await scene.spawn("sqlite_producer.py", *args)


async def consumer(scene: Scene) -> asyncio.subprocess.Process:
    return await scene.spawn("sqlite_consumer.py", "--batch", "5", "--max-seconds", "50")


async def test_twenty_random_kills_under_load(scene: Scene) -> None:
    """20 SIGKILLs of working consumers and producers at random moments (T1): nothing lost.

    A victim is only chosen among processes that already opened the store, so
    every kill lands in the middle of real work (claims, effects, acks, enqueues).
    """
    rng = random.Random(20)
    producing = await producer(scene, "a", 300)
    consumers = [await consumer(scene) for _ in range(3)]
    kills = 0
    while kills < 20:
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        if kills in (6, 13) and scene.alive(producing):
            await scene.kill(producing, "random")
            producing = await producer(scene, f"p{kills}", 80)
            kills += 1
            continue
        ready = [index for index, process in enumerate(consumers) if scene.alive(process)]
        if ready:
            victim = rng.choice(ready)
            await scene.kill(consumers[victim], "random")
            consumers[victim] = await consumer(scene)
            kills += 1
    if producing.returncode is None:
        assert 0 == await scene.finish(producing)
    for process in consumers:
        await scene.kill(process, "end of the storm")
    await scene.drain()
    f = check_invariants(scene)
    assert 20 + len(consumers) == len(f.killed)
    assert len(f.acked) >= 100
    assert sum(f.effects.values()) >= len(f.acked)


async def test_poison_task_is_dead_lettered_after_three_deliveries(scene: Scene) -> None:
    """A task that kills its consumer every time ends dead after 3 deliveries (T9)."""
    async with await SqliteStore.open(scene.db) as store:
        await store.enqueue(b"poison", name="t", task_id="poison")
        await store.enqueue_many(
            [NewTask(payload=f"task:{i}".encode(), name="t", task_id=f"ok-{i}") for i in range(5)]
        )
    oracle = Oracle(scene.oracle)
    oracle.submitted(["poison", *(f"ok-{i}" for i in range(5))], "intent")
    oracle.submitted(["poison", *(f"ok-{i}" for i in range(5))], "acked")
    oracle.close()
    deaths = 0
    for _ in range(6):
        code = await scene.run("sqlite_consumer.py", "--until-quiet", "--lease", "1.0")
        if code == 0:
            break
        assert KILLED == code
        deaths += 1
    f = check_invariants(scene)
    assert 3 == deaths
    assert ("dead", "worker lost 3 times", 3, 3) == f.rows["poison"]
    assert all(f.rows[f"ok-{i}"][0] == "succeeded" for i in range(5))


async def test_malformed_rows_and_payloads_never_crash_a_consumer(scene: Scene) -> None:
    """Garbage rows and payloads are dead-lettered with reasons; the consumer goes on (T10)."""
    async with await SqliteStore.open(scene.db) as store:
        await store.enqueue_many(
            [NewTask(payload=f"task:{i}".encode(), name="t", task_id=f"ok-{i}") for i in range(5)]
            + [
                NewTask(payload=p, name="t", task_id=f"bad-{i}")
                for i, p in enumerate([b"\x80\x04pickle", b"", b"{json}", b"\xff" * 1000])
            ]
        )
    rows: list[dict[str, Any]] = [{"payload": "text"}, {"priority": "x"}, {"attempt": -5}]
    for index, garbage in enumerate(rows):
        insert_raw(scene.db, id=f"row-{index}", **garbage)
    ids = [f"ok-{i}" for i in range(5)] + [f"bad-{i}" for i in range(4)]
    ids += [f"row-{i}" for i in range(3)]
    oracle = Oracle(scene.oracle)
    oracle.submitted(ids, "intent")
    oracle.submitted(ids, "acked")
    oracle.close()
    await scene.drain()
    f = check_invariants(scene)
    dead = {t: row[1] for t, row in f.rows.items() if row[0] == "dead"}
    assert {f"bad-{i}" for i in range(4)} | {f"row-{i}" for i in range(3)} == set(dead)
    assert all(reason for reason in dead.values())
    assert dead["row-1"] == "malformed row: priority is text 'x', expected an integer"
