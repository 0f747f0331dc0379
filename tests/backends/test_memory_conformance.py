"""The memory backend against the shared Backend conformance suite, plus its own details."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskmill import ConfigurationError, MemoryBackend, NotRunning
from taskmill.abc import Backend, ErrorText, RecordStatus
from taskmill.testing import BackendConformance


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[MemoryBackend]:
        async with MemoryBackend(lease=self.lease, max_worker_lost=self.max_worker_lost) as b:
            yield b


class TestMemoryBackendDetails:
    async def test_is_a_backend(self) -> None:
        """MemoryBackend satisfies the runtime-checkable protocol."""
        assert isinstance(MemoryBackend(), Backend)

    async def test_payloads_are_python_objects(self) -> None:
        """No serialization: any object goes in and comes out as is."""
        backend = MemoryBackend()
        payload = (print, ("x",), {"sep": ""})
        done = await backend.enqueue(payload, name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        assert claim.payload is payload
        result = object()
        await backend.ack(done.task_id, claim.token, result)
        record = await backend.get(done.task_id)
        assert record is not None
        assert record.result is result

    async def test_results_ttl_expires_terminal_records(self) -> None:
        """With results_ttl, reclaim() forgets terminal records after the TTL."""
        backend = MemoryBackend(results_ttl=60)
        done = await backend.enqueue(b"a", name="t")
        await backend.cancel(done.task_id)
        record = await backend.get(done.task_id)
        assert record is not None
        assert record.expires_at is not None
        await asyncio.sleep(61)
        assert 1 == (await backend.reclaim()).expired
        assert await backend.get(done.task_id) is None

    async def test_cancel_request_with_lost_worker_ends_cancelled(self) -> None:
        """A running task with a cancel request whose worker dies ends cancelled."""
        backend = MemoryBackend(lease=5)
        done = await backend.enqueue(b"a", name="t")
        await backend.claim(["default"], worker="w")
        await backend.cancel(done.task_id)
        await asyncio.sleep(6)
        report = await backend.reclaim()
        assert (done.task_id,) == report.cancelled
        record = await backend.get(done.task_id)
        assert record is not None
        assert RecordStatus.CANCELLED == record.status

    async def test_reclaim_is_bounded(self) -> None:
        """reclaim(limit) handles at most `limit` leases and says there is more."""
        backend = MemoryBackend(lease=1)
        for _ in range(5):
            await backend.enqueue(b"a", name="t")
        await backend.claim(["default"], worker="w", limit=5)
        await asyncio.sleep(2)
        first = await backend.reclaim(limit=3)
        assert (3, True) == (len(first.requeued), first.more)
        second = await backend.reclaim(limit=3)
        assert (2, False) == (len(second.requeued), second.more)

    async def test_claims_across_queues_take_the_best(self) -> None:
        """With several queues, the best priority wins, then enqueue order."""
        backend = MemoryBackend()
        low = await backend.enqueue(b"a", name="t", queue="a", priority=5)
        high = await backend.enqueue(b"b", name="t", queue="b", priority=1)
        early = await backend.enqueue(b"c", name="t", queue="b", priority=5)
        claims = await backend.claim(["a", "b"], worker="w", limit=3)
        assert [high.task_id, low.task_id, early.task_id] == [c.task_id for c in claims]

    async def test_closed_backend_refuses_calls_and_wakes_waiters(self) -> None:
        """After close() every call raises NotRunning; waiters get it too."""
        backend = MemoryBackend()
        done = await backend.enqueue(b"a", name="t")
        waiter = asyncio.ensure_future(backend.wait(done.task_id))
        await asyncio.sleep(0)
        await backend.close()
        with pytest.raises(NotRunning):
            await waiter
        with pytest.raises(NotRunning):
            await backend.enqueue(b"b", name="t")
        assert "closed" in repr(backend)

    @pytest.mark.parametrize(
        "kwargs",
        [{"lease": 0}, {"lease": float("nan")}, {"max_worker_lost": 0}, {"results_ttl": -1.5}],
    )
    async def test_bad_configuration(self, kwargs: dict[str, object]) -> None:
        """Invalid settings raise ConfigurationError."""
        with pytest.raises(ConfigurationError):
            MemoryBackend(**kwargs)  # type: ignore[arg-type]

    async def test_bad_arguments(self) -> None:
        """Bad enqueue and claim arguments raise ConfigurationError."""
        backend = MemoryBackend()
        with pytest.raises(ConfigurationError):
            await backend.enqueue(b"a", name="")
        with pytest.raises(ConfigurationError):
            await backend.enqueue(b"a", name="t", priority=1.5)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            await backend.enqueue(b"a", name="t", run_at=float("inf"))
        with pytest.raises(ConfigurationError):
            await backend.claim("default", worker="w")
        with pytest.raises(ConfigurationError):
            await backend.claim(["default"], worker="w", limit=0)
        with pytest.raises(ConfigurationError):
            await backend.claim(["default"], worker="w", lease=-1)
        done = await backend.enqueue(b"a", name="t")
        (claim,) = await backend.claim(["default"], worker="w")
        with pytest.raises(ConfigurationError):
            await backend.nack(
                done.task_id,
                claim.token,
                error=ErrorText(type="E", message=""),
                status="exploded",  # type: ignore[arg-type]
            )
