"""More Redis fault tests (RELIABILITY.md T5, T7, T10, T11, T12, T16, T17, soak).

Real ``DurableWorker`` processes (``durable_worker.py``: the product's worker loop and
its SIGTERM handling) against real ``redis-server`` processes on loopback; partitions
go through a small TCP proxy (``proxy.py``). Task bodies record ``started`` and
``effects`` rows in an oracle (a separate SQLite file); producers keep the ids Redis
acknowledged. After each scenario :func:`check_invariants` asserts I1-I5.

Leases are short (1-2 s, sweep 0.25-0.5 s). The soak runs only with ``TASKMILL_SOAK=1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from durable_worker import registry
from proxy import Proxy

import redis
import taskmill as tm
from taskmill import BackendUnavailable
from taskmill.redis import CancelOutcome, RedisStore, Status, TaskRecord
from taskmill.redis import ErrorText as ErrorText  # noqa: PLC0414 - for SwallowingStore

pytestmark = pytest.mark.real_time

HERE = Path(__file__).parent


# -- the scene: worker processes, an oracle, the producer's acknowledged ids --------------
@dataclass
class Scene:
    """One scenario: its directory, the Redis URL, the worker processes and what was accepted."""

    url: str
    tmp: Path
    accepted: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # lost by design (no persistence)
    faults: Counter[str] = field(default_factory=Counter)  # pid -> faults (kills, stops)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def oracle(self) -> Path:
        return self.tmp / "oracle.db"

    @property
    def stats_file(self) -> Path:
        return self.tmp / "stats.jsonl"

    def spawn(self, name: str, *extra: str, url: str | None = None) -> subprocess.Popen[bytes]:
        args = [sys.executable, str(HERE / "durable_worker.py"), url or self.url]
        args += [str(self.oracle), name, "--stats", str(self.stats_file), *extra]
        with (self.tmp / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> float:
        """SIGTERM ``proc``; return how long it took to exit (0), or fail with its stacks."""
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            proc.kill()
            proc.wait()
            pytest.fail(f"{name} did not stop in {timeout} s:\n{self.log(name)[-20000:]}")
        assert 0 == code, self.log(name)
        return time.monotonic() - began

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def drain(self, *extra: str) -> None:
        """Run one clean worker until the store held nothing live for a moment."""
        proc = self.spawn("drain", "--idle", "0.6", "--lease", "1", "--sweep", "0.25", *extra)
        assert 0 == proc.wait(timeout=60), self.log("drain")

    def stats(self) -> list[dict[str, Any]]:
        lines = self.stats_file.read_text().splitlines()
        return [json.loads(line) for line in lines]

    def submit(self, calls: Iterable[tuple[str, Sequence[object]]]) -> list[str]:
        """Submit ``(task, args)`` with ids ``t0, t1, ...`` (the id is the first argument)."""
        start = len(self.accepted) + len(self.forgotten)
        ids = asyncio.run(submit(self.url, calls, start=start))
        self.accepted += ids
        return ids

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        self.faults[str(proc.pid)] += 1
        proc.kill()
        proc.wait()

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def scene(redis_url: str, tmp_path: Path) -> Iterator[Scene]:
    made = Scene(redis_url, tmp_path)
    yield made
    made.cleanup()


async def submit(
    url: str, calls: Iterable[tuple[str, Sequence[object]]], *, start: int = 0
) -> list[str]:
    async with await RedisStore.open(url) as store:
        client = tm.DurableClient(store, registry)
        handles = await asyncio.gather(
            *(
                client.with_options(task_id=f"t{start + i}").submit(name, f"t{start + i}", *args)
                for i, (name, args) in enumerate(calls)
            )
        )
    assert all(h.created for h in handles)
    return [h.id for h in handles]


def rows(oracle: Path, table: str) -> list[tuple[str, int, str]]:
    if not oracle.exists():
        return []
    with closing(sqlite3.connect(oracle)) as conn:
        try:
            return list(conn.execute(f"SELECT task, pid, worker FROM {table}"))
        except sqlite3.OperationalError:
            return []


def wait_for(what: Callable[[], bool], timeout: float = 20.0, why: str = "") -> None:
    """Wait (polling another process' output) until ``what()`` holds."""
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {why or what}"
        time.sleep(0.02)


async def records(url: str, ids: Iterable[str]) -> dict[str, TaskRecord | None]:
    async with await RedisStore.open(url) as store:
        return {task_id: await store.get(task_id) for task_id in ids}


def check_invariants(scene: Scene) -> dict[str, TaskRecord]:
    """I1-I5 after quiescence; returns the final record of every accepted task."""
    found = asyncio.run(records(scene.url, scene.accepted))
    effects = Counter(task for task, _, _ in rows(scene.oracle, "effects"))
    hit: dict[str, int] = defaultdict(int)  # faults that hit a task: a runner died or froze
    for task, pid in {(task, pid) for task, pid, _ in rows(scene.oracle, "started")}:
        hit[task] += scene.faults[str(pid)]
    final: dict[str, TaskRecord] = {}
    for task_id, record in found.items():
        assert record is not None, f"I1: {task_id} vanished"
        final[task_id] = record
        assert effects[task_id] >= 1 or record.status in (
            Status.DEAD,
            Status.CANCELLED,
            Status.FAILED,
        ), f"I1: {task_id} lost ({record.status})"
        # Lease expiries are faults too (a frozen or starved worker); only Redis counts them.
        faults = max(hit[task_id], record.worker_lost)
        assert effects[task_id] <= 1 + faults, f"I2: {task_id} ran {effects[task_id]}x"
        assert record.terminal, f"I3: {task_id} is {record.status}"
    check_residue(scene.url)
    submitted = set(scene.accepted) | set(scene.forgotten)
    assert set(effects) <= submitted, "I5: an effect for a task never accepted"
    return final


def check_residue(url: str) -> None:
    """I4: nothing running, no lease, no unique key, no ready list left behind."""
    client = redis.Redis.from_url(url)
    try:
        assert 0 == client.zcard("tm:{default}:l"), "I4: a lease is left"
        assert [] == list(client.scan_iter("tm:{default}:u:*")), "I4: a unique key is left"
        assert [] == list(client.scan_iter("tm:{default}:r:*")), "I4: a ready list is left"
    finally:
        client.close()


def result_of(record: TaskRecord) -> object:
    assert record.result is not None
    return json.loads(record.result)


# -- T7: partitions ------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_partitioned_worker_is_fenced_then_reconnects(
    scene: Scene, redis_server: Any, fault: str
) -> None:
    """A worker cut off longer than its lease loses the task to another worker; once the
    partition heals its renewal is refused (fencing), it drops its copy without writing,
    reconnects and goes on working."""
    lease = ("--lease", "1", "--sweep", "0.25", "--socket-timeout", "0.5", "--retries", "1")
    with Proxy(redis_server.port) as proxy:
        (task,) = scene.submit([("sleep", [4.0])])
        cutoff = scene.spawn("cutoff", *lease, url=proxy.url)
        wait_for(lambda: [task] == [t for t, _, _ in rows(scene.oracle, "started")])
        getattr(proxy, fault)()
        healthy = scene.spawn("healthy", *lease)
        wait_for(lambda: "healthy" in {w for _, _, w in rows(scene.oracle, "started")})
        proxy.heal()
        wait_for(lambda: "lost the lease of t0" in scene.log("cutoff"), why="the refused renew")
        wait_for(lambda: len(rows(scene.oracle, "effects")) == 1, why="the healthy run")
        scene.stop(healthy, "healthy")
        # Only the cut-off worker is left: it must have reconnected to take these.
        later = scene.submit([("ok", []) for _ in range(20)])
        wait_for(lambda: len(rows(scene.oracle, "effects")) == 21, why="work after healing")
        scene.stop(cutoff, "cutoff")
    assert [(task, "healthy")] == [(t, w) for t, _, w in rows(scene.oracle, "effects")][:1]
    assert {"cutoff"} == {w for t, _, w in rows(scene.oracle, "effects") if t in later}
    final = check_invariants(scene)
    assert (Status.SUCCEEDED, "healthy", 1) == (
        final[task].status,
        result_of(final[task]),
        final[task].worker_lost,
    )
    cutoff_stats = next(s for s in scene.stats() if s["worker_id"] == "cutoff")
    assert (1, 20) == (cutoff_stats["lost"], cutoff_stats["succeeded"])


