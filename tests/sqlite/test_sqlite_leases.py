"""SqliteStore workers: leases, fencing, finishing, cancel, reclaim and dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlite_support import WALL0, column, residue

from taskmill import ConfigurationError, StateError, TaskNotFound, _clock
from taskmill.sqlite import (
    CancelOutcome,
    Claim,
    ErrorText,
    ReclaimReport,
    Renewal,
    SqliteStore,
    Status,
    TaskRecord,
)
from taskmill.sqlite import _checks as store_module

pytestmark = pytest.mark.virtual_time(wall_start=WALL0)

BOOM = ErrorText(type="ValueError", message="boom", traceback="Traceback ...")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


async def one(store: SqliteStore, name: str = "a", **kwargs: object) -> Claim:
    """Enqueue one task and claim it."""
    await store.enqueue(b"p", name=name, **kwargs)  # type: ignore[arg-type]
    (claim,) = await store.claim(["default"], worker="w")
    return claim


async def record(store: SqliteStore, task_id: str) -> TaskRecord:
    found = await store.get(task_id)
    assert found is not None
    return found


class TestRenew:
    async def test_renew_extends_the_lease(self, store: SqliteStore) -> None:
        """Renewing moves lease_until to now + lease, so reclaim leaves the task alone."""
        claim = await one(store)
        assert 10.0 == claim.lease_until
        await asyncio.sleep(8)
        assert Renewal.HELD is await store.renew(claim.task_id, claim.token)
        await asyncio.sleep(8)
        assert ReclaimReport() == await store.reclaim()
        assert 18.0 == column(store.path, claim.task_id, "lease_until")
        assert Renewal.HELD is await store.renew(claim.task_id, claim.token, lease=1.5)
        assert 17.5 == column(store.path, claim.task_id, "lease_until")

    async def test_renew_with_a_stale_token_is_lost(self, store: SqliteStore) -> None:
        """A wrong token renews nothing and says LOST (falsy)."""
        claim = await one(store)
        renewal = await store.renew(claim.task_id, "not-the-token")
        assert Renewal.LOST is renewal
        assert not renewal
        assert 10.0 == column(store.path, claim.task_id, "lease_until")

    async def test_renew_after_reclaim_is_lost(self, store: SqliteStore) -> None:
        """Once reclaimed, the old owner's lease is gone for good."""
        claim = await one(store)
        await asyncio.sleep(10)
        assert (claim.task_id,) == (await store.reclaim()).requeued
        assert Renewal.LOST is await store.renew(claim.task_id, claim.token)

    async def test_renew_late_but_before_reclaim_is_held(self, store: SqliteStore) -> None:
        """A lease that ran out but was not reclaimed yet can still be renewed (no one has it)."""
        claim = await one(store)
        await asyncio.sleep(30)
        assert Renewal.HELD is await store.renew(claim.task_id, claim.token)
        assert ReclaimReport() == await store.reclaim()


class TestFencing:
    async def test_stale_worker_writes_are_refused(self, store: SqliteStore) -> None:
        """After a reclaim and a new claim, every write with the old token is refused."""
        stale = await one(store)
        await asyncio.sleep(10)
        await store.reclaim()
        (fresh,) = await store.claim(["default"], worker="w2")
        assert stale.task_id == fresh.task_id
        assert stale.token != fresh.token
        assert not await store.ack(stale.task_id, stale.token, b"stale")
        assert not await store.nack(stale.task_id, stale.token, error=BOOM)
        assert not await store.release(stale.task_id, stale.token)
        assert not await store.dead_letter(stale.task_id, stale.token, "stale")
        assert not await store.ack_cancelled(stale.task_id, stale.token)
        assert not await store.renew(stale.task_id, stale.token)
        now = await record(store, fresh.task_id)
        assert (Status.RUNNING, None, 2) == (now.status, now.result, now.deliveries)
        assert await store.ack(fresh.task_id, fresh.token, b"fresh")
        assert b"fresh" == (await record(store, fresh.task_id)).result

    async def test_second_ack_is_refused(self, store: SqliteStore) -> None:
        """A task acks once; a repeated ack (e.g. a retried reply) changes nothing."""
        claim = await one(store)
        assert await store.ack(claim.task_id, claim.token, b"1")
        assert not await store.ack(claim.task_id, claim.token, b"2")
        assert b"1" == (await record(store, claim.task_id)).result

    async def test_unknown_task_writes_are_refused(self, store: SqliteStore) -> None:
        """Writes for ids that do not exist return False."""
        assert not await store.ack("nope", "t", None)
        assert Renewal.LOST is await store.renew("nope", "t")


