"""Retries through the scheduler, timeouts, failures of every kind, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from taskmill import (
    Constant,
    Exponential,
    Retry,
    RetryNow,
    StopRetrying,
    TaskCancelled,
    TaskFailed,
    TaskManager,
    TaskStatus,
    TaskTimeout,
)
from taskmill.testing import wait_all_tasks_blocked


class Flaky:
    """Fails `failures` times, then returns "ok"; records attempt start times."""

    def __init__(self, failures: int, error: type[BaseException] = ValueError) -> None:
        self.failures = failures
        self.error = error
        self.starts: list[float] = []

    async def __call__(self) -> str:
        self.starts.append(asyncio.get_running_loop().time())
        if len(self.starts) <= self.failures:
            raise self.error(f"attempt {len(self.starts)}")
        return "ok"


class TestRetries:
    async def test_retry_waits_on_the_scheduler_with_exact_backoff(self) -> None:
        """Backoff delays land exactly; status is RETRYING while waiting."""
        flaky = Flaky(2)
        policy = Retry(max_attempts=5, backoff=Exponential(1.0))
        async with TaskManager(retry=policy) as mgr:
            handle = await mgr.submit(flaky)
            await wait_all_tasks_blocked()
            assert TaskStatus.RETRYING == handle.status
            assert handle.scheduled_for is not None
            assert isinstance(handle.error, ValueError)
            assert "ok" == await handle
        assert [0.0, 1.0, 3.0] == flaky.starts
        assert 3 == handle.attempts
        assert 3 == len(handle.history)

    async def test_backing_off_task_holds_no_worker(self) -> None:
        """With one worker, other tasks run while a task waits to retry."""
        flaky = Flaky(1)
        ran: list[float] = []

        async def other() -> None:
            ran.append(asyncio.get_running_loop().time())

        policy = Retry(max_attempts=2, backoff=Constant(10))
        async with TaskManager(concurrency=1) as mgr:
            retried = await mgr.with_options(retry=policy).submit(flaky)
            await wait_all_tasks_blocked()
            await (await mgr.submit(other)).wait()
            assert TaskStatus.RETRYING == retried.status
            assert 1 == mgr.statistics().retrying
            await retried
        assert [0.0] == ran
        assert [0.0, 10.0] == flaky.starts

    async def test_exhausted_retries_fail_with_history(self) -> None:
        """After max_attempts the task fails; TaskFailed carries every attempt."""
        flaky = Flaky(10)
        async with TaskManager(retry=Retry(max_attempts=3, backoff=Constant(1))) as mgr:
            handle = await mgr.submit(flaky)
            with pytest.raises(TaskFailed) as caught:
                await handle
        assert TaskStatus.FAILED == handle.status
        assert [1, 2, 3] == [a.number for a in caught.value.attempts]
        assert ["attempt 1", "attempt 2", "attempt 3"] == [
            str(a.error) for a in caught.value.attempts
        ]
        assert "attempt 3" == str(caught.value.__cause__)
        assert 2 == mgr.statistics().retries

    async def test_not_retryable_errors_fail_at_once(self) -> None:
        """`retry_on` decides; other errors end the task immediately."""
        flaky = Flaky(5, error=KeyError)
        policy = Retry(max_attempts=5, backoff=Constant(0), retry_on=ValueError)
        async with TaskManager(retry=policy) as mgr:
            assert TaskStatus.FAILED == await (await mgr.submit(flaky)).wait()
        assert 1 == len(flaky.starts)

    async def test_directives_steer_the_retries(self) -> None:
        """StopRetrying ends at once with the wrapped error; RetryNow skips the wait."""
        starts: list[float] = []

        async def steer() -> None:
            starts.append(asyncio.get_running_loop().time())
            if len(starts) == 1:
                raise RetryNow(ValueError("again"))
            raise StopRetrying(KeyError("stop"))

        async with TaskManager(retry=Retry(max_attempts=9, backoff=Constant(5))) as mgr:
            handle = await mgr.submit(steer)
            assert TaskStatus.FAILED == await handle.wait()
        assert [0.0, 0.0] == starts
        assert isinstance(handle.error, KeyError)


class TestTimeouts:
    async def test_timeout_ends_timed_out(self) -> None:
        """An attempt past its timeout fails with TaskTimeout; final status TIMED_OUT."""
        async with TaskManager(timeout=2) as mgr:
            handle = await mgr.submit(asyncio.sleep, 60)
            with pytest.raises(TaskFailed) as caught:
                await handle
        assert TaskStatus.TIMED_OUT == handle.status
        assert isinstance(caught.value.__cause__, TaskTimeout)
        assert handle.finished_at is not None
        assert (0.0, 0.0, 2.0) == handle.loop_times()

    async def test_timeouts_are_retried_with_a_fresh_deadline(self) -> None:
        """Each attempt gets its own timeout; retries then time out again."""
        policy = Retry(max_attempts=3, backoff=Constant(1))
        async with TaskManager(retry=policy, timeout=2) as mgr:
            handle = await mgr.submit(asyncio.sleep, 60)
            assert TaskStatus.TIMED_OUT == await handle.wait()
            assert 3 == handle.attempts
            assert (0.0, 6.0, 8.0) == handle.loop_times()

    async def test_own_timeout_error_is_a_plain_failure(self) -> None:
        """A TimeoutError the task raises itself is not our timeout."""

        async def raises_timeout() -> None:
            raise TimeoutError("mine")

        async with TaskManager(timeout=5) as mgr:
            handle = await mgr.submit(raises_timeout)
            assert TaskStatus.FAILED == await handle.wait()
        assert isinstance(handle.error, TimeoutError)
        assert not isinstance(handle.error, TaskTimeout)

    async def test_per_task_timeout_and_math_inf(self) -> None:
        """A task option overrides the default; math.inf switches it off."""
        async with TaskManager(timeout=1) as mgr:
            short = await mgr.with_options(timeout=0.5).submit(asyncio.sleep, 10)
            none = await mgr.with_options(timeout=float("inf")).submit(asyncio.sleep, 10)
            assert TaskStatus.TIMED_OUT == await short.wait()
            assert TaskStatus.SUCCEEDED == await none.wait()
            assert 0.5 == short.loop_times()[2]

    async def test_retry_deadline_cuts_the_attempt_timeout(self) -> None:
        """With a total deadline an attempt never runs past it."""
        policy = Retry(max_attempts=10, backoff=Constant(1), deadline=5)
        async with TaskManager(retry=policy, timeout=3) as mgr:
            handle = await mgr.submit(asyncio.sleep, 60)
            assert TaskStatus.TIMED_OUT == await handle.wait()
            assert 2 == handle.attempts
            assert 5.0 == handle.loop_times()[2]


class TestUnexpectedExceptions:
    @pytest.mark.parametrize(
        "error",
        [KeyboardInterrupt, SystemExit, GeneratorExit, type("Custom", (BaseException,), {})],
    )
    async def test_base_exceptions_fail_only_their_task(self, error: type[BaseException]) -> None:
        """RELIABILITY T17: BaseExceptions are that task's failure; workers live on."""

        async def raiser() -> None:
            raise error

        async with TaskManager(concurrency=1, retry=Retry(backoff=Constant(0))) as mgr:
            bad = await mgr.submit(raiser)
            good = await mgr.submit(asyncio.sleep, 0, "fine")
            assert TaskStatus.FAILED == await bad.wait()
            assert "fine" == await good
            assert 1 == bad.attempts  # never retried
            assert isinstance(bad.error, error)
            assert 1 == mgr.statistics().workers

    async def test_sync_base_exception_in_a_thread(self) -> None:
        """The same holds for sync callables."""

        def raiser() -> None:
            raise KeyboardInterrupt

        async with TaskManager() as mgr:
            handle = await mgr.submit(raiser)
            assert TaskStatus.FAILED == await handle.wait()
            assert isinstance(handle.error, KeyboardInterrupt)

    async def test_own_cancelled_error_is_a_failure(self) -> None:
        """A task raising CancelledError without being cancelled has failed."""

        async def raiser() -> None:
            raise asyncio.CancelledError

        async with TaskManager(retry=Retry(backoff=Constant(0))) as mgr:
            handle = await mgr.submit(raiser)
            assert TaskStatus.FAILED == await handle.wait()
            assert isinstance(handle.error, asyncio.CancelledError)
            assert 1 == handle.attempts
            assert "ok" == await (await mgr.submit(asyncio.sleep, 0, "ok"))

    async def test_awaiting_a_cancelled_future_is_a_failure(self) -> None:
        """Awaiting something someone else cancelled is the task's own failure."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        async with TaskManager() as mgr:
            handle = await mgr.submit(lambda: future)
            await wait_all_tasks_blocked()
            future.cancel()
            assert TaskStatus.FAILED == await handle.wait()


class TestCancel:
    async def test_cancel_queued_finishes_at_once(self) -> None:
        """go-worker rewrite: a queued task finishes cancelled immediately."""
        async with TaskManager(concurrency=1) as mgr:
            _ = await mgr.submit(asyncio.sleep, 10)
            await wait_all_tasks_blocked()
            queued = await mgr.submit(asyncio.sleep, 10)
            assert mgr.cancel(queued.id)
            assert TaskStatus.CANCELLED == queued.status
            assert not queued.cancel()
            with pytest.raises(TaskCancelled):
                await queued
            assert 0 == mgr.statistics().queued

    async def test_cancel_scheduled_and_retrying(self) -> None:
        """Scheduled and retry-waiting tasks finish cancelled at once."""
        flaky = Flaky(5)
        async with TaskManager(retry=Retry(max_attempts=9, backoff=Constant(60))) as mgr:
            later = await mgr.with_options(delay=60).submit(asyncio.sleep, 0)
            retrying = await mgr.submit(flaky)
            await wait_all_tasks_blocked()
            assert TaskStatus.RETRYING == retrying.status
            assert later.cancel()
            assert retrying.cancel()
            stats = mgr.statistics()
            assert (0, 0, 2) == (stats.scheduled, stats.retrying, stats.cancelled)
        assert 1 == len(flaky.starts)

    async def test_cancel_running_ends_cancelled_and_worker_lives(self) -> None:
        """A running task is interrupted, ends cancelled, and its worker carries on."""
        loop = asyncio.get_running_loop()
        async with TaskManager(concurrency=1) as mgr:
            running = await mgr.submit(asyncio.sleep, 100)
            after = await mgr.submit(asyncio.sleep, 1, "after")
            await asyncio.sleep(5)
            assert running.cancel()
            assert not running.cancel()
            assert TaskStatus.CANCELLED == await running.wait()
            assert 5.0 == loop.time()
            assert "after" == await after
            assert 6.0 == loop.time()
            assert 1 == mgr.statistics().workers

    async def test_cancel_running_sync_task(self) -> None:
        """A sync task ends cancelled at once (its thread finishes in the background)."""
        import threading

        release = threading.Event()
        async with TaskManager() as mgr:
            handle = await mgr.submit(release.wait, 5)
            await asyncio.sleep(0)
            assert handle.cancel()
            assert TaskStatus.CANCELLED == await handle.wait()
            release.set()

    async def test_swallowed_cancellation_still_ends_cancelled(self) -> None:
        """A task that catches the cancel and returns is still recorded cancelled."""

        async def stubborn() -> str:
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                return "ignored"
            return "done"

        async with TaskManager() as mgr:
            handle = await mgr.submit(stubborn)
            await wait_all_tasks_blocked()
            handle.cancel()
            assert TaskStatus.CANCELLED == await handle.wait()
            assert "ok" == await (await mgr.submit(asyncio.sleep, 1, "ok"))

    async def test_task_cancelling_itself(self) -> None:
        """A task may cancel its own handle; it ends cancelled when it returns."""
        holder: list[object] = []

        async def self_cancel() -> str:
            holder[0].cancel()  # type: ignore[attr-defined]
            await asyncio.sleep(1)
            return "finished anyway"

        async with TaskManager() as mgr:
            handle = await mgr.submit(self_cancel)
            holder.append(handle)
            assert TaskStatus.CANCELLED == await handle.wait()
            assert "ok" == await (await mgr.submit(asyncio.sleep, 1, "ok"))

    async def test_cancel_all(self) -> None:
        """go-worker intent (its CancelAll panicked): every unfinished task is cancelled."""
        async with TaskManager(concurrency=2) as mgr:
            done = await mgr.submit(asyncio.sleep, 0)
            await done
            handles = [await mgr.submit(asyncio.sleep, 10) for _ in range(5)]
            handles.append(await mgr.with_options(delay=5).submit(asyncio.sleep, 1))
            await wait_all_tasks_blocked()
            assert 6 == mgr.cancel_all()
            for handle in handles:
                assert TaskStatus.CANCELLED == await handle.wait()
            assert TaskStatus.SUCCEEDED == done.status
            assert 0 == mgr.cancel_all()
            assert 6 == mgr.statistics().cancelled

    async def test_cancellation_storm(self) -> None:
        """RELIABILITY T16: thousands of cancels leave nothing stuck or leaked."""
        async with TaskManager(concurrency=50) as mgr:
            handles = [await mgr.submit(asyncio.sleep, 100) for _ in range(2000)]
            handles += [
                await mgr.with_options(delay=50).submit(asyncio.sleep, 1) for _ in range(2000)
            ]
            await wait_all_tasks_blocked()
            for handle in handles:
                handle.cancel()
            await mgr.join()
            stats = mgr.statistics()
            assert 4000 == stats.cancelled
            assert 0 == stats.live
            assert 50 == stats.workers
            assert "ok" == await (await mgr.submit(asyncio.sleep, 0, "ok"))
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert [] == tasks
