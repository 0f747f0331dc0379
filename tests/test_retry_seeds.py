"""The seeds' own retry tests, ported (sc-bos task, rebuy RetryJob, marionette Error, hive
OneShot), plus the retry items of seeds-spec section 7. All on virtual time."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from taskmill import (
    ConfigurationError,
    Constant,
    Exponential,
    RetriesExhausted,
    Retry,
    RetryNow,
    StopRetrying,
    TaskTimeout,
)
from taskmill.testing import wait_all_tasks_blocked


class Counter:
    """An async task that fails ``failures`` times (or forever) and counts its calls."""

    def __init__(self, failures: float = math.inf, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(asyncio.get_running_loop().time())
        if self.calls <= self.failures:
            raise self.error or ValueError(f"call {self.calls}")
        return "ok"


class TestScBos:
    """sc-bos pkg/task: Run, WithRetry, Next, WithTimeout (task_test.go)."""

    async def test_plain_run_returns_the_task_error(self) -> None:
        """Run(task) makes one attempt; its error is what the caller gets (as the cause)."""
        error = ValueError("task error")
        task = Counter(error=error)
        with pytest.raises(RetriesExhausted) as info:
            await Retry.from_sc_bos(1).run(task)
        assert 1 == task.calls
        assert error is info.value.__cause__
        assert error is info.value.last_error

    async def test_with_retry_10_calls_10_times(self) -> None:
        """WithRetry(10) is ten attempts in total, not eleven."""
        task = Counter()
        with pytest.raises(RetriesExhausted):
            await Retry.from_sc_bos(10, backoff=Constant(0.0)).run(task)
        assert 10 == task.calls

    async def test_stop_now_on_fifth_call(self) -> None:
        """StopNow on the 5th call: 5 calls and exactly that error."""
        fifth = KeyError("fifth")
        calls = 0

        async def task() -> None:
            nonlocal calls
            calls += 1
            if calls == 5:
                raise StopRetrying(fifth)
            raise ValueError(calls)

        with pytest.raises(KeyError) as info:
            await Retry.from_sc_bos(None, backoff=Constant(0.0)).run(task)
        assert 5 == calls
        assert fifth is info.value

    async def test_with_timeout_on_a_waiting_task(self) -> None:
        """WithTimeout(1s) with a task that waits forever: the error is a timeout."""

        async def task() -> None:
            await asyncio.Event().wait()

        with pytest.raises(RetriesExhausted) as info:
            await Retry.from_sc_bos(1, timeout=1.0).run(task)
        cause = info.value.__cause__
        assert isinstance(cause, TaskTimeout)
        assert isinstance(cause, TimeoutError)
        assert 1.0 == asyncio.get_running_loop().time()

    async def test_retry_now_with_nil_error_does_not_rerun(self) -> None:
        """A successful attempt ends the loop whatever directive came before it."""
        calls = 0

        async def task() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RetryNow(ValueError("once"))
            return "done"

        assert "done" == await Retry.from_sc_bos(None).run(task)
        assert 2 == calls

    async def test_next_ignored_on_success(self) -> None:
        """Success on the first attempt: one call, no retry, no wait."""
        task = Counter(failures=0)
        assert "ok" == await Retry.from_sc_bos(5, backoff=Constant(10.0)).run(task)
        assert [0.0] == task.times

    async def test_cancel_during_backoff_wait(self) -> None:
        """Cancel while waiting: CancelledError (not the task error), no further attempt."""
        task = Counter()
        runner = asyncio.create_task(Retry.from_sc_bos(None, backoff=Constant(60.0)).run(task))
        await wait_all_tasks_blocked()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await asyncio.sleep(600)
        assert 1 == task.calls

    async def test_backoff_sequence_is_waited(self) -> None:
        """WithBackoff(1s, 10s): waits of 1, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10."""
        task = Counter(failures=7)
        policy = Retry.from_sc_bos(None, backoff=Exponential(1.0, multiplier=1.5, max=10.0))
        assert "ok" == await policy.run(task)
        waits = [b - a for a, b in zip(task.times, task.times[1:], strict=False)]
        assert [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10.0] == pytest.approx(waits)


class TestRebuyRetryJob:
    """rebuy runutil RetryJob(job, backoff)."""

    async def test_success_first_try(self) -> None:
        """One call when the job succeeds at once."""
        job = Counter(failures=0)
        assert "ok" == await Retry(max_attempts=None, backoff=Exponential(1.0, max=60.0)).run(job)
        assert 1 == job.calls

    async def test_three_failures_then_success_waits_the_backoff(self) -> None:
        """3 failures then success: 4 calls at 0, 1, 3, 7 (ExponentialBackoff 1s..60s)."""
        job = Counter(failures=3)
        assert "ok" == await Retry(max_attempts=None, backoff=Exponential(1.0, max=60.0)).run(job)
        assert [0.0, 1.0, 3.0, 7.0] == job.times

    async def test_cancellation(self) -> None:
        """Cancelling the retry loop raises CancelledError."""
        job = Counter()
        task = asyncio.create_task(Retry(max_attempts=None, backoff=Constant(1.0)).run(job))
        await asyncio.sleep(2.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [0.0, 1.0, 2.0] == job.times


class TestMarionetteError:
    """marionette Error: attempts, per-attempt errors, duration, Dict()."""

    async def test_message_and_history(self) -> None:
        """The error names the attempt count and keeps every attempt's error in order."""
        task = Counter()
        with pytest.raises(RetriesExhausted) as info:
            await Retry.from_marionette(4, backoff=Constant(0.0)).run(task)
        exc = info.value
        assert 5 == len(exc.attempts)
        assert "gave up after 5 attempts: ValueError('call 5')" == str(exc)
        assert [f"call {n}" for n in range(1, 6)] == [str(e) for e in exc.errors]

    async def test_duration_is_last_failure_minus_first_start(self) -> None:
        """Each attempt runs 0.5 s, waits 1 s: total = 3.5 s for three attempts."""

        async def slow_fail() -> None:
            await asyncio.sleep(0.5)
            raise ValueError("slow")

        with pytest.raises(RetriesExhausted) as info:
            await Retry.from_marionette(2, backoff=Constant(1.0)).run(slow_fail)
        assert 3.5 == info.value.total_duration

    async def test_as_dict(self) -> None:
        """as_dict() gives a structured, JSON-friendly summary (upstream Dict())."""
        with pytest.raises(RetriesExhausted) as info:
            await Retry.from_marionette(1, backoff=Constant(2.0)).run(Counter())
        data = info.value.as_dict()
        assert "attempts" == data["reason"]
        assert 2 == data["attempts"]
        assert 2.0 == data["total_duration"]
        assert ["call 1", "call 2"] == [h["message"] for h in data["history"]]
        assert {"ValueError"} == {h["error_type"] for h in data["history"]}

    async def test_retries_with_zero_backoff_recover(self) -> None:
        """Fail until the 3rd attempt, 5 retries allowed: 3 attempts, success."""
        task = Counter(failures=2)
        assert "ok" == await Retry.from_marionette(5, backoff=Constant(0.0)).run(task)
        assert 3 == task.calls

    async def test_one_retry_exhausts_after_two_attempts(self) -> None:
        """WithRetries(1) on a task that always fails: exactly 2 attempts."""
        task = Counter()
        with pytest.raises(RetriesExhausted):
            await Retry.from_marionette(1, backoff=Constant(0.01)).run(task)
        assert 2 == task.calls