class TestCancelledCalls:
    async def test_cancelled_claim_gives_its_tasks_back(self, store: SqliteStore) -> None:
        """A claim cancelled mid-flight releases what it took: due now, no penalty."""
        queued = await store.enqueue(b"", name="a")
        claiming = asyncio.create_task(store.claim(["default"], worker="w"))
        await asyncio.sleep(0)  # the claim transaction is now in the store's thread
        claiming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claiming
        await store.close()  # waits for the give-back
        async with await SqliteStore.open(store.path) as again:
            back = await record(again, queued.task_id)
        assert (Status.QUEUED, 0, 1) == (back.status, back.worker_lost, back.attempt)
        assert {"live": 1, "leases": 0, "unique_keys": 0} == residue(again.path)


class TestFinish:
    async def test_ack_stores_result_and_frees_the_lease(self, store: SqliteStore) -> None:
        """ack: succeeded, result, finished_at; no lease left."""
        claim = await one(store)
        await asyncio.sleep(3)
        assert await store.ack(claim.task_id, claim.token, b"result")
        done = await record(store, claim.task_id)
        assert (Status.SUCCEEDED, b"result", WALL0 + 3) == (
            done.status,
            done.result,
            done.finished_at,
        )
        assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(store.path)

    async def test_ack_many_is_per_item(self, store: SqliteStore) -> None:
        """ack_many answers per item: stale items are refused, the others applied."""
        for index in range(3):
            await store.enqueue(b"", name=f"t{index}")
        claims = await store.claim(["default"], worker="w", limit=3)
        acks = [(c.task_id, c.token, c.name.encode()) for c in claims]
        acks[1] = (claims[1].task_id, "stale", b"x")
        assert [True, False, True] == await store.ack_many(acks)
        statuses = [(await record(store, c.task_id)).status for c in claims]
        assert [Status.SUCCEEDED, Status.RUNNING, Status.SUCCEEDED] == statuses
        assert [] == await store.ack_many([])

    async def test_ack_rejects_non_bytes_result(self, store: SqliteStore) -> None:
        """Results are bytes (or None)."""
        claim = await one(store)
        with pytest.raises(ConfigurationError, match="bytes"):
            await store.ack(claim.task_id, claim.token, "text")  # type: ignore[arg-type]

    async def test_nack_with_retry_at_schedules_the_next_attempt(self, store: SqliteStore) -> None:
        """nack + retry_at: retrying until then, attempt + 1, error kept, no worker slot."""
        claim = await one(store)
        assert await store.nack(claim.task_id, claim.token, error=BOOM, retry_at=WALL0 + 30)
        waiting = await record(store, claim.task_id)
        assert (Status.RETRYING, 2, WALL0 + 30, BOOM) == (
            waiting.status,
            waiting.attempt,
            waiting.run_at,
            waiting.error,
        )
        assert [] == await store.claim(["default"], worker="w")
        await asyncio.sleep(30)
        (again,) = await store.claim(["default"], worker="w")
        assert (claim.task_id, 2, 2) == (again.task_id, again.attempt, again.deliveries)

    async def test_nack_with_past_retry_at_is_queued(self, store: SqliteStore) -> None:
        """A retry time that already passed makes the task due at once."""
        claim = await one(store)
        await store.nack(claim.task_id, claim.token, error=BOOM, retry_at=WALL0)
        assert Status.QUEUED == (await record(store, claim.task_id)).status

    @pytest.mark.parametrize("status", ["failed", "timed_out"])
    async def test_nack_without_retry_is_terminal(self, store: SqliteStore, status: str) -> None:
        """nack without retry_at ends the task with the given status and the error text."""
        claim = await one(store, unique_key="k")
        assert await store.nack(claim.task_id, claim.token, error=BOOM, status=status)  # type: ignore[arg-type]
        done = await record(store, claim.task_id)
        assert (Status(status), BOOM, 1) == (done.status, done.error, done.attempt)
        assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(store.path)

    async def test_nack_checks_its_arguments(self, store: SqliteStore) -> None:
        """error must be ErrorText; status failed or timed_out."""
        claim = await one(store)
        with pytest.raises(ConfigurationError, match="ErrorText"):
            await store.nack(claim.task_id, claim.token, error="boom")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="status"):
            await store.nack(claim.task_id, claim.token, error=BOOM, status="succeeded")  # type: ignore[arg-type]

    async def test_release_requeues_without_penalty(self, store: SqliteStore) -> None:
        """release: queued now, same attempt, no worker loss, first in line again."""
        claim = await one(store, name="first")
        await store.enqueue(b"", name="second")
        assert await store.release(claim.task_id, claim.token)
        back = await record(store, claim.task_id)
        assert (Status.QUEUED, 1, 0) == (back.status, back.attempt, back.worker_lost)
        assert "first" == (await store.claim(["default"], worker="w"))[0].name

    async def test_dead_letter_by_the_consumer(self, store: SqliteStore) -> None:
        """A consumer can dead-letter what it cannot run, with a reason."""
        claim = await one(store, unique_key="k")
        assert await store.dead_letter(claim.task_id, claim.token, "payload is not JSON")
        dead = await record(store, claim.task_id)
        assert (Status.DEAD, "payload is not JSON") == (dead.status, dead.dead_reason)
        assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(store.path)
        with pytest.raises(ConfigurationError):
            await store.dead_letter(claim.task_id, claim.token, "")

    async def test_error_text_from_exception(self) -> None:
        """ErrorText.from_exception keeps type name, message and traceback text."""
        try:
            raise KeyError("k")
        except KeyError as exc:
            text = ErrorText.from_exception(exc)
        assert ("KeyError", "'k'") == (text.type, text.message)
        assert "Traceback" in text.traceback
        assert "taskmill.StateError" == ErrorText.from_exception(StateError("x")).type


