"""SqliteStore: opening, enqueueing, unique keys, claim order and scheduling (virtual time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlite_support import WALL0, column, raw

from taskmill import BackendError, ConfigurationError, NotRunning
from taskmill.sqlite import SCHEMA_VERSION, Enqueued, NewTask, SqliteStore, Status

pytestmark = pytest.mark.virtual_time(wall_start=WALL0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


class TestOpen:
    async def test_creates_schema_in_wal_mode(self, tmp_path: Path) -> None:
        """Opening a new file creates the schema, versioned, in WAL mode."""
        path = tmp_path / "new.db"
        store = await SqliteStore.open(path)
        await store.close()
        with raw(path) as conn:
            assert SCHEMA_VERSION == conn.execute("PRAGMA user_version").fetchone()[0]
            assert "wal" == conn.execute("PRAGMA journal_mode").fetchone()[0]

    async def test_reopen_keeps_tasks(self, tmp_path: Path) -> None:
        """A second open of the same file sees the tasks of the first."""
        path = tmp_path / "t.db"
        async with await SqliteStore.open(path) as first:
            queued = await first.enqueue(b"x", name="a")
        async with await SqliteStore.open(path) as second:
            record = await second.get(queued.task_id)
        assert record is not None
        assert b"x" == record.payload

    async def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A file from a newer taskmill is refused with a clear error, not migrated."""
        path = tmp_path / "t.db"
        await (await SqliteStore.open(path)).close()
        with raw(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        with pytest.raises(BackendError, match="newer than this taskmill supports"):
            await SqliteStore.open(path)

    async def test_unopenable_path_is_backend_unavailable(self, tmp_path: Path) -> None:
        """A path in a missing directory raises BackendUnavailable (a ConnectionError)."""
        with pytest.raises(ConnectionError, match="cannot open"):
            await SqliteStore.open(tmp_path / "missing" / "t.db")

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("lease", 0),
            ("lease", float("nan")),
            ("max_worker_lost", 0),
            ("synchronous", "extra"),
            ("busy_timeout", -1),
            ("results_ttl", 0),
            ("max_poll_interval", float("inf")),
        ],
    )
    async def test_bad_options_raise(self, tmp_path: Path, option: str, value: object) -> None:
        """Invalid options raise ConfigurationError at open."""
        with pytest.raises(ConfigurationError, match=option):
            await SqliteStore.open(tmp_path / "t.db", **{option: value})  # type: ignore[arg-type]

    async def test_closed_store_raises_not_running(self, tmp_path: Path) -> None:
        """Every call after close raises NotRunning; closing twice is fine."""
        store = await SqliteStore.open(tmp_path / "t.db")
        await store.close()
        await store.close()
        with pytest.raises(NotRunning):
            await store.enqueue(b"", name="a")
        assert "closed" in repr(store)

    async def test_repr_shows_state(self, store: SqliteStore) -> None:
        """The repr names the file, the state and the lease."""
        assert "tasks.db" in repr(store)
        assert "open lease=10s" in repr(store)

    def test_import_taskmill_does_not_import_sqlite(self) -> None:
        """`import taskmill` leaves taskmill.sqlite alone (it is an extra)."""
        import subprocess

        code = "import sys, taskmill; print('taskmill.sqlite' in sys.modules)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "False" == out.stdout.strip()


