"""The store's transactions against a model: a Hypothesis state machine over the sync core.

Drives the plain synchronous functions of ``taskmill.sqlite._sql`` (one connection,
time passed in) with random operations — stale tokens included — and checks after
every step that the database agrees with a small model and keeps the invariants:
fencing, exactly one status per task, no lease outside ``running``, unique keys
held by at most one live task.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from taskmill import StateError
from taskmill.sqlite import CancelOutcome, ErrorText, NewTask, Renewal, _schema, _sql

LEASE = 4.0
MAX_LOST = 2
WALL = 1_000.0  # wall time = WALL + monotonic time in this model
RETRY_IN = 3.0
BOOM = ErrorText(type="E", message="boom")
LIVE = {"queued", "scheduled", "running", "retrying"}


@dataclass
class Model:
    """What the store should hold for one task."""

    seq: int
    priority: int
    key: str | None
    status: str
    run_at: float
    attempt: int = 1
    deliveries: int = 0
    lost: int = 0
    token: str | None = None
    lease_until: float | None = None
    cancel: bool = False


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn = _schema.connect(":memory:", busy_timeout=1)
        _schema.prepare(self.conn, "normal")
        self.now = 0.0
        self.tasks: dict[str, Model] = {}
        self.claims: list[tuple[str, str]] = []  # every (task_id, token) ever handed out
        self.seq = 0

    @property
    def wall(self) -> float:
        return WALL + self.now

    def teardown(self) -> None:
        self.conn.close()

    # -- helpers -----------------------------------------------------------------------
    def owned(self, task_id: str, token: str) -> Model | None:
        model = self.tasks[task_id]
        ok = model.status == "running" and model.token == token
        return model if ok else None

    def end(self, model: Model, status: str) -> None:
        model.status = status
        model.lease_until = None

    # -- rules -------------------------------------------------------------------------
    @rule(
        priority=st.integers(0, 2),
        key=st.sampled_from([None, None, "a", "b"]),
        delay=st.sampled_from([0.0, 0.0, 5.0]),
    )
    def enqueue(self, priority: int, key: str | None, delay: float) -> None:
        self.seq += 1
        task_id = f"t{self.seq}"
        task = NewTask(payload=b"p", name="n", priority=priority, unique_key=key)
        if delay:
            task = NewTask(
                payload=b"p", name="n", priority=priority, unique_key=key, run_at=self.wall + delay
            )
        (outcome,) = _sql.enqueue_many(self.conn, [task], [task_id], self.wall)
        holder = [i for i, m in self.tasks.items() if key and m.key == key and m.status in LIVE]
        if holder:
            assert (holder[0], False) == (outcome.task_id, outcome.created)
            return
        assert (task_id, True) == (outcome.task_id, outcome.created)
        status = "scheduled" if delay else "queued"
        self.tasks[task_id] = Model(self.seq, priority, key, status, self.wall + delay)

    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        for model in self.tasks.values():
            if model.status in ("scheduled", "retrying") and model.run_at <= self.wall:
                model.status = "queued"
        ready = sorted(
            (m.priority, m.seq, i) for i, m in self.tasks.items() if m.status == "queued"
        )
        expected = [task_id for _, _, task_id in ready[:limit]]
        claims, malformed = _sql.claim(
            self.conn,
            ["default"],
            worker="w",
            limit=limit,
            wall=self.wall,
            lease_until=self.now + LEASE,
            boot="boot",
        )
        assert (expected, 0) == ([c.task_id for c in claims], malformed)
        for claim in claims:
            model = self.tasks[claim.task_id]
            model.status, model.token = "running", claim.token
            model.deliveries += 1
            model.lease_until = self.now + LEASE
            assert (model.attempt, model.deliveries) == (claim.attempt, claim.deliveries)
            self.claims.append((claim.task_id, claim.token))

    @precondition(lambda self: self.claims)
    @rule(pick=st.integers(0, 10**6))
    def ack(self, pick: int) -> None:
        task_id, token = self.claims[pick % len(self.claims)]
        model = self.owned(task_id, token)
        assert [model is not None] == _sql.ack_many(
            self.conn, [(task_id, token, b"r")], self.wall, None
        )
        if model is not None:
            self.end(model, "succeeded")

    @precondition(lambda self: self.claims)
    @rule(pick=st.integers(0, 10**6), retry=st.booleans())
    def nack(self, pick: int, retry: bool) -> None:
        task_id, token = self.claims[pick % len(self.claims)]
        model = self.owned(task_id, token)
        retry_at = self.wall + RETRY_IN if retry else None
        done = _sql.nack(
            self.conn,
            task_id,
            token,
            error=BOOM,
            retry_at=retry_at,
            status="failed",
            wall=self.wall,
            expires=None,
        )
        assert (model is not None) == done
        if model is None:
            return
        if model.cancel:
            self.end(model, "cancelled")
        elif retry_at is None:
            self.end(model, "failed")
        else:
            self.end(model, "retrying")
            model.attempt += 1
            model.run_at = retry_at

    @precondition(lambda self: self.claims)
    @rule(pick=st.integers(0, 10**6))
    def release(self, pick: int) -> None:
        task_id, token = self.claims[pick % len(self.claims)]
        model = self.owned(task_id, token)
        assert (model is not None) == _sql.release(self.conn, task_id, token, self.wall, None)
        if model is not None:
            self.end(model, "cancelled" if model.cancel else "queued")

    @precondition(lambda self: self.claims)
    @rule(pick=st.integers(0, 10**6))
    def renew(self, pick: int) -> None:
        task_id, token = self.claims[pick % len(self.claims)]
        model = self.owned(task_id, token)
        renewal = _sql.renew(self.conn, task_id, token, self.now + LEASE, "boot")
        if model is None:
            assert Renewal.LOST is renewal
            return
        expected = Renewal.CANCEL_REQUESTED if model.cancel else Renewal.HELD
        assert expected is renewal
        model.lease_until = self.now + LEASE

    @precondition(lambda self: self.tasks)
    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick: int) -> None:
        task_id = sorted(self.tasks)[pick % len(self.tasks)]
        model = self.tasks[task_id]
        outcome = _sql.cancel(self.conn, task_id, self.wall, None)
        if model.status in ("queued", "scheduled", "retrying"):
            assert CancelOutcome.CANCELLED is outcome
            self.end(model, "cancelled")
        elif model.status == "running":
            assert CancelOutcome.REQUESTED is outcome
            model.cancel = True
        else:
            assert CancelOutcome.FINISHED is outcome

    @rule(seconds=st.sampled_from([1.0, 3.0, 5.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def reclaim(self) -> None:
        report = _sql.reclaim(
            self.conn,
            mono=self.now,
            boot="boot",
            wall=self.wall,
            max_worker_lost=MAX_LOST,
            limit=1000,
            expires=None,
        )
        expired = {
            i
            for i, m in self.tasks.items()
            if m.status == "running" and m.lease_until is not None and m.lease_until <= self.now
        }
        got = {*report.requeued, *report.dead_lettered, *report.cancelled}
        assert expired == got
        for task_id in expired:
            model = self.tasks[task_id]
            model.lost += 1
            if model.cancel:
                self.end(model, "cancelled")
            elif model.lost >= MAX_LOST:
                self.end(model, "dead")
            else:
                self.end(model, "queued")

    @rule()
    def worker_dies(self) -> None:
        """A worker claims one task and dies; the lease runs out and a sweep reclaims it."""
        self.claim(1)
        self.advance(LEASE)
        self.reclaim()

    @precondition(lambda self: any(m.status == "dead" for m in self.tasks.values()))
    @rule(pick=st.integers(0, 10**6))
    def requeue_dead(self, pick: int) -> None:
        dead = sorted(i for i, m in self.tasks.items() if m.status == "dead")
        task_id = dead[pick % len(dead)]
        model = self.tasks[task_id]
        taken = any(
            m.key == model.key and m.status in LIVE for m in self.tasks.values() if model.key
        )
        if taken:
            with pytest.raises(StateError):
                _sql.requeue_dead(self.conn, task_id, self.wall)
            return
        assert _sql.requeue_dead(self.conn, task_id, self.wall)
        model.status, model.lost, model.run_at, model.cancel = "queued", 0, self.wall, False

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def database_matches_model(self) -> None:
        rows = self.conn.execute(
            "SELECT id, status, attempt, deliveries, worker_lost, lease_until, cancel_requested"
            " FROM tasks"
        ).fetchall()
        assert len(self.tasks) == len(rows)
        for task_id, status, attempt, deliveries, lost, lease_until, cancel in rows:
            model = self.tasks[task_id]
            assert (model.status, model.attempt, model.deliveries, model.lost) == (
                status,
                attempt,
                deliveries,
                lost,
            ), task_id
            assert (status == "running") == (lease_until is not None)
            assert model.lease_until == lease_until
            assert model.cancel == bool(cancel)

    @invariant()
    def live_keys_are_unique(self) -> None:
        keys = self.conn.execute(
            "SELECT unique_key FROM tasks WHERE unique_key IS NOT NULL AND status IN"
            " ('queued', 'scheduled', 'running', 'retrying')"
        ).fetchall()
        assert len(keys) == len(set(keys))

    @invariant()
    def integrity(self) -> None:
        assert ("ok",) == self.conn.execute("PRAGMA quick_check").fetchone()


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)


def test_in_memory_connection_is_usable() -> None:
    """The model drives the same schema in memory (journal_mode falls back to 'memory')."""
    conn = _schema.connect(":memory:", busy_timeout=1)
    try:
        assert _schema.SCHEMA_VERSION == _schema.prepare(conn, "normal")
        assert ("memory",) == conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    assert isinstance(conn, sqlite3.Connection)