class TestCancel:
    async def test_cancel_queued_is_immediate(self, store: SqliteStore) -> None:
        """A task that has not started is cancelled at once and never delivered."""
        queued = await store.enqueue(b"", name="a", unique_key="k")
        assert CancelOutcome.CANCELLED is await store.cancel(queued.task_id)
        assert Status.CANCELLED == (await record(store, queued.task_id)).status
        assert [] == await store.claim(["default"], worker="w")
        assert (await store.enqueue(b"", name="a", unique_key="k")).created

    async def test_cancel_scheduled_and_retrying(self, store: SqliteStore) -> None:
        """Scheduled and retrying tasks are cancelled at once too."""
        scheduled = await store.enqueue(b"", name="a", run_at=WALL0 + 60)
        claim = await one(store, name="b")
        await store.nack(claim.task_id, claim.token, error=BOOM, retry_at=WALL0 + 60)
        assert CancelOutcome.CANCELLED is await store.cancel(scheduled.task_id)
        assert CancelOutcome.CANCELLED is await store.cancel(claim.task_id)
        await asyncio.sleep(60)
        assert [] == await store.claim(["default"], worker="w")

    async def test_cancel_running_is_a_request_seen_on_renew(self, store: SqliteStore) -> None:
        """A running task gets a request; its owner sees it on renew and ends it cancelled."""
        claim = await one(store)
        assert CancelOutcome.REQUESTED is await store.cancel(claim.task_id)
        assert Status.RUNNING == (await record(store, claim.task_id)).status
        renewal = await store.renew(claim.task_id, claim.token)
        assert Renewal.CANCEL_REQUESTED is renewal
        assert renewal
        assert await store.ack_cancelled(claim.task_id, claim.token)
        assert Status.CANCELLED == (await record(store, claim.task_id)).status

    async def test_cancel_request_wins_over_retry_and_release(self, store: SqliteStore) -> None:
        """With a cancel request pending, nack-with-retry and release end it cancelled."""
        first = await one(store, name="a")
        await store.cancel(first.task_id)
        assert await store.nack(first.task_id, first.token, error=BOOM, retry_at=WALL0 + 5)
        assert Status.CANCELLED == (await record(store, first.task_id)).status
        second = await one(store, name="b")
        await store.cancel(second.task_id)
        assert await store.release(second.task_id, second.token)
        assert Status.CANCELLED == (await record(store, second.task_id)).status

    async def test_cancel_request_then_success_is_success(self, store: SqliteStore) -> None:
        """A task that finished anyway keeps its success."""
        claim = await one(store)
        await store.cancel(claim.task_id)
        assert await store.ack(claim.task_id, claim.token, b"done")
        assert Status.SUCCEEDED == (await record(store, claim.task_id)).status

    async def test_cancel_finished_changes_nothing(self, store: SqliteStore) -> None:
        """Cancelling a terminal task reports FINISHED and leaves it alone."""
        claim = await one(store)
        await store.ack(claim.task_id, claim.token, None)
        assert CancelOutcome.FINISHED is await store.cancel(claim.task_id)
        assert Status.SUCCEEDED == (await record(store, claim.task_id)).status

    async def test_cancel_unknown_raises(self, store: SqliteStore) -> None:
        """Unknown ids raise TaskNotFound."""
        with pytest.raises(TaskNotFound):
            await store.cancel("nope")


