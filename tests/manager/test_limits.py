"""Concurrency limits (global, resizable, per key) and token-bucket rate limits."""

from __future__ import annotations

import asyncio

import pytest

from taskmill import ConfigurationError, RateLimit, Retry, TaskManager, TaskStatus
from taskmill._backoff import Constant
from taskmill.testing import wait_all_tasks_blocked


class Probe:
    """Counts tasks running at once and records start times."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.starts: list[float] = []
        self.per_key: dict[str, int] = {}
        self.key_peak: dict[str, int] = {}

    async def __call__(self, seconds: float = 1.0, key: str = "") -> None:
        self.starts.append(asyncio.get_running_loop().time())
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.per_key[key] = self.per_key.get(key, 0) + 1
        self.key_peak[key] = max(self.key_peak.get(key, 0), self.per_key[key])
        try:
            await asyncio.sleep(seconds)
        finally:
            self.running -= 1
            self.per_key[key] -= 1


class TestConcurrency:
    async def test_never_more_than_the_limit(self) -> None:
        """20 one-second tasks with concurrency 5 run in 4 waves."""
        probe = Probe()
        async with TaskManager(concurrency=5) as mgr:
            for _ in range(20):
                _ = await mgr.submit(probe)
        assert 5 == probe.peak
        assert [0.0] * 5 + [1.0] * 5 + [2.0] * 5 + [3.0] * 5 == probe.starts

    async def test_growing_starts_waiting_tasks_at_once(self) -> None:
        """Raising the limit while running starts queued tasks immediately."""
        probe = Probe()
        async with TaskManager(concurrency=1) as mgr:
            for _ in range(4):
                _ = await mgr.submit(probe, 10)
            await wait_all_tasks_blocked()
            assert 1 == mgr.statistics().running
            mgr.concurrency = 4
            await wait_all_tasks_blocked()
            assert 4 == mgr.statistics().running
            assert 4 == mgr.statistics().workers
        assert [0.0, 0.0, 0.0, 0.0] == probe.starts

    async def test_shrinking_lets_running_tasks_finish(self) -> None:
        """Lowering the limit cancels nothing; new starts respect the new limit."""
        probe = Probe()
        async with TaskManager(concurrency=4) as mgr:
            handles = [await mgr.submit(probe, 1) for _ in range(8)]
            await wait_all_tasks_blocked()
            mgr.concurrency = 2
            assert 2 == mgr.concurrency
            await asyncio.gather(*handles)
            assert 2 == mgr.statistics().workers
        assert all(h.status is TaskStatus.SUCCEEDED for h in handles)
        assert [0.0] * 4 + [1.0] * 2 + [2.0] * 2 == probe.starts

    async def test_shrink_then_grow_again(self) -> None:
        """Resizing back and forth converges on the latest value."""
        probe = Probe()
        async with TaskManager(concurrency=3) as mgr:
            mgr.concurrency = 1
            mgr.concurrency = 5
            await wait_all_tasks_blocked()
            for _ in range(10):
                _ = await mgr.submit(probe, 1)
            await mgr.join()
            assert 5 == mgr.statistics().workers
        assert 5 == probe.peak

    async def test_invalid_concurrency(self) -> None:
        """Zero, negative or non-int limits are refused."""
        with pytest.raises(ConfigurationError):
            TaskManager(concurrency=0)
        mgr = TaskManager()
        with pytest.raises(ConfigurationError):
            mgr.concurrency = 0
        with pytest.raises(ConfigurationError):
            TaskManager(queue_size=0)


class TestRateLimit:
    async def test_starts_are_spaced_by_the_rate(self) -> None:
        """RateLimit(10, burst=1): starts at 0, 0.1, 0.2, ..."""
        probe = Probe()
        async with TaskManager(concurrency=10, rate_limit=RateLimit(10)) as mgr:
            for _ in range(5):
                _ = await mgr.submit(probe, 0)
        assert [0.0, 0.1, 0.2, 0.3, 0.4] == pytest.approx(probe.starts, abs=1e-9)

    async def test_burst_then_rate(self) -> None:
        """A full bucket lets `burst` tasks start at once, then one per 1/rate."""
        probe = Probe()
        async with TaskManager(concurrency=10, rate_limit=RateLimit(2, burst=3)) as mgr:
            for _ in range(6):
                _ = await mgr.submit(probe, 0)
        assert [0.0, 0.0, 0.0, 0.5, 1.0, 1.5] == pytest.approx(probe.starts, abs=1e-9)

    async def test_retries_take_tokens_too(self) -> None:
        """Each execution start takes a token, retries included."""
        starts: list[float] = []

        async def flaky() -> None:
            starts.append(asyncio.get_running_loop().time())
            raise ValueError

        policy = Retry(max_attempts=3, backoff=Constant(0))
        async with TaskManager(rate_limit=RateLimit(1), retry=policy) as mgr:
            await (await mgr.submit(flaky)).wait()
        assert [0.0, 1.0, 2.0] == pytest.approx(starts, abs=1e-9)

    async def test_rate_limit_respects_priority(self) -> None:
        """A higher-priority task submitted later takes the next token."""
        order: list[str] = []

        async def note(label: str) -> None:
            order.append(label)

        async with TaskManager(concurrency=1, rate_limit=RateLimit(1)) as mgr:
            for i in range(3):
                _ = await mgr.submit(note, f"low{i}")
            await asyncio.sleep(0.5)
            _ = await mgr.with_options(priority=-1).submit(note, "high")
        assert ["low0", "high", "low1", "low2"] == order

    async def test_statistics_show_tokens(self) -> None:
        """The bucket's tokens are visible in statistics."""
        async with TaskManager(rate_limit=RateLimit(1, burst=4)) as mgr:
            assert 4.0 == mgr.statistics().rate_tokens
            await (await mgr.submit(asyncio.sleep, 0)).wait()
            assert 3.0 == mgr.statistics().rate_tokens
        assert TaskManager().statistics().rate_tokens is None