async def test_producer_gets_a_clear_error_during_a_partition(redis_server: Any) -> None:
    """A producer behind a stalled or cut link gets BackendUnavailable within its timeout
    (no hang), and works again once the link heals; a submit whose reply was lost is
    retried safely with the same id."""
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    with Proxy(redis_server.port) as proxy:
        async with await RedisStore.open(proxy.url, socket_timeout=0.5, retries=1) as store:
            client = tm.DurableClient(store, registry)
            assert (await client.submit("ok", "before")).created
            for fault in (proxy.stall, proxy.cut):
                fault()
                started = time.monotonic()
                with pytest.raises(BackendUnavailable, match="unreachable during enqueue"):
                    await client.submit("ok", "during")
                # (retries + 1) x socket_timeout plus the capped jittered backoff.
                assert time.monotonic() - started < 3.0
                proxy.heal()
                assert (await client.submit("ok", "after")).created
            # A lost reply: the request reaches Redis after the client gave up.
            proxy.delay(0.8)
            once = client.with_options(task_id="lost-reply")
            with pytest.raises(BackendUnavailable):
                await once.submit("ok", "lost-reply")
            proxy.heal()
            again = await once.submit("ok", "lost-reply")
            assert not again.created
            stats = await store.statistics()
    # before, after x 2, lost-reply, and the stalled "during": held by the link, delivered
    # when it healed after the producer had given up on it (a lost reply, not a phantom).
    assert 5 == stats.total