class TestReclaim:
    async def test_expired_lease_is_requeued_with_worker_lost(self, store: SqliteStore) -> None:
        """At lease end (not before) reclaim queues the task again and counts a lost worker."""
        claim = await one(store)
        await asyncio.sleep(9.999)
        assert ReclaimReport() == await store.reclaim()
        await asyncio.sleep(0.001)
        assert ReclaimReport(requeued=(claim.task_id,)) == await store.reclaim()
        back = await record(store, claim.task_id)
        assert (Status.QUEUED, 1, 1) == (back.status, back.worker_lost, back.attempt)
        assert {"live": 1, "leases": 0, "unique_keys": 0} == residue(store.path)

    async def test_reclaim_is_idempotent(self, store: SqliteStore) -> None:
        """A second sweep right after the first finds nothing."""
        await one(store)
        await asyncio.sleep(10)
        assert 1 == len((await store.reclaim()).requeued)
        assert ReclaimReport() == await store.reclaim()

    async def test_dead_letter_after_max_worker_lost(self, store: SqliteStore) -> None:
        """The third lost worker dead-letters the task: 'worker lost 3 times' (T9)."""
        await store.enqueue(b"poison", name="kills-its-worker", unique_key="k")
        for lost in range(1, 4):
            (claim,) = await store.claim(["default"], worker=f"w{lost}")
            assert lost == claim.deliveries
            await asyncio.sleep(10)
            report = await store.reclaim()
        assert (claim.task_id,) == report.dead_lettered
        dead = await record(store, claim.task_id)
        assert (Status.DEAD, "worker lost 3 times", 3, 3) == (
            dead.status,
            dead.dead_reason,
            dead.worker_lost,
            dead.deliveries,
        )
        assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(store.path)

    async def test_max_worker_lost_is_configurable(self, tmp_path: Path) -> None:
        """max_worker_lost=1 dead-letters on the first lost worker."""
        async with await SqliteStore.open(tmp_path / "t.db", max_worker_lost=1) as store:
            claim = await one(store)
            await asyncio.sleep(30)
            assert (claim.task_id,) == (await store.reclaim()).dead_lettered

    async def test_cancel_requested_and_lost_ends_cancelled(self, store: SqliteStore) -> None:
        """A lost worker of a task with a cancel request: the task ends cancelled."""
        claim = await one(store)
        await store.cancel(claim.task_id)
        await asyncio.sleep(10)
        assert (claim.task_id,) == (await store.reclaim()).cancelled
        assert Status.CANCELLED == (await record(store, claim.task_id)).status

    async def test_batches_are_bounded(self, store: SqliteStore) -> None:
        """reclaim(limit) takes at most limit leases and says when more are waiting."""
        for index in range(5):
            await store.enqueue(b"", name=f"t{index}")
        await store.claim(["default"], worker="w", limit=5)
        await asyncio.sleep(10)
        first = await store.reclaim(limit=3)
        second = await store.reclaim(limit=3)
        assert (3, True, 2, False) == (
            len(first.requeued),
            first.more,
            len(second.requeued),
            second.more,
        )

    async def test_a_new_boot_expires_old_leases(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Leases written before a reboot are expired even if their time has not come."""
        path = tmp_path / "t.db"
        monkeypatch.setattr(store_module, "read_boot_id", lambda: "boot-1")
        async with await SqliteStore.open(path, lease=3600) as before:
            claim = await one(before)
            assert ReclaimReport() == await before.reclaim()
        monkeypatch.setattr(store_module, "read_boot_id", lambda: "boot-2")
        async with await SqliteStore.open(path, lease=3600) as after:
            assert 1 == (await after.statistics()).expired_leases
            assert (claim.task_id,) == (await after.reclaim()).requeued

    async def test_without_boot_id_only_time_expires(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where no boot id exists, leases expire by time alone."""
        monkeypatch.setattr(store_module, "read_boot_id", lambda: None)
        async with await SqliteStore.open(tmp_path / "t.db", lease=5) as store:
            claim = await one(store)
            assert ReclaimReport() == await store.reclaim()
            await asyncio.sleep(5)
            assert (claim.task_id,) == (await store.reclaim()).requeued

    @pytest.mark.parametrize("jump", [3600.0, -3600.0])
    async def test_wall_clock_jumps_never_expire_a_lease(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch, jump: float
    ) -> None:
        """Leases follow the monotonic clock: a +-1 h wall-clock jump reclaims nothing (T8)."""
        claim = await one(store)
        real_wall = _clock.wall_time
        monkeypatch.setattr(_clock, "wall_time", lambda: real_wall() + jump)
        assert ReclaimReport() == await store.reclaim()
        assert 0 == (await store.statistics()).expired_leases
        await asyncio.sleep(10)
        assert (claim.task_id,) == (await store.reclaim()).requeued

    async def test_wall_clock_jump_moves_schedules(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """run_at is a wall-clock instant: a forward jump past it makes the task due."""
        await store.enqueue(b"", name="at-nine", run_at=WALL0 + 1800)
        assert [] == await store.claim(["default"], worker="w")
        real_wall = _clock.wall_time
        monkeypatch.setattr(_clock, "wall_time", lambda: real_wall() + 3600)
        assert ["at-nine"] == [c.name for c in await store.claim(["default"], worker="w")]

    def test_read_boot_id(self) -> None:
        """On Linux the boot id is the kernel's; elsewhere None."""
        boot = store_module.read_boot_id()
        if Path("/proc/sys/kernel/random/boot_id").exists():
            assert boot is not None
            assert 36 == len(boot)

    async def test_run_reclaimer_sweeps_on_its_interval(self, store: SqliteStore) -> None:
        """The reclaimer sweeps every interval: the lease ending at 10 s is reclaimed at 10 s."""
        await asyncio.sleep(0.5)
        claim = await one(store)  # lease until 10.5
        sweeper = asyncio.create_task(store.run_reclaimer(interval=2.0))  # 0.5, 2.5, ... 10.5
        await asyncio.sleep(9.9)
        assert Status.RUNNING == (await record(store, claim.task_id)).status
        await asyncio.sleep(0.2)
        back = await record(store, claim.task_id)
        assert (Status.QUEUED, 1) == (back.status, back.worker_lost)
        assert not sweeper.done()
        sweeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sweeper

    async def test_run_reclaimer_survives_backend_errors(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing sweep is logged and retried; the reclaimer does not die."""
        from taskmill import BackendUnavailable

        calls = 0
        real = store.reclaim

        async def flaky(limit: int = 100) -> ReclaimReport:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise BackendUnavailable("locked", backend="sqlite")
            return await real(limit)

        monkeypatch.setattr(store, "reclaim", flaky)
        sweeper = asyncio.create_task(store.run_reclaimer(interval=1.0))
        await asyncio.sleep(2.5)
        assert 3 == calls
        sweeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sweeper

    async def test_reclaimer_checks_interval(self, store: SqliteStore) -> None:
        """A non-positive interval is refused."""
        with pytest.raises(ConfigurationError, match="interval"):
            await store.run_reclaimer(interval=0)