class TestKeyLimits:
    async def test_per_key_rate_limit_holds_no_worker(self) -> None:
        """Tasks waiting for a key token don't block tasks of other keys."""
        probe = Probe()
        limits = {"slow": RateLimit(1)}
        async with TaskManager(concurrency=1, rate_limits=limits) as mgr:
            slow = mgr.with_options(rate_key="slow")
            for _ in range(3):
                _ = await slow.submit(probe, 0, "slow")
            fast = [await mgr.submit(probe, 0, "free") for _ in range(3)]
            await asyncio.gather(*fast)
            assert 0.0 == asyncio.get_running_loop().time()
        assert [0.0, 0.0, 0.0, 0.0, 1.0, 2.0] == pytest.approx(probe.starts, abs=1e-9)

    async def test_wildcard_rate_key_limits_each_key_separately(self) -> None:
        """The "*" entry gives every key its own bucket."""
        starts: dict[str, list[float]] = {"a": [], "b": []}

        async def note(key: str) -> None:
            starts[key].append(asyncio.get_running_loop().time())

        async with TaskManager(concurrency=4, rate_limits={"*": RateLimit(2)}) as mgr:
            for key in ("a", "b"):
                keyed = mgr.with_options(rate_key=key)
                for _ in range(3):
                    _ = await keyed.submit(note, key)
            await wait_all_tasks_blocked()
            stats = mgr.statistics()
            assert {"a", "b"} == set(stats.key_tokens)
        assert [0.0, 0.5, 1.0] == pytest.approx(starts["a"], abs=1e-9)
        assert [0.0, 0.5, 1.0] == pytest.approx(starts["b"], abs=1e-9)

    async def test_per_key_concurrency(self) -> None:
        """At most N tasks of a concurrency key run at once; others keep flowing."""
        probe = Probe()
        async with TaskManager(concurrency=4, concurrency_limits={"db": 1}) as mgr:
            db = mgr.with_options(concurrency_key="db")
            for _ in range(3):
                _ = await db.submit(probe, 1, "db")
            for _ in range(3):
                _ = await mgr.submit(probe, 1, "other")
            await wait_all_tasks_blocked()
            stats = mgr.statistics()
            assert {"db": 1} == dict(stats.key_running)
            assert {"db": 2} == dict(stats.key_waiting)
            assert 2 == stats.queued
        assert 1 == probe.key_peak["db"]
        assert 3 == probe.key_peak["other"]
        assert [0.0, 0.0, 0.0, 0.0, 1.0, 2.0] == probe.starts

    async def test_cancel_a_task_waiting_for_its_key(self) -> None:
        """A task held back by its key can be cancelled; the others still run."""
        probe = Probe()
        async with TaskManager(concurrency=2, concurrency_limits={"*": 1}) as mgr:
            db = mgr.with_options(concurrency_key="db")
            first = await db.submit(probe, 1, "db")
            second = await db.submit(probe, 1, "db")
            third = await db.submit(probe, 1, "db")
            await wait_all_tasks_blocked()
            assert second.cancel()
            await asyncio.gather(first, third)
            assert TaskStatus.CANCELLED == second.status
        assert [0.0, 1.0] == probe.starts

    async def test_key_slot_is_released_after_failure(self) -> None:
        """A failing task frees its concurrency key."""

        async def boom() -> None:
            raise ValueError

        async with TaskManager(concurrency_limits={"k": 1}) as mgr:
            keyed = mgr.with_options(concurrency_key="k")
            handles = [await keyed.submit(boom) for _ in range(3)]
            for handle in handles:
                assert TaskStatus.FAILED == await handle.wait()
            assert {} == dict(mgr.statistics().key_running)