class TestEnqueue:
    async def test_enqueue_stores_every_field(self, store: SqliteStore) -> None:
        """A new task is queued now, with its fields, attempt 1 and no deliveries."""
        await asyncio.sleep(5)
        queued = await store.enqueue(b"\x00\xff", name="mail.send", queue="q", priority=3)
        assert queued.created
        record = await store.get(queued.task_id)
        assert record is not None
        assert (Status.QUEUED, "mail.send", "q", 3) == (
            record.status,
            record.name,
            record.queue,
            record.priority,
        )
        assert (b"\x00\xff", 1, 0, 0) == (
            record.payload,
            record.attempt,
            record.deliveries,
            record.worker_lost,
        )
        assert WALL0 + 5 == record.enqueued_at == record.run_at
        assert record.started_at is None
        assert record.finished_at is None

    async def test_given_task_id_is_idempotent(self, store: SqliteStore) -> None:
        """Enqueueing an existing id is a no-op that returns created=False."""
        first = await store.enqueue(b"1", name="a", task_id="order-7")
        again = await store.enqueue(b"2", name="a", task_id="order-7")
        assert Enqueued(task_id="order-7", created=True) == first
        assert Enqueued(task_id="order-7", created=False) == again
        record = await store.get("order-7")
        assert record is not None
        assert b"1" == record.payload

    async def test_enqueue_many_is_one_batch(self, store: SqliteStore) -> None:
        """enqueue_many stores every task and reports each outcome in order."""
        tasks = [NewTask(payload=bytes([i]), name="n") for i in range(50)]
        outcomes = await store.enqueue_many(tasks)
        assert 50 == len({outcome.task_id for outcome in outcomes})
        assert all(outcome.created for outcome in outcomes)
        assert 50 == (await store.statistics()).by_status["queued"]

    async def test_enqueue_many_empty(self, store: SqliteStore) -> None:
        """An empty batch does nothing."""
        assert [] == await store.enqueue_many([])

    async def test_enqueue_many_rejects_non_tasks(self, store: SqliteStore) -> None:
        """Items must be NewTask."""
        with pytest.raises(ConfigurationError, match="NewTask"):
            await store.enqueue_many([b"x"])  # type: ignore[list-item]

    @pytest.mark.parametrize(
        ("field", "value", "match"),
        [
            ("payload", "text", "payload must be bytes"),
            ("name", "", "name"),
            ("queue", "", "queue"),
            ("priority", 1.5, "priority"),
            ("priority", True, "priority"),
            ("priority", 2**64, "64 bits"),
            ("run_at", dt.datetime(2030, 1, 1), "aware"),  # noqa: DTZ001 - naive on purpose
            ("run_at", float("nan"), "run_at"),
            ("unique_key", "", "unique_key"),
            ("task_id", 5, "task_id"),
        ],
    )
    def test_bad_fields_raise_at_construction(self, field: str, value: object, match: str) -> None:
        """NewTask (and so enqueue) rejects bad input with ConfigurationError."""
        fields: dict[str, object] = {"payload": b"", "name": "a", field: value}
        with pytest.raises(ConfigurationError, match=match):
            NewTask(**fields)  # type: ignore[arg-type]

    async def test_bad_input_writes_nothing(self, store: SqliteStore) -> None:
        """A rejected enqueue leaves the database untouched."""
        with pytest.raises(ConfigurationError):
            await store.enqueue(b"x", name="a", priority="high")  # type: ignore[arg-type]
        assert 0 == (await store.statistics()).total

    async def test_aware_datetime_run_at(self, store: SqliteStore) -> None:
        """run_at accepts an aware datetime and stores its POSIX seconds."""
        when = dt.datetime.fromtimestamp(WALL0 + 3600, dt.UTC)
        queued = await store.enqueue(b"", name="a", run_at=when)
        record = await store.get(queued.task_id)
        assert record is not None
        assert (Status.SCHEDULED, WALL0 + 3600) == (record.status, record.run_at)