# -- T5: Redis kill -9 and restart ---------------------------------------------------------
async def _submit_until_killed(server: Any, seconds: float) -> tuple[dict[str, float], float]:
    """Submit from 20 concurrent producers; kill -9 Redis after ``seconds``.

    Returns the acknowledged ids with their acknowledgement time, and the kill time.
    """
    acked: dict[str, float] = {}
    killed = asyncio.Event()
    async with await RedisStore.open(server.url, retries=0, socket_timeout=1) as store:
        client = tm.DurableClient(store, registry)

        async def producer(n: int) -> None:
            i = 0
            while not killed.is_set():
                tid = f"p{n}-{i}"
                i += 1
                try:
                    await client.with_options(task_id=tid).submit("ok", tid)
                except BackendUnavailable:
                    return
                acked[tid] = time.monotonic()

        producers = [asyncio.create_task(producer(n)) for n in range(20)]
        await asyncio.sleep(seconds)
        kill_time = time.monotonic()
        server.kill()
        killed.set()
        await asyncio.gather(*producers)
    return acked, kill_time


async def _present(url: str, ids: Iterable[str]) -> set[str]:
    wanted = list(ids)
    present: set[str] = set()
    async with await RedisStore.open(url) as store:
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            found = await asyncio.gather(*(store.get(task_id) for task_id in chunk))
            present |= {r.task_id for r in found if r is not None}
    return present


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_redis_kill9_loss_window(redis_factory: Callable[..., Any], fsync: str) -> None:
    """T5: kill -9 Redis under load, restart it from its AOF and count what is gone.

    ``always``: nothing acknowledged is lost. ``everysec``: what is lost must lie in the
    last 2 s before the kill; the measured window is printed (``-s`` shows it).
    """
    server = redis_factory(fsync)
    acked, kill_time = asyncio.run(_submit_until_killed(server, 1.5))
    assert len(acked) > 200
    server.start()
    lost = set(acked) - asyncio.run(_present(server.url, acked))
    window = max((kill_time - acked[t] for t in lost), default=0.0)
    rate = len(acked) / 1.5
    print(f"\nappendfsync {fsync}: {len(acked)} acked, {len(lost)} lost, window {window:.3f} s")  # noqa: T201
    if fsync == "always":
        assert set() == lost
    else:
        assert window <= 2.0
        assert len(lost) <= 2 * rate