class TestHiveOneShot:
    """hive job.OneShot with WithRetry(times, backoff)."""

    async def test_three_retries_four_runs(self) -> None:
        """WithRetry(3, ...) on a failing job: 4 runs."""
        job = Counter()
        with pytest.raises(RetriesExhausted):
            await Retry.from_hive(3, backoff=Constant(0.1)).run(job)
        assert 4 == job.calls

    async def test_recovery_after_one_failure(self) -> None:
        """One failure then success: exactly 2 runs."""
        job = Counter(failures=1)
        assert "ok" == await Retry.from_hive(3, backoff=Constant(0.1)).run(job)
        assert 2 == job.calls

    async def test_exponential_doubles_exactly(self) -> None:
        """ExponentialBackoff{Min: 1s, Max: 8s}: waits 1, 2, 4, 8, 8 (exact, not +-50%)."""
        job = Counter(failures=5)
        assert "ok" == await Retry.from_hive(5, backoff=Exponential(1.0, max=8.0)).run(job)
        waits = [b - a for a, b in zip(job.times, job.times[1:], strict=False)]
        assert [1.0, 2.0, 4.0, 8.0, 8.0] == waits

    async def test_negative_times_retries_forever(self) -> None:
        """times < 0: unlimited (50 failures, then success: 51 runs)."""
        job = Counter(failures=50)
        assert "ok" == await Retry.from_hive(-1, backoff=Constant(1.0)).run(job)
        assert 51 == job.calls


class TestNaivePortPitfalls:
    """seeds-spec section 7, the retry items."""

    def test_item1_attempt_counting(self) -> None:
        """sc-bos n = total; marionette and hive n = extra attempts."""
        assert (3, 4, 4) == (
            Retry.from_sc_bos(3).max_attempts,
            Retry.from_marionette(3).max_attempts,
            Retry.from_hive(3).max_attempts,
        )

    async def test_item2_next_ignored_on_success(self) -> None:
        """Directives are only consulted on failure: a success always ends the loop."""
        job = Counter(failures=0)
        assert "ok" == await Retry(max_attempts=None).run(job)
        assert 1 == job.calls

    def test_item3_start_above_max_is_refused_and_growth_is_x1_5(self) -> None:
        """sc-bos: the start > max quirk is a ConfigurationError here; growth is x1.5."""
        with pytest.raises(ConfigurationError, match="max"):
            Exponential(20.0, max=10.0, multiplier=1.5)
        backoff = Exponential(2.0, multiplier=1.5, max=100.0)
        assert [2.0, 3.0, 4.5] == list(backoff.sequence(3, random.Random(0)))

    async def test_item4_cancel_during_wait_is_cancelled_error(self) -> None:
        """Cancelled during a back-off wait: CancelledError, not the task's error."""
        task = asyncio.create_task(Retry(backoff=Constant(5.0)).run(Counter()))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    def test_item8_rebuy_max_zero_and_no_nan(self) -> None:
        """rebuy Max = 0 means no wait (initial = max = 0); no NaN after 1025 attempts."""
        rng = random.Random(0)
        assert 0.0 == Exponential(0.0, max=0.0).delay(5, rng)
        with pytest.raises(ConfigurationError, match="max"):
            Exponential(1.0, max=0.0)
        for proportion in (0.0, 1.0):
            backoff = Exponential(1.0, max=60.0, jitter="proportional", proportion=proportion)
            for retry in (1024, 1025, 1026, 5000):
                value = backoff.delay(retry, rng)
                assert math.isfinite(value)
                assert value > 0.0