class TestUniqueKeys:
    async def test_live_key_returns_the_holder(self, store: SqliteStore) -> None:
        """While a task holding the key is live, enqueue returns that task."""
        first = await store.enqueue(b"1", name="a", unique_key="user:1")
        second = await store.enqueue(b"2", name="a", unique_key="user:1")
        assert Enqueued(task_id=first.task_id, created=False) == second
        assert 1 == (await store.statistics()).total

    async def test_key_survives_claim_and_retry(self, store: SqliteStore) -> None:
        """A running or retrying task still holds its key."""
        from taskmill.sqlite import ErrorText

        first = await store.enqueue(b"1", name="a", unique_key="k")
        (claim,) = await store.claim(["default"], worker="w")
        assert not (await store.enqueue(b"2", name="a", unique_key="k")).created
        error = ErrorText(type="E", message="boom")
        await store.nack(claim.task_id, claim.token, error=error, retry_at=WALL0 + 100)
        again = await store.enqueue(b"3", name="a", unique_key="k")
        assert Enqueued(task_id=first.task_id, created=False) == again

    async def test_terminal_transition_releases_key(self, store: SqliteStore) -> None:
        """Once the holder is terminal, the key is free for a new task."""
        first = await store.enqueue(b"1", name="a", unique_key="k")
        (claim,) = await store.claim(["default"], worker="w")
        assert await store.ack(claim.task_id, claim.token, b"ok")
        second = await store.enqueue(b"2", name="a", unique_key="k")
        assert second.created
        assert first.task_id != second.task_id
        assert "k" == column(store.path, first.task_id, "unique_key")

    async def test_one_batch_dedups_within_itself(self, store: SqliteStore) -> None:
        """Two tasks with one key in one batch: the second returns the first."""
        tasks = [NewTask(payload=b"", name="a", unique_key="k") for _ in range(3)]
        outcomes = await store.enqueue_many(tasks)
        assert [True, False, False] == [outcome.created for outcome in outcomes]
        assert 1 == len({outcome.task_id for outcome in outcomes})

    async def test_concurrent_submits_one_key_make_one_task(self, store: SqliteStore) -> None:
        """1,000 concurrent submits with one key make exactly one task (T11)."""
        outcomes = await asyncio.gather(
            *(store.enqueue(b"", name="a", unique_key="once") for _ in range(1000))
        )
        assert 1 == sum(outcome.created for outcome in outcomes)
        assert 1 == len({outcome.task_id for outcome in outcomes})
        assert 1 == (await store.statistics()).total


class TestClaimOrder:
    async def test_priority_then_fifo(self, store: SqliteStore) -> None:
        """Lower priority first; enqueue order within a priority."""
        for index, priority in enumerate([5, 1, 5, 0, 1]):
            await store.enqueue(b"", name=f"t{index}", priority=priority)
        claims = await store.claim(["default"], worker="w", limit=10)
        assert ["t3", "t1", "t4", "t0", "t2"] == [claim.name for claim in claims]

    async def test_limit_bounds_the_batch(self, store: SqliteStore) -> None:
        """A claim takes at most `limit` tasks; the rest stay queued in order."""
        await store.enqueue_many([NewTask(payload=b"", name=f"t{i}") for i in range(5)])
        first = await store.claim(["default"], worker="w", limit=2)
        second = await store.claim(["default"], worker="w", limit=2)
        assert ["t0", "t1", "t2", "t3"] == [claim.name for claim in first + second]

    async def test_only_named_queues(self, store: SqliteStore) -> None:
        """Tasks of other queues are not claimed."""
        await store.enqueue(b"", name="mail", queue="mail")
        await store.enqueue(b"", name="img", queue="images")
        claims = await store.claim(["images"], worker="w", limit=10)
        assert ["img"] == [claim.name for claim in claims]

    async def test_several_queues_merge_by_priority_then_fifo(self, store: SqliteStore) -> None:
        """Across queues, order is still priority then enqueue order."""
        await store.enqueue(b"", name="a1", queue="a", priority=1)
        await store.enqueue(b"", name="b0", queue="b", priority=0)
        await store.enqueue(b"", name="a0", queue="a", priority=0)
        await store.enqueue(b"", name="c0", queue="c", priority=0)
        claims = await store.claim(["a", "b"], worker="w", limit=10)
        assert ["b0", "a0", "a1"] == [claim.name for claim in claims]

    async def test_single_string_is_one_queue(self, store: SqliteStore) -> None:
        """`queues="mail"` means the queue named mail, not four one-letter queues."""
        await store.enqueue(b"", name="m", queue="mail")
        assert ["m"] == [claim.name for claim in await store.claim("mail", worker="w")]

    async def test_claim_fields(self, store: SqliteStore) -> None:
        """A claim carries a token, the lease on the monotonic clock and the counters."""
        await asyncio.sleep(2)
        queued = await store.enqueue(b"data", name="a", unique_key="k")
        await asyncio.sleep(1)
        (claim,) = await store.claim(["default"], worker="w1", lease=4.0)
        assert (queued.task_id, b"data", 1, 1, 0) == (
            claim.task_id,
            claim.payload,
            claim.attempt,
            claim.deliveries,
            claim.worker_lost,
        )
        assert (WALL0 + 2, WALL0 + 2, 7.0, "k") == (
            claim.enqueued_at,
            claim.run_at,
            claim.lease_until,
            claim.unique_key,
        )
        record = await store.get(claim.task_id)
        assert record is not None
        assert (Status.RUNNING, "w1", WALL0 + 3) == (
            record.status,
            record.worker,
            record.started_at,
        )

    async def test_tokens_are_unique_per_delivery(self, store: SqliteStore) -> None:
        """Each delivery of the same task gets a new token."""
        await store.enqueue(b"", name="a")
        tokens = set()
        for _ in range(5):
            (claim,) = await store.claim(["default"], worker="w")
            tokens.add(claim.token)
            assert await store.release(claim.task_id, claim.token)
        assert 5 == len(tokens)

    async def test_empty_queue_claims_nothing(self, store: SqliteStore) -> None:
        """No due task: an empty list."""
        assert [] == await store.claim(["default"], worker="w", limit=10)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"queues": [], "worker": "w"}, "at least one queue"),
            ({"queues": [""], "worker": "w"}, "queue name"),
            ({"queues": ["q"], "worker": ""}, "worker"),
            ({"queues": ["q"], "worker": "w", "limit": 0}, "limit"),
            ({"queues": ["q"], "worker": "w", "lease": -1.0}, "lease"),
        ],
    )
    async def test_bad_claims_raise(
        self, store: SqliteStore, kwargs: dict[str, object], match: str
    ) -> None:
        """Invalid claim arguments raise ConfigurationError."""
        with pytest.raises(ConfigurationError, match=match):
            await store.claim(**kwargs)  # type: ignore[arg-type]