def test_redis_restarting_empty_is_reported_and_workers_carry_on(
    redis_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """T5 (no persistence): Redis comes back empty; the worker reports the data loss
    (epoch marker), reconnects and runs new work; it never crash-loops."""
    server = redis_factory(None)
    scene = Scene(server.url, tmp_path)
    try:
        scene.submit([("ok", []) for _ in range(5)])
        worker = scene.spawn(
            "w", "--lease", "1", "--sweep", "0.25", "--socket-timeout", "0.5", "--retries", "1"
        )
        wait_for(lambda: len(rows(scene.oracle, "effects")) == 5)
        server.kill()
        time.sleep(1.5)  # the outage: longer than the worker's retries
        server.start()
        scene.forgotten, scene.accepted = scene.accepted, []  # Redis forgot them, by design
        later = scene.submit([("ok", []) for _ in range(5)])
        wait_for(lambda: len(rows(scene.oracle, "effects")) == 10, why="work after the restart")
        wait_for(lambda: "lost its data" in scene.log("w"), why="the data loss report")
        scene.stop(worker, "w")
        assert later == scene.accepted
        check_invariants(scene)
    finally:
        scene.cleanup()


# -- in-process: the worker's outage and stop paths ---------------------------------------
inproc = tm.TaskRegistry()


@inproc.task(name="echo")
async def echo(text: str) -> str:
    return text


class SwallowingStore:
    """A RedisStore whose reclaim loop ignores its first cancellation.

    That is what Python 3.11's ``asyncio.wait_for`` (inside redis-py) does to a
    cancellation arriving just as a socket write completes (CPython gh-86296); the
    partition tests hit it now and then when a worker stops.
    """

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self.swallowed = 0
        self.sleeping = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def run_reclaimer(self, interval: float = 1.0, *, limit: int = 100) -> None:
        while True:
            try:
                self.sleeping.set()
                await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


async def test_worker_stops_when_a_helper_swallows_a_cancellation(redis_url: str) -> None:
    """A helper that ignores one cancellation does not keep the worker from stopping."""
    async with await RedisStore.open(redis_url) as opened:
        store = SwallowingStore(opened)
        worker = tm.DurableWorker(cast("Any", store), inproc, reclaim_interval=0.05)
        running = asyncio.create_task(worker.run())
        await store.sleeping.wait()
        async with asyncio.timeout(5):
            await worker.stop()
            await running
    assert (1, "stopped") == (store.swallowed, worker.statistics().state)


class OutageStore:
    """A RedisStore whose first three claims fail as during an outage."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures < 3:
            self.failures += 1
            raise BackendUnavailable("Redis is unreachable during claim", backend="redis")
        return await self._store.claim(*args, **kwargs)


async def test_worker_retries_claims_through_an_outage(redis_url: str) -> None:
    """Claims failing with BackendUnavailable are retried with backoff; the worker lives."""
    async with await RedisStore.open(redis_url) as opened:
        store = OutageStore(opened)
        worker = tm.DurableWorker(cast("Any", store), inproc)
        running = asyncio.create_task(worker.run())
        handle = await tm.DurableClient(opened, inproc).submit(echo, "through")
        assert "through" == await handle.result(timeout=10)
        assert (3, "running") == (store.failures, worker.statistics().state)
        await worker.stop()
        await running


# -- T12: graceful shutdown ----------------------------------------------------------------
def test_graceful_shutdown_with_50_in_flight(scene: Scene) -> None:
    """SIGTERM with 50 running: claiming stops at once, tasks that finish within the grace
    are acked, the rest are released at once (same attempt, no worker-lost count) and
    taken by another worker without waiting for a lease; exit within grace + 1 s."""
    short = scene.submit([("sleep", [1.5]) for _ in range(25)])
    long = scene.submit([("hold", []) for _ in range(25)])
    extra = scene.submit([("ok", []) for _ in range(10)])
    grace = 2.0
    first = scene.spawn(
        "first", "--concurrency", "50", "--grace", str(grace), "--lease", "10", "--hold", "60"
    )
    wait_for(lambda: len(rows(scene.oracle, "started")) == 50, why="50 in flight")
    took = scene.stop(first, "first", timeout=grace + 5)
    assert took <= grace + 1.0
    ran = {t for t, _, w in rows(scene.oracle, "effects") if w == "first"}
    assert set(short) == ran
    found = asyncio.run(records(scene.url, long + extra))
    for task_id in long:
        record = found[task_id]
        assert record is not None
        assert (Status.QUEUED, 1, 0, 1) == (
            record.status,
            record.attempt,
            record.worker_lost,
            record.deliveries,
        )
    assert all(found[t] is not None and found[t].status is Status.QUEUED for t in extra)  # type: ignore[union-attr]
    stats = next(s for s in scene.stats() if s["worker_id"] == "first")
    assert (25, 25, 0, []) == (
        stats["succeeded"],
        stats["released"],
        stats["running"],
        stats["leftover_tasks"],
    )
    # The leftovers are due at once: a second worker finishes them well inside one lease.
    begun = time.monotonic()
    scene.drain("--concurrency", "50")
    assert time.monotonic() - begun < 8.0
    final = check_invariants(scene)
    assert {Status.SUCCEEDED} == {r.status for r in final.values()}
    assert {"drain"} == {w for t, _, w in rows(scene.oracle, "effects") if t in long + extra}
    print(f"\ngraceful shutdown: exit {took:.2f} s after SIGTERM (grace {grace} s)")  # noqa: T201


def test_second_sigterm_stops_at_once(scene: Scene) -> None:
    """A second SIGTERM during the grace period releases everything and exits at once."""
    held = scene.submit([("hold", []) for _ in range(10)])
    worker = scene.spawn("w", "--grace", "30", "--hold", "60", "--lease", "10")
    wait_for(lambda: len(rows(scene.oracle, "started")) == 10)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert worker.poll() is None  # still in its 30 s grace
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert 0 == worker.wait(timeout=5), scene.log("w")
    assert time.monotonic() - started < 1.0
    found = asyncio.run(records(scene.url, held))
    assert {(Status.QUEUED, 0)} == {(r.status, r.worker_lost) for r in found.values() if r}
    scene.drain()
    check_invariants(scene)


# -- T16: cancellation storm ---------------------------------------------------------------
async def _cancel_all(url: str, ids: Sequence[str]) -> tuple[list[CancelOutcome], list[float]]:
    async with await RedisStore.open(url) as store:
        outcomes = await asyncio.gather(*(store.cancel(task_id) for task_id in ids))
        requested = [t for t, o in zip(ids, outcomes, strict=True) if o is CancelOutcome.REQUESTED]
        begun = time.monotonic()

        async def terminal(task_id: str) -> float:
            await store.wait(task_id, timeout=10)
            return time.monotonic() - begun

        latencies = await asyncio.gather(*(terminal(t) for t in requested))
    return outcomes, latencies


def test_cancellation_storm(scene: Scene) -> None:
    """T16: 1,000 tasks, all cancelled at once while 40 run: every task ends exactly once
    (cancelled, or succeeded when it finished first), nothing cancelled while queued ever
    starts, nothing is left running and no asyncio task leaks in the worker."""
    ids = scene.submit([("sleep", [0.3 if i % 2 else 30.0]) for i in range(1000)])
    worker = scene.spawn("w", "--concurrency", "40", "--lease", "1.5", "--sweep", "0.25")
    wait_for(lambda: len(rows(scene.oracle, "started")) >= 60, why="some tasks running")
    outcomes, latencies = asyncio.run(_cancel_all(scene.url, ids))
    by_outcome = Counter(outcomes)
    assert by_outcome[CancelOutcome.REQUESTED] > 0
    assert by_outcome[CancelOutcome.CANCELLED] > 800
    scene.drain()  # the same quiescence check as everywhere; nothing is left to do
    scene.stop(worker, "w")
    final = check_invariants(scene)
    started = {t for t, _, _ in rows(scene.oracle, "started")}
    effects = Counter(t for t, _, _ in rows(scene.oracle, "effects"))
    for task_id, outcome in zip(ids, outcomes, strict=True):
        status = final[task_id].status
        if outcome is CancelOutcome.CANCELLED:
            assert (Status.CANCELLED, False) == (status, task_id in started)
        elif outcome is CancelOutcome.FINISHED:
            assert (Status.SUCCEEDED, 1) == (status, effects[task_id])
        else:
            assert status in (Status.CANCELLED, Status.SUCCEEDED)
            assert effects[task_id] == (1 if status is Status.SUCCEEDED else 0)
    stats = next(s for s in scene.stats() if s["worker_id"] == "w")
    assert (0, []) == (stats["running"], stats["leftover_tasks"])
    # Running tasks asked to cancel end cancelled by their worker (seen on renew), or by
    # the reclaim sweep when their lease ran out first (a loaded machine).
    assert (
        0
        < stats["cancelled"]
        <= sum(
            1
            for t, o in zip(ids, outcomes, strict=True)
            if o is CancelOutcome.REQUESTED and final[t].status is Status.CANCELLED
        )
    )
    latencies.sort()
    p99 = latencies[max(0, round(0.99 * len(latencies)) - 1)]
    print(f"\ncancel storm: {dict(by_outcome)}; running->terminal p99 {p99:.3f} s")  # noqa: T201
    assert p99 <= 1.0


# -- T17: tasks raising BaseException ------------------------------------------------------
def test_tasks_raising_base_exceptions_fail_and_the_worker_lives(scene: Scene) -> None:
    """T17: a custom BaseException, SystemExit, KeyboardInterrupt and the task's own
    CancelledError, from async and sync bodies, are each that task's failure (docs/durable.md);
    the worker keeps running and finishes the healthy tasks queued behind them."""
    kinds = ["base", "exit", "kbd", "cancel"]
    bad = scene.submit([(task, [kind]) for task in ("boom", "boom_sync") for kind in kinds])
    good = scene.submit([("ok", []) for _ in range(10)])
    worker = scene.spawn("w", "--concurrency", "1")
    wait_for(lambda: len(rows(scene.oracle, "effects")) == 10, why="the healthy tasks")
    assert worker.poll() is None, scene.log("w")
    scene.stop(worker, "w")
    final = check_invariants(scene)
    expected = [
        "__main__.CustomStop",
        "SystemExit",
        "KeyboardInterrupt",
        "asyncio.exceptions.CancelledError",
    ] * 2
    errors = [(final[t].status, final[t].error) for t in bad]
    assert [(Status.FAILED, name) for name in expected] == [
        (status, error.type if error is not None else None) for status, error in errors
    ]
    assert {Status.SUCCEEDED} == {final[t].status for t in good}
    stats = next(s for s in scene.stats() if s["worker_id"] == "w")
    assert (8, 10, 0) == (stats["failed"], stats["succeeded"], stats["running"])


# -- T10: malformed payloads through the real worker --------------------------------------
def _envelope(task: str, **changes: object) -> bytes:
    body: dict[str, object] = {
        "version": 1,
        "id": "x",
        "task": task,
        "args": ["x"],
        "kwargs": {},
        "options": {"priority": 0, "queue": "default"},
        "trace": {},
        "attempt": {"number": 1, "enqueued_at": 1.0, "attempt_id": None},
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_malformed_payloads_reach_the_dead_letters_not_the_worker(scene: Scene) -> None:
    """T10 for DurableWorker: bad bytes, an unknown task name, a wrong envelope version,
    a payload naming another task than it was enqueued as, a pickle blob — each is a dead
    letter with a reason; nothing runs and the worker goes on with good work."""
    bad = {
        "bytes": (b"\xff\xfe not json", "ok"),
        "unknown": (_envelope("os.system", args=["echo pwned"]), "os.system"),
        "version": (_envelope("ok", version=99), "ok"),
        "mismatch": (_envelope("boom", args=["x", "base"]), "ok"),
        "pickle": (b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.", "ok"),
        "args": (_envelope("ok", args=[1, 2, 3]), "ok"),
    }

    async def enqueue_raw() -> None:
        async with await RedisStore.open(scene.url) as store:
            for task_id, (payload, name) in bad.items():
                await store.enqueue(payload, name=name, task_id=task_id)

    asyncio.run(enqueue_raw())
    scene.accepted += list(bad)
    scene.submit([("ok", []) for _ in range(5)])
    scene.drain()
    final = check_invariants(scene)
    for task_id in bad:
        assert Status.DEAD == final[task_id].status, task_id
        assert final[task_id].dead_reason, task_id
    assert not {t for t, _, _ in rows(scene.oracle, "started")} & set(bad)
    assert "mismatch" not in {t for t, _, _ in rows(scene.oracle, "started")}
    assert 5 == len(rows(scene.oracle, "effects"))


# -- T11: one unique key, a burst from several processes ----------------------------------
def test_burst_of_same_unique_key_submits_from_four_processes(scene: Scene) -> None:
    """T11: 4 producer processes x 50 concurrent submits with one unique key -> 1 task."""
    producers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "burst_producer.py"), scene.url, "k1", "50"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for proc in producers:  # every producer is connected; then release them together
        assert proc.stdout is not None
        assert b"ready\n" == proc.stdout.readline()
    for proc in producers:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    answers = []
    for proc in producers:
        out, _ = proc.communicate(timeout=30)
        assert 0 == proc.returncode
        answers += json.loads(out)
    assert 200 == len(answers)
    assert 1 == sum(created for _, created in answers)
    assert 1 == len({task_id for task_id, _ in answers})
    scene.drain()
    (record,) = asyncio.run(records(scene.url, [answers[0][0]])).values()
    assert record is not None
    assert (Status.SUCCEEDED, "k1") == (record.status, record.unique_key)
    assert [("k1", "drain")] == [(t, w) for t, _, w in rows(scene.oracle, "effects")]
    check_residue(scene.url)


# -- soak (TASKMILL_SOAK=1) ----------------------------------------------------------------
@pytest.mark.skipif(os.environ.get("TASKMILL_SOAK") != "1", reason="soak: set TASKMILL_SOAK=1")
def test_soak_random_kills_stops_and_submits(scene: Scene) -> None:
    """Random worker SIGKILLs, SIGSTOPs past the lease and submits for
    TASKMILL_SOAK_SECONDS (default 120) under a printed seed, then I1-I5."""
    seed = int(os.environ.get("TASKMILL_SOAK_SEED", str(random.randrange(2**32))))
    seconds = float(os.environ.get("TASKMILL_SOAK_SECONDS", "120"))
    print(f"\nsoak seed {seed}, {seconds} s")  # noqa: T201
    rng = random.Random(seed)
    opts = ("--lease", "1", "--sweep", "0.25", "--concurrency", "8")
    workers = [scene.spawn(f"w{i}", *opts) for i in range(3)]
    spawned = 3
    kills = stops = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        action = rng.random()
        if action < 0.5:
            calls = [
                ("sleep", [rng.choice([0.01, 0.1, 0.5, 2.0])]) if rng.random() < 0.5 else ("ok", [])
                for _ in range(rng.randint(1, 50))
            ]
            scene.submit(calls)
        elif action < 0.8:
            victim = workers.pop(rng.randrange(len(workers)))
            scene.kill(victim)
            kills += 1
            workers.append(scene.spawn(f"w{spawned}", *opts))
            spawned += 1
        else:
            frozen = rng.choice(workers)
            scene.faults[str(frozen.pid)] += 1
            frozen.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.2, 2.5))
            frozen.send_signal(signal.SIGCONT)
            stops += 1
        time.sleep(rng.uniform(0.05, 1.0))
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for proc in workers:
        proc.wait(timeout=30)
    scene.drain()
    final = check_invariants(scene)
    print(  # noqa: T201
        f"soak: {len(scene.accepted)} tasks, {kills} kills, {stops} stops, "
        f"{Counter(str(r.status) for r in final.values())}"
    )
