"""The conformance suite every :class:`taskmill.abc.Backend` must pass.

Subclass :class:`BackendConformance` in a test module (its name must start with
``Test`` so pytest collects it) and provide a ``backend`` fixture that yields a
fresh, empty backend built with the class' ``lease`` and ``max_worker_lost``::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        async def backend(self):
            async with MyBackend(lease=self.lease, max_worker_lost=self.max_worker_lost) as b:
                yield b

Every check is an ``async def test_*`` method. Time moves through
:meth:`BackendConformance.advance` (default: ``asyncio.sleep``, instant and exact on
taskmill's virtual-time loop); a backend timed by an external clock (Redis) runs
the suite on real time with short leases and overrides it. Payloads and results
are ``bytes`` so durable backends can store them. The suite imports nothing from
pytest, so ``taskmill.testing`` stays importable without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

from taskmill._backend import CancelOutcome, ErrorText, NewTask, RecordStatus, Renewal
from taskmill._clock import wall_time
from taskmill._errors import ConfigurationError, TaskNotFound

__all__ = ["BackendConformance"]

Backend = Any  # the fixture's value: anything with the taskmill.abc.Backend methods


@contextlib.contextmanager
def _raises(kind: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    raise AssertionError(f"expected {kind.__name__}")


def _error(message: str = "boom") -> ErrorText:
    return ErrorText(type="ValueError", message=message, traceback="")


class BackendConformance:
    """Behaviour every backend shares (see the module doc for how to use it)."""

    lease: ClassVar[float] = 30.0
    """The default lease the ``backend`` fixture must be built with."""
    max_worker_lost: ClassVar[int] = 3
    """The worker-lost limit the ``backend`` fixture must be built with."""

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the backend's clocks."""
        await asyncio.sleep(seconds)

    # -- enqueue and claim ---------------------------------------------------------------
    async def test_enqueue_then_get(self, backend: Backend) -> None:
        """An enqueued task is queued, with its fields, first attempt, no deliveries."""
        done = await backend.enqueue(b"p", name="mail.send", queue="q", priority=3)
        assert done.created
        record = await backend.get(done.task_id)
        assert record is not None
        assert (RecordStatus.QUEUED, "mail.send", "q", 3) == (
            record.status,
            record.name,
            record.queue,
            record.priority,
        )
        assert (b"p", 1, 0, 0) == (
            record.payload,
            record.attempt,
            record.deliveries,
            record.worker_lost,
        )
        assert await backend.get("no-such-task") is None

    async def test_claim_by_priority_then_fifo(self, backend: Backend) -> None:
        """Lower priority first, FIFO within a priority; limit caps the batch."""
        ids = {}
        for label, priority in [("a", 5), ("b", 1), ("c", 5), ("d", 1), ("e", 0)]:
            ids[(await backend.enqueue(label.encode(), name="t", priority=priority)).task_id] = (
                label
            )
        claims = await backend.claim(["default"], worker="w", limit=4)
        assert ["e", "b", "d", "a"] == [ids[c.task_id] for c in claims]
        rest = await backend.claim(["default"], worker="w", limit=4)
        assert ["c"] == [ids[c.task_id] for c in rest]
        assert [] == await backend.claim(["default"], worker="w")

    async def test_claim_only_from_named_queues(self, backend: Backend) -> None:
        """A worker only gets tasks of the queues it asks for."""
        await backend.enqueue(b"x", name="t", queue="other")
        mine = await backend.enqueue(b"y", name="t", queue="mine")
        claims = await backend.claim(["mine"], worker="w", limit=10)
        assert [mine.task_id] == [c.task_id for c in claims]

    async def test_claim_fields_and_running_record(self, backend: Backend) -> None:
        """A claim carries payload, token and lease; the record says running."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w1")
        assert (done.task_id, b"p", "t", 1, 1, 0) == (
            claim.task_id,
            claim.payload,
            claim.name,
            claim.attempt,
            claim.deliveries,
            claim.worker_lost,
        )
        assert claim.token
        record = await backend.get(done.task_id)
        assert (RecordStatus.RUNNING, "w1") == (record.status, record.worker)

    async def test_enqueue_many(self, backend: Backend) -> None:
        """Several tasks at once, in order."""
        results = await backend.enqueue_many(
            [NewTask(payload=bytes([i]), name="t", priority=i) for i in range(3)]
        )
        assert [True, True, True] == [r.created for r in results]
        assert 3 == len({r.task_id for r in results})

    # -- scheduling -------------------------------------------------------------------------
    async def test_scheduled_task_is_claimable_only_when_due(self, backend: Backend) -> None:
        """A future run_at is scheduled; it is claimed once due, not before."""
        done = await backend.enqueue(b"p", name="t", run_at=wall_time() + 10)
        record = await backend.get(done.task_id)
        assert RecordStatus.SCHEDULED == record.status
        assert [] == await backend.claim(["default"], worker="w")
        await self.advance(10.5)
        assert [done.task_id] == [c.task_id for c in await backend.claim(["default"], worker="w")]

    async def test_past_run_at_is_due_at_once(self, backend: Backend) -> None:
        """A run_at in the past runs as soon as possible."""
        done = await backend.enqueue(b"p", name="t", run_at=wall_time() - 3600)
        assert [done.task_id] == [c.task_id for c in await backend.claim(["default"], worker="w")]

    # -- fencing and leases --------------------------------------------------------------------
    async def test_stale_tokens_are_refused(self, backend: Backend) -> None:
        """Writes with a wrong token change nothing."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        assert not await backend.ack(done.task_id, "forged", b"r")
        assert not await backend.nack(done.task_id, "forged", error=_error())
        assert not await backend.release(done.task_id, "forged")
        assert not await backend.dead_letter(done.task_id, "forged", "x")
        assert Renewal.LOST == await backend.renew(done.task_id, "forged")
        assert RecordStatus.RUNNING == (await backend.get(done.task_id)).status
        assert await backend.ack(done.task_id, claim.token, b"r")
        # A repeated ack with the same token may answer True (an idempotent retry after a
        # lost reply) but never changes the outcome.
        await backend.ack(done.task_id, claim.token, b"again")
        record = await backend.get(done.task_id)
        assert (RecordStatus.SUCCEEDED, b"r") == (record.status, record.result)

    async def test_renew_keeps_the_lease(self, backend: Backend) -> None:
        """A renewed lease outlives the original one."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        await self.advance(self.lease * 0.75)
        assert Renewal.HELD == await backend.renew(done.task_id, claim.token)
        await self.advance(self.lease * 0.75)
        report = await backend.reclaim()
        assert done.task_id not in report.requeued
        assert await backend.ack(done.task_id, claim.token, b"r")

    async def test_expired_lease_is_reclaimed_and_the_old_token_fenced(
        self, backend: Backend
    ) -> None:
        """An expired lease goes back to queued with worker_lost + 1; the stale ack fails."""
        done = await backend.enqueue(b"p", name="t")
        (stale,) = await backend.claim(["default"], worker="w1")
        await self.advance(self.lease + 1)
        report = await backend.reclaim()
        assert (done.task_id,) == tuple(report.requeued)
        assert () == tuple((await backend.reclaim()).requeued)  # idempotent
        (fresh,) = await backend.claim(["default"], worker="w2")
        assert (2, 1) == (fresh.deliveries, fresh.worker_lost)
        assert fresh.token != stale.token
        assert not await backend.ack(done.task_id, stale.token, b"stale")
        assert Renewal.LOST == await backend.renew(done.task_id, stale.token)
        assert await backend.ack(done.task_id, fresh.token, b"ok")
        assert b"ok" == (await backend.get(done.task_id)).result

    async def test_worker_lost_too_often_is_dead_lettered(self, backend: Backend) -> None:
        """After max_worker_lost lost deliveries the task becomes a dead letter with a reason."""
        done = await backend.enqueue(b"poison", name="t")
        for _ in range(self.max_worker_lost):
            assert 1 == len(await backend.claim(["default"], worker="w"))
            await self.advance(self.lease + 1)
            report = await backend.reclaim()
        assert (done.task_id,) == tuple(report.dead_lettered)
        record = await backend.get(done.task_id)
        assert RecordStatus.DEAD == record.status
        assert record.dead_reason
        assert [done.task_id] == [r.task_id for r in await backend.dead_letters()]

    # -- outcomes ---------------------------------------------------------------------------------
    async def test_ack_stores_the_result_and_wait_returns_it(self, backend: Backend) -> None:
        """An ack makes it succeeded with the result; wait() returns the terminal record."""
        done = await backend.enqueue(b"p", name="t")
        waiter = asyncio.ensure_future(backend.wait(done.task_id, timeout=60))
        (claim,) = await backend.claim(["default"], worker="w")
        assert await backend.ack(done.task_id, claim.token, b"result")
        record = await waiter
        assert (RecordStatus.SUCCEEDED, b"result") == (record.status, record.result)
        assert record.finished_at is not None

    async def test_ack_many(self, backend: Backend) -> None:
        """Several deliveries acknowledged at once; a stale one is refused."""
        for i in range(3):
            await backend.enqueue(bytes([i]), name="t")
        claims = await backend.claim(["default"], worker="w", limit=3)
        acks = [(c.task_id, c.token, b"ok") for c in claims] + [(claims[0].task_id, "x", b"")]
        assert [True, True, True, False] == await backend.ack_many(acks)

    async def test_nack_with_retry_at_schedules_the_next_attempt(self, backend: Backend) -> None:
        """A nack with retry_at: retrying, attempt + 1, claimable when due, error kept."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        retry_at = wall_time() + 5
        assert await backend.nack(done.task_id, claim.token, error=_error(), retry_at=retry_at)
        record = await backend.get(done.task_id)
        assert (RecordStatus.RETRYING, 2, "boom") == (
            record.status,
            record.attempt,
            record.error.message,
        )
        assert [] == await backend.claim(["default"], worker="w")
        await self.advance(5.5)
        (again,) = await backend.claim(["default"], worker="w")
        assert (2, 2) == (again.attempt, again.deliveries)

    async def test_nack_without_retry_is_terminal(self, backend: Backend) -> None:
        """A nack without retry_at ends failed or timed_out with the error text."""
        first = await backend.enqueue(b"a", name="t")
        second = await backend.enqueue(b"b", name="t")
        claims = await backend.claim(["default"], worker="w", limit=2)
        tokens = {c.task_id: c.token for c in claims}
        assert await backend.nack(first.task_id, tokens[first.task_id], error=_error("bad"))
        assert await backend.nack(
            second.task_id, tokens[second.task_id], error=_error("slow"), status="timed_out"
        )
        failed = await backend.get(first.task_id)
        timed_out = await backend.get(second.task_id)
        assert (RecordStatus.FAILED, "bad") == (failed.status, failed.error.message)
        assert (RecordStatus.TIMED_OUT, "slow") == (timed_out.status, timed_out.error.message)

    async def test_release_gives_it_back_without_penalty(self, backend: Backend) -> None:
        """A released delivery is queued again; attempt and worker_lost unchanged."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        assert await backend.release(done.task_id, claim.token)
        assert RecordStatus.QUEUED == (await backend.get(done.task_id)).status
        (again,) = await backend.claim(["default"], worker="w")
        assert (1, 0, 2) == (again.attempt, again.worker_lost, again.deliveries)

    async def test_consumer_dead_letter(self, backend: Backend) -> None:
        """A worker may dead-letter a delivery it cannot run, with a reason."""
        done = await backend.enqueue(b"garbage", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        assert await backend.dead_letter(done.task_id, claim.token, "undecodable payload")
        record = await backend.get(done.task_id)
        assert (RecordStatus.DEAD, "undecodable payload") == (record.status, record.dead_reason)

    # -- cancel ------------------------------------------------------------------------------------
    async def test_cancel_before_start_is_immediate(self, backend: Backend) -> None:
        """Queued and scheduled tasks are cancelled at once and never claimed."""
        queued = await backend.enqueue(b"a", name="t")
        scheduled = await backend.enqueue(b"b", name="t", run_at=wall_time() + 5)
        assert CancelOutcome.CANCELLED == await backend.cancel(queued.task_id)
        assert CancelOutcome.CANCELLED == await backend.cancel(scheduled.task_id)
        await self.advance(6)
        assert [] == await backend.claim(["default"], worker="w")
        assert RecordStatus.CANCELLED == (await backend.get(queued.task_id)).status
        assert CancelOutcome.FINISHED == await backend.cancel(queued.task_id)

    async def test_cancel_running_is_a_request_seen_on_renew(self, backend: Backend) -> None:
        """A running task gets a cancel request; its owner sees it when renewing."""
        done = await backend.enqueue(b"p", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        assert CancelOutcome.REQUESTED == await backend.cancel(done.task_id)
        assert (await backend.get(done.task_id)).cancel_requested
        assert Renewal.CANCEL_REQUESTED == await backend.renew(done.task_id, claim.token)

    async def test_cancel_unknown_raises(self, backend: Backend) -> None:
        """Cancelling an unknown id raises TaskNotFound."""
        with _raises(TaskNotFound):
            await backend.cancel("no-such-task")

    # -- unique keys and ids ---------------------------------------------------------------
    async def test_unique_key_dedups_while_live(self, backend: Backend) -> None:
        """A live unique key returns the existing id; after the end the key is free."""
        first = await backend.enqueue(b"a", name="t", unique_key="k")
        second = await backend.enqueue(b"b", name="t", unique_key="k")
        assert (first.task_id, False) == (second.task_id, second.created)
        (claim,) = await backend.claim(["default"], worker="w")
        assert (first.task_id, False) == (
            (await backend.enqueue(b"c", name="t", unique_key="k")).task_id,
            False,
        )
        await backend.ack(first.task_id, claim.token, b"")
        third = await backend.enqueue(b"d", name="t", unique_key="k")
        assert third.created
        assert third.task_id != first.task_id

    async def test_existing_task_id_is_not_enqueued_twice(self, backend: Backend) -> None:
        """A given task_id doubles as an idempotency key."""
        first = await backend.enqueue(b"a", name="t", task_id="order-42")
        again = await backend.enqueue(b"b", name="t", task_id="order-42")
        assert ("order-42", True, "order-42", False) == (
            first.task_id,
            first.created,
            again.task_id,
            again.created,
        )
        assert 1 == len(await backend.claim(["default"], worker="w", limit=5))

    # -- listing and dead letters -----------------------------------------------------------------
    async def test_list_filters_by_status_and_queue(self, backend: Backend) -> None:
        """list() filters and pages; within one status it keeps enqueue order."""
        ids = [(await backend.enqueue(b"x", name="t", queue=q)).task_id for q in "aab"]
        await backend.claim(["b"], worker="w")
        assert ids[:2] == [r.task_id for r in await backend.list(status=RecordStatus.QUEUED)]
        assert [ids[2]] == [r.task_id for r in await backend.list(status="running")]
        assert [ids[1]] == [r.task_id for r in await backend.list(queue="a", offset=1)]
        first, rest = await backend.list(limit=1), await backend.list(offset=1)
        assert (1, sorted(ids)) == (len(first), sorted(r.task_id for r in [*first, *rest]))

    async def test_dead_letters_requeue_and_purge(self, backend: Backend) -> None:
        """Dead letters can be listed, requeued (fresh worker-lost count) and purged."""
        ids = []
        for i in range(3):
            done = await backend.enqueue(bytes([i]), name="t")
            (claim,) = await backend.claim(["default"], worker="w")
            await backend.dead_letter(done.task_id, claim.token, f"reason {i}")
            ids.append(done.task_id)
        assert ids == [r.task_id for r in await backend.dead_letters()]
        assert await backend.requeue_dead(ids[0])
        assert not await backend.requeue_dead(ids[0])
        (claim,) = await backend.claim(["default"], worker="w")
        assert (ids[0], 0) == (claim.task_id, claim.worker_lost)
        assert 1 == await backend.purge_dead(ids[1])
        with _raises(ConfigurationError):
            await backend.purge_dead()
        assert 1 == await backend.purge_dead(everything=True)
        assert [] == await backend.dead_letters()
        assert await backend.get(ids[1]) is None

    async def test_purge_results(self, backend: Backend) -> None:
        """Terminal records finished `older_than` seconds ago can be deleted; live ones stay."""
        done = await backend.enqueue(b"a", name="t")
        live = await backend.enqueue(b"b", name="t", run_at=wall_time() + 100)
        (claim,) = await backend.claim(["default"], worker="w")
        await backend.ack(done.task_id, claim.token, b"")
        await self.advance(2)
        assert 0 == await backend.purge_results(3)
        assert 1 == await backend.purge_results(1)
        assert await backend.get(done.task_id) is None
        assert await backend.get(live.task_id) is not None

    async def test_wait_times_out_and_unknown_raises(self, backend: Backend) -> None:
        """wait() raises TimeoutError after its timeout, TaskNotFound for unknown ids."""
        done = await backend.enqueue(b"a", name="t")
        with _raises(TimeoutError):
            await backend.wait(done.task_id, timeout=1)
        with _raises(TaskNotFound):
            await backend.wait("no-such-task", timeout=1)

    async def test_statistics_count_by_status(self, backend: Backend) -> None:
        """Statistics count tasks per status."""
        await backend.enqueue(b"a", name="t")
        await backend.enqueue(b"b", name="t")
        await backend.claim(["default"], worker="w")
        stats = await backend.statistics()
        assert (1, 1, 2) == (stats.by_status["queued"], stats.by_status["running"], stats.total)