class TestScheduling:
    async def test_scheduled_task_is_due_at_its_exact_time(self, store: SqliteStore) -> None:
        """A task with run_at in the future is claimable from that instant, not before."""
        await store.enqueue(b"", name="later", run_at=WALL0 + 60)
        assert [] == await store.claim(["default"], worker="w")
        await asyncio.sleep(59.999)
        assert [] == await store.claim(["default"], worker="w")
        await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        assert 60.0 == loop.time()
        assert ["later"] == [claim.name for claim in await store.claim(["default"], worker="w")]

    async def test_past_run_at_is_due_at_once(self, store: SqliteStore) -> None:
        """run_at in the past means as soon as possible."""
        queued = await store.enqueue(b"", name="a", run_at=WALL0 - 3600)
        record = await store.get(queued.task_id)
        assert record is not None
        assert Status.QUEUED == record.status
        assert 1 == len(await store.claim(["default"], worker="w"))

    async def test_due_scheduled_task_keeps_priority_order(self, store: SqliteStore) -> None:
        """Once due, a scheduled task competes by priority with queued ones."""
        await store.enqueue(b"", name="low", priority=9)
        await store.enqueue(b"", name="urgent-later", priority=0, run_at=WALL0 + 10)
        await asyncio.sleep(10)
        claims = await store.claim(["default"], worker="w", limit=2)
        assert ["urgent-later", "low"] == [claim.name for claim in claims]

    async def test_statistics_show_schedule_edges(self, store: SqliteStore) -> None:
        """oldest_due, lag and next_scheduled follow the schedule."""
        await store.enqueue(b"", name="now")
        await store.enqueue(b"", name="later", run_at=WALL0 + 30)
        await asyncio.sleep(4)
        stats = await store.statistics()
        assert (WALL0, 4.0, WALL0 + 30) == (stats.oldest_due, stats.lag, stats.next_scheduled)
        assert {"queued": 1, "scheduled": 1} == dict(stats.by_queue["default"])
