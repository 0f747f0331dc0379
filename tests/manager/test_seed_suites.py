"""The seeds' own test suites, ported: marionette (seed 003) and go-worker's intent (seed 002)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest

from taskmill import (
    Constant,
    NotRunning,
    Retry,
    TaskManager,
    TaskNotFound,
    TaskStatus,
    _clock,
)
from taskmill.testing import wait_all_tasks_blocked


class Counter:
    """Counts attempts; fails until attempt `succeed_on` (0 = always fails)."""

    def __init__(self, succeed_on: int = 1) -> None:
        self.succeed_on = succeed_on
        self.attempts = 0
        self.successes = 0

    def task(self) -> Callable[[], Awaitable[None]]:
        tries = 0

        async def run() -> None:
            nonlocal tries
            tries += 1
            self.attempts += 1
            await asyncio.sleep(0.001)
            if self.succeed_on == 0 or tries < self.succeed_on:
                raise ValueError(f"attempt {tries}")
            self.successes += 1

        return run


class TestMarionette:
    async def test_hundred_tasks_smallest_queue_complete_before_stop(self) -> None:
        """100 tasks through the smallest queue (QueueSize 0 there, 1 here) all run."""
        counter = Counter()
        mgr = TaskManager(concurrency=4, queue_size=1)
        await mgr.start()
        for _ in range(100):
            _ = await mgr.submit(counter.task())
        report = await mgr.stop()
        assert 100 == counter.successes
        assert () == report.abandoned

    async def test_start_stop_idempotent(self) -> None:
        """Start twice and Stop twice are harmless."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.start()
        assert mgr.running
        await mgr.stop()
        await mgr.stop()
        assert not mgr.running

    async def test_queue_after_stop_errors(self) -> None:
        """Queue after Stop -> ErrTaskManagerStopped (here NotRunning)."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.stop()
        with pytest.raises(NotRunning, match="not running"):
            _ = await mgr.submit(asyncio.sleep, 0)

    async def test_retries_zero_backoff_exact_attempts(self) -> None:
        """Fail until the 3rd attempt with 5 retries: 100 tasks -> 300 attempts."""
        counter = Counter(succeed_on=3)
        policy = Retry.from_marionette(5, backoff=Constant(0))
        async with TaskManager(concurrency=8, retry=policy) as mgr:
            for _ in range(100):
                _ = await mgr.submit(counter.task())
            await mgr.join()
        assert (300, 100) == (counter.attempts, counter.successes)

    async def test_retries_exhausted(self) -> None:
        """1 retry, always failing: 100 tasks -> 200 attempts, none succeed."""
        counter = Counter(succeed_on=0)
        policy = Retry.from_marionette(1, backoff=Constant(0))
        async with TaskManager(concurrency=8, retry=policy) as mgr:
            handles = [await mgr.submit(counter.task()) for _ in range(100)]
            await mgr.join()
        assert (200, 0) == (counter.attempts, counter.successes)
        assert all(h.status is TaskStatus.FAILED for h in handles)
        assert all(len(h.history) == 2 for h in handles)

    async def test_retries_constant_backoff(self) -> None:
        """Constant 10 ms backoff: same counts, retries land 10 ms after each failure."""
        counter = Counter(succeed_on=3)
        policy = Retry.from_marionette(5, backoff=Constant(0.01))
        async with TaskManager(concurrency=100, retry=policy) as mgr:
            for _ in range(100):
                _ = await mgr.submit(counter.task())
            await mgr.join()
            # 3 attempts of 1 ms each + 2 waits of 10 ms, all 100 in parallel
            assert 0.023 == pytest.approx(asyncio.get_running_loop().time(), abs=1e-9)
        assert (300, 100) == (counter.attempts, counter.successes)

    async def test_mixed_retry_and_no_retry(self) -> None:
        """50 tasks succeed on their retry, 50 without retries fail: 150 attempts, 50 ok."""
        retried = Counter(succeed_on=2)
        single = Counter(succeed_on=0)
        async with TaskManager(concurrency=8) as mgr:
            with_retry = mgr.with_options(retry=Retry.from_marionette(1, backoff=Constant(0)))
            for _ in range(50):
                _ = await with_retry.submit(retried.task())
                _ = await mgr.submit(single.task())
            await mgr.join()
        assert 150 == retried.attempts + single.attempts
        assert 50 == retried.successes + single.successes

    async def test_scheduler_futures_before_and_while_running(self) -> None:
        """10 futures (-500 ms .. +400 ms) before start and 10 while running all run."""
        ran: list[int] = []

        async def note(i: int) -> None:
            ran.append(i)

        mgr = TaskManager()
        await mgr.start()
        now = _clock.now()
        for i in range(10):
            at = now + dt.timedelta(milliseconds=-500 + 100 * i)
            _ = await mgr.with_options(at=at).submit(note, i)
        await asyncio.sleep(0.2)
        for i in range(10, 20):
            at = _clock.now() + dt.timedelta(milliseconds=-500 + 100 * (i - 10))
            _ = await mgr.with_options(at=at).submit(note, i)
        await mgr.join()
        await mgr.stop()
        assert list(range(20)) == sorted(ran)


class TestGoWorkerIntent:
    async def test_registered_task_is_retrievable(self) -> None:
        """A submitted task can be fetched by id and listed."""
        async with TaskManager() as mgr:
            handle = await mgr.with_options(name="t", description="d", priority=2).submit(
                asyncio.sleep, 1
            )
            assert handle is mgr.get(handle.id)
            assert [handle] == mgr.tasks()
            info = handle.info()
            assert ("t", "d", 2) == (info.name, info.description, info.priority)

    async def test_successful_result_appears_on_the_stream(self) -> None:
        """The result of a successful task is delivered to subscribers."""
        async with TaskManager() as mgr, mgr.results() as stream:
            handle = await mgr.submit(asyncio.sleep, 0, "hello")
            result = await anext(stream)
        assert (handle.id, "hello") == (result.id, result.value)

    async def test_cancel_by_id_and_get_cancelled(self) -> None:
        """CancelTask(id) cancels; the cancelled task is visible with its status."""
        async with TaskManager(concurrency=1) as mgr:
            running = await mgr.submit(asyncio.sleep, 10)
            queued = await mgr.submit(asyncio.sleep, 10)
            await wait_all_tasks_blocked()
            assert mgr.cancel(running.id)
            assert mgr.cancel(queued.id)
            await mgr.join()
            assert [running, queued] == mgr.tasks(TaskStatus.CANCELLED)
            assert not mgr.cancel(queued.id)

    async def test_wait_returns_when_all_done(self) -> None:
        """Wait(timeout) waited for the workers too; join() waits for tasks only."""
        async with TaskManager(concurrency=2) as mgr:
            for i in range(5):
                _ = await mgr.submit(asyncio.sleep, i)
            await mgr.join()
            assert 6.0 == asyncio.get_running_loop().time()  # worker A: 0, 2, 4; B: 1, 3
            assert 0 == mgr.statistics().live
            await mgr.join()  # nothing left: returns at once

    async def test_get_unknown_id(self) -> None:
        """GetTask of an unknown id -> ErrTaskNotFound."""
        async with TaskManager() as mgr:
            with pytest.raises(TaskNotFound):
                _ = mgr.get("00000000-0000-0000-0000-000000000000")

    async def test_retries_are_bounded_unlike_v0_0_5(self) -> None:
        """v0.0.5 re-registered failures forever; a policy's max_attempts is final."""
        counter = Counter(succeed_on=0)
        async with TaskManager(retry=Retry.from_marionette(3, backoff=Constant(1))) as mgr:
            await (await mgr.submit(counter.task())).wait()
        assert 4 == counter.attempts
