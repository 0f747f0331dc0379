"""Cluster-wide queue limits on a real redis-server: back pressure, running bound, rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from taskmill import ConfigurationError, QueueFull, WouldBlock
from taskmill.redis import NewTask, QueueLimits, RedisStore

pytestmark = pytest.mark.real_time


class TestConfiguration:
    async def test_limits_round_trip_and_clear(self, store: RedisStore) -> None:
        """Limits are stored in Redis; None (or no argument) removes them."""
        assert QueueLimits() == await store.queue_limits("default")
        set_ = await store.configure_queue("default", max_queued=10, rate=2.5, burst=4)
        assert set_ == await store.queue_limits("default")
        assert QueueLimits(max_queued=10, rate=2.5, burst=4) == set_
        await store.configure_queue("default", max_running=3)
        assert QueueLimits(max_running=3) == await store.queue_limits("default")
        await store.configure_queue("default")
        assert QueueLimits() == await store.queue_limits("default")

    @pytest.mark.parametrize(
        "bad",
        [
            {"max_queued": 0},
            {"max_running": -1},
            {"max_queued": 1.5},
            {"rate": 0},
            {"rate": float("inf")},
            {"rate": True},
            {"burst": 3},
            {"rate": 1, "burst": 0},
        ],
    )
    async def test_bad_limits_are_refused(self, store: RedisStore, bad: dict[str, object]) -> None:
        """An invalid limit is a ConfigurationError and leaves the stored limits alone."""
        await store.configure_queue("default", max_queued=5)
        with pytest.raises(ConfigurationError):
            await store.configure_queue("default", **bad)  # type: ignore[arg-type]
        assert QueueLimits(max_queued=5) == await store.queue_limits("default")


class TestBackPressure:
    async def test_full_queue_refuses_at_once_with_full_wait_zero(self, redis_url: str) -> None:
        """At the bound a submit raises QueueFull (a WouldBlock) and stores nothing."""
        async with await RedisStore.open(redis_url, full_wait=0) as store:
            await store.configure_queue("bp", max_queued=3)
            for _ in range(3):
                await store.enqueue(b"x", name="t", queue="bp")
            with pytest.raises(QueueFull) as caught:
                await store.enqueue(b"x", name="t", queue="bp")
            assert isinstance(caught.value, WouldBlock)
            assert ("bp", 3, 3) == (caught.value.queue, caught.value.bound, caught.value.queued)
            # A batch that would cross the bound is refused whole; delayed tasks don't count.
            await store.configure_queue("bp", max_queued=4)
            with pytest.raises(QueueFull):
                await store.enqueue_many([NewTask(payload=b"x", name="t", queue="bp")] * 2)
            later = time.time() + 3600
            await store.enqueue(b"x", name="t", queue="bp", run_at=later)
            # Re-submitting an existing id is not an addition.
            first = (await store.list(queue="bp", status="queued"))[0]
            again = await store.enqueue(b"x", name="t", queue="bp", task_id=first.task_id)
            assert not again.created
            stats = await store.statistics()
            assert {"queued": 3, "scheduled": 1} == dict(stats.by_queue["bp"])

    async def test_submit_waits_for_room(self, redis_url: str) -> None:
        """A submit to a full queue waits; a claim makes room and the submit completes."""
        async with await RedisStore.open(redis_url, full_wait=10) as store:
            await store.configure_queue("wait", max_queued=1)
            await store.enqueue(b"x", name="t", queue="wait")
            waiting = asyncio.create_task(store.enqueue(b"y", name="t", queue="wait"))
            await asyncio.sleep(0.05)  # real Redis: let the submit meet the full queue
            assert not waiting.done()
            (claim,) = await store.claim("wait", worker="w")
            outcome = await asyncio.wait_for(waiting, 5)
            assert outcome.created
            await store.ack(claim.task_id, claim.token)

    async def test_full_wait_gives_up(self, redis_url: str) -> None:
        """After full_wait seconds without room the submit raises QueueFull."""
        async with await RedisStore.open(redis_url, full_wait=0.2) as store:
            await store.configure_queue("stuck", max_queued=1)
            await store.enqueue(b"x", name="t", queue="stuck")
            started = time.monotonic()
            with pytest.raises(QueueFull):
                await store.enqueue(b"x", name="t", queue="stuck")
            assert 0.2 <= time.monotonic() - started < 2.0


class TestRunningBound:
    async def test_bound_holds_across_workers_and_an_ack_wakes_a_blocked_claim(
        self, redis_url: str
    ) -> None:
        """max_running counts every worker's claims; a finished task wakes a waiting worker."""
        async with (
            await RedisStore.open(redis_url) as one,
            await RedisStore.open(redis_url) as two,
        ):
            await one.configure_queue("cap", max_running=2)
            await one.enqueue_many([NewTask(payload=b"x", name="t", queue="cap")] * 5)
            held = await one.claim("cap", worker="one", limit=5)
            assert 2 == len(held)
            assert [] == await two.claim("cap", worker="two", limit=5)
            blocked = asyncio.create_task(two.claim("cap", worker="two", limit=5, block=3.0))
            await asyncio.sleep(0.05)
            assert not blocked.done()
            await one.ack(held[0].task_id, held[0].token)
            started = time.monotonic()
            got = await asyncio.wait_for(blocked, 5)
            assert 1 == len(got)
            assert time.monotonic() - started < 1.5  # woken by the ack, not the block timeout
            stats = await one.statistics()
            assert 2 == stats.by_queue["cap"]["running"]


class TestRate:
    async def test_rate_is_shared_by_every_worker(self, redis_url: str) -> None:
        """Two workers together never claim more than burst + rate x elapsed."""
        async with (
            await RedisStore.open(redis_url) as one,
            await RedisStore.open(redis_url) as two,
        ):
            await one.configure_queue("rate", rate=20, burst=5)
            await one.enqueue_many([NewTask(payload=b"x", name="t", queue="rate")] * 200)
            started = time.monotonic()
            claimed = 0

            async def worker(store: RedisStore, name: str) -> None:
                nonlocal claimed
                while time.monotonic() - started < 1.0:
                    got = await store.claim("rate", worker=name, limit=10, block=0.2)
                    claimed += len(got)
                    await store.ack_many([(c.task_id, c.token, None) for c in got])

            await asyncio.gather(worker(one, "one"), worker(two, "two"))
            elapsed = time.monotonic() - started
            assert claimed <= 5 + 20 * elapsed + 1
            assert claimed >= 5 + 20 * 0.5  # the bucket refills: workers are not starved

    async def test_blocking_claim_waits_for_the_next_token(self, store: RedisStore) -> None:
        """An empty bucket makes claim(block=...) wait about 1/rate, not return empty."""
        await store.configure_queue("slow", rate=5, burst=1)
        await store.enqueue_many([NewTask(payload=b"x", name="t", queue="slow")] * 3)
        assert 1 == len(await store.claim("slow", worker="w", limit=3))
        assert [] == await store.claim("slow", worker="w", limit=3)
        started = time.monotonic()
        got = await store.claim("slow", worker="w", limit=3, block=2.0)
        assert 1 == len(got)
        assert 0.05 < time.monotonic() - started < 1.0
