"""One-shot jobs, named after cilium hive's job tests (seeds-spec 5.3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from taskmill import (
    AlreadyStarted,
    ConfigurationError,
    Constant,
    Exponential,
    HealthLevel,
    JobGroup,
    JobKind,
    JobState,
    NotRunning,
    RetriesExhausted,
    Retry,
    StopRetrying,
    TaskTimeout,
    current_health,
    one_shot,
)
from taskmill.testing import wait_all_tasks_blocked


class Target(Exception):
    """The error the tests expect to see again."""


class Recorder:
    """A Metrics implementation that records every call."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, float]] = []
        self.errors: list[tuple[str, str, BaseException]] = []
        self.triggers: list[tuple[str, float, int]] = []

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        self.runs.append((kind, name, seconds))

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        self.errors.append((kind, name, error))

    def trigger(self, name: str, latency: float, folded: int) -> None:
        self.triggers.append((name, latency, folded))


class Shutdowns:
    def __init__(self) -> None:
        self.calls: list[BaseException | None] = []

    def __call__(self, error: BaseException | None) -> None:
        self.calls.append(error)


def now() -> float:
    return asyncio.get_running_loop().time()


class Failing:
    """An async callable failing its first ``failures`` calls, recording call times."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or Target("boom")
        self.calls: list[float] = []

    async def __call__(self) -> None:
        self.calls.append(now())
        if len(self.calls) <= self.failures:
            raise self.error


class TestHiveSuite:
    async def test_short_job_runs_and_stops(self) -> None:
        """A short one-shot runs once and the group stops cleanly."""
        calls: list[float] = []

        async def fn() -> None:
            calls.append(now())

        group = JobGroup("g")
        job = one_shot("short", fn)
        group.add(job)
        await group.start()
        await wait_all_tasks_blocked()
        await group.stop()
        assert calls == [0.0]
        assert job.state is JobState.FINISHED
        assert group.statistics().finished == 1

    async def test_long_job_is_cancelled_on_stop(self) -> None:
        """Stopping the group cancels a long-running one-shot at the stop time."""
        cancelled_at: list[float] = []
        shutdown = Shutdowns()

        async def fn() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled_at.append(now())
                raise

        job = one_shot("long", fn, shutdown_on_failure=True)
        group = JobGroup(shutdown=shutdown)
        group.add(job)
        await group.start()
        await asyncio.sleep(5)
        await group.stop()
        assert cancelled_at == [5.0]
        assert job.state is JobState.STOPPED
        assert shutdown.calls == []

    async def test_retry_3_means_4_runs(self) -> None:
        """Retry.from_hive(3) makes 4 attempts, then fails with the attempt history."""
        fn = Failing(failures=100)
        job = one_shot("flaky", fn, retry=Retry.from_hive(3, backoff=Constant(1.0)))
        with pytest.raises(RetriesExhausted) as info:
            await job.run()
        assert len(fn.calls) == 4
        assert len(info.value.attempts) == 4
        assert info.value.last_error is fn.error
        assert job.state is JobState.FAILED

    async def test_exponential_waits_are_exact(self) -> None:
        """Backoff 1, 2, 4 s between the attempts, on exact virtual timestamps."""
        fn = Failing(failures=100)
        retry = Retry.from_hive(3, backoff=Exponential(1.0, multiplier=2.0))
        with pytest.raises(RetriesExhausted):
            await one_shot("exp", fn, retry=retry).run()
        assert fn.calls == [0.0, 1.0, 3.0, 7.0]

    async def test_recovery_after_one_failure_runs_exactly_twice(self) -> None:
        """One failure then success: exactly 2 runs, job finished."""
        fn = Failing(failures=1)
        job = one_shot("recover", fn, retry=Retry.from_hive(3, backoff=Constant(2.0)))
        await job.run()
        assert fn.calls == [0.0, 2.0]
        assert job.state is JobState.FINISHED
        assert job.statistics().runs == 2
        assert job.statistics().errors == 1

    async def test_shutdown_on_failure_carries_the_target_error(self) -> None:
        """Without retries, the shutdown gets the job's own error."""
        fn = Failing(failures=1)
        shutdown = Shutdowns()
        job = one_shot("fatal", fn, shutdown_on_failure=True)
        with pytest.raises(Target):
            await job.run(shutdown=shutdown)
        assert shutdown.calls == [fn.error]

    async def test_retries_then_shutdown(self) -> None:
        """Retries run first (4 runs); then one shutdown carrying the exhaustion."""
        fn = Failing(failures=100)
        shutdown = Shutdowns()
        job = one_shot(
            "fatal",
            fn,
            retry=Retry.from_hive(3, backoff=Constant(1.0)),
            shutdown_on_failure=True,
        )
        group = JobGroup(shutdown=shutdown)
        group.add(job)
        await group.start()
        await asyncio.sleep(10)
        assert len(fn.calls) == 4
        assert len(shutdown.calls) == 1
        error = shutdown.calls[0]
        assert isinstance(error, RetriesExhausted)
        assert error.last_error is fn.error
        assert error.__cause__ is fn.error
        await group.stop()

    async def test_recovery_with_shutdown_does_not_shut_down(self) -> None:
        """A job that recovers never requests a shutdown."""
        shutdown = Shutdowns()
        job = one_shot(
            "ok", Failing(failures=2), retry=Retry.from_hive(3), shutdown_on_failure=True
        )
        await job.run(shutdown=shutdown)
        assert shutdown.calls == []

    async def test_cancellation_during_backoff_does_not_shut_down(self) -> None:
        """Stopping while the job waits to retry ends it quietly: no new attempt, no shutdown."""
        fn = Failing(failures=100)
        shutdown = Shutdowns()
        job = one_shot(
            "w", fn, retry=Retry.from_hive(3, backoff=Constant(60.0)), shutdown_on_failure=True
        )
        group = JobGroup(shutdown=shutdown)
        group.add(job)
        await group.start()
        await asyncio.sleep(30)
        await group.stop()
        await asyncio.sleep(300)
        assert fn.calls == [0.0]
        assert shutdown.calls == []
        assert job.state is JobState.STOPPED
        assert job.health is not None
        assert job.health.own_level is HealthLevel.STOPPED

    async def test_swallowed_cancellation_starts_no_new_attempt(self) -> None:
        """A function that swallows the cancel and fails does not get retried."""
        calls: list[float] = []
        shutdown = Shutdowns()

        async def fn() -> None:
            calls.append(now())
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(100)
            raise Target("after cancel")

        job = one_shot(
            "swallow", fn, retry=Retry.from_hive(5, backoff=Constant(0.0)), shutdown_on_failure=True
        )
        task = asyncio.create_task(job.run(shutdown=shutdown))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls == [0.0]
        assert shutdown.calls == []

    async def test_no_retry_after_stop_began(self) -> None:
        """A job failing while the group stops is not retried (1 run)."""
        fn = Failing(failures=100)
        started = asyncio.Event()

        async def slow_fail() -> None:
            started.set()
            try:
                await asyncio.sleep(3600)
            finally:
                await fn()

        job = one_shot("x", slow_fail, retry=Retry.from_hive(3, backoff=Constant(0.0)))
        group = JobGroup()
        group.add(job)
        await group.start()
        await started.wait()
        await group.stop()
        assert len(fn.calls) == 1


class TestHealthAndMetrics:
    async def test_health_sequence(self) -> None:
        """running -> degraded with the error -> running (attempt 2) -> finished in Xs."""
        seen: list[tuple[HealthLevel, str, str | None]] = []
        fn = Failing(failures=1)

        async def timed() -> None:
            await asyncio.sleep(2.5)
            await fn()

        job = one_shot("h", timed, retry=Retry.from_hive(1, backoff=Constant(1.0)))
        from taskmill import Health

        node = Health.root("h")
        node.add_listener(
            lambda n: seen.append((n.own_level, n.message, n.error.type if n.error else None))
        )
        await job.run(health=node)
        assert seen == [
            (HealthLevel.OK, "running", None),
            (HealthLevel.DEGRADED, "attempt 1 failed; retrying in 1s", "test_one_shot.Target"),
            (HealthLevel.OK, "running (attempt 2)", None),
            (HealthLevel.OK, "finished in 2.5s", None),
        ]

    async def test_final_failure_health_is_stopped_with_error(self) -> None:
        """Out of attempts: STOPPED 'failed: ...' with the error kept as text."""
        job = one_shot("f", Failing(failures=10))
        with pytest.raises(Target):
            await job.run()
        assert job.health is not None
        assert job.health.own_level is HealthLevel.STOPPED
        assert job.health.message == "failed: boom"
        assert job.health.error is not None
        assert job.health.error.message == "boom"

    async def test_metrics_get_exact_durations(self) -> None:
        """Each attempt's duration and each error go to the metrics."""
        calls = 0

        async def fn() -> None:
            nonlocal calls
            calls += 1
            await asyncio.sleep(1.5 * calls)
            if calls == 1:
                raise Target("first")

        metrics = Recorder()
        await one_shot("m", fn, retry=Retry.from_hive(1, backoff=Constant(0.5))).run(
            metrics=metrics
        )
        assert metrics.runs == [("one_shot", "m", 1.5), ("one_shot", "m", 3.0)]
        assert [(k, n, str(e)) for k, n, e in metrics.errors] == [("one_shot", "m", "first")]

    async def test_current_health_inside_and_outside(self) -> None:
        """current_health() is the job's node inside the job, an error outside."""
        inside = []

        async def fn() -> None:
            inside.append(current_health())
            current_health().scope("detail").ok("fine")

        job = one_shot("ch", fn)
        await job.run()
        assert inside == [job.health]
        assert job.health is not None
        assert [c.name for c in job.health.children] == ["detail"]
        with pytest.raises(NotRunning):
            current_health()

    async def test_failures_are_logged_with_job_extras(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Retried attempts log a warning and the final failure an error, with job extras."""
        caplog.set_level(logging.WARNING, logger="taskmill")
        job = one_shot(
            "logged", Failing(failures=10), retry=Retry.from_hive(1, backoff=Constant(0))
        )
        with pytest.raises(RetriesExhausted):
            await job.run()
        levels = [
            (r.levelno, getattr(r, "job", None), getattr(r, "job_kind", None))
            for r in caplog.records
        ]
        assert levels == [
            (logging.WARNING, "logged", "one_shot"),
            (logging.ERROR, "logged", "one_shot"),
        ]


class TestOneShotBehaviour:
    async def test_per_attempt_timeout_is_retried(self) -> None:
        """Retry(timeout=...) cuts an attempt with TaskTimeout, which is retried."""
        calls: list[float] = []

        async def fn() -> None:
            calls.append(now())
            if len(calls) == 1:
                await asyncio.sleep(100)

        job = one_shot("t", fn, retry=Retry(max_attempts=2, backoff=Constant(1.0), timeout=5.0))
        metrics = Recorder()
        await job.run(metrics=metrics)
        assert calls == [0.0, 6.0]
        assert isinstance(metrics.errors[0][2], TaskTimeout)

    async def test_stop_retrying_directive_fails_at_once(self) -> None:
        """StopRetrying(err) ends the job with err after one attempt."""
        fn = Failing(failures=10, error=StopRetrying(Target("fatal")))
        with pytest.raises(Target, match="fatal"):
            await one_shot("d", fn, retry=Retry.from_hive(5)).run()
        assert len(fn.calls) == 1

    async def test_jobs_are_single_use(self) -> None:
        """Running a job twice raises AlreadyStarted."""
        job = one_shot("once", Failing(failures=0))
        await job.run()
        with pytest.raises(AlreadyStarted):
            await job.run()

    def test_bad_arguments(self) -> None:
        """Empty names and non-callables are refused at the call."""
        with pytest.raises(ConfigurationError):
            one_shot("", Failing(0))
        with pytest.raises(ConfigurationError):
            one_shot("x", 42)  # type: ignore[arg-type]

    def test_name_is_sanitised_and_kind_set(self) -> None:
        """Names are sanitised for metric labels; repr shows the state."""
        job = one_shot("a b", Failing(0))
        assert job.name.startswith("ab-")
        assert job.kind is JobKind.ONE_SHOT
        assert "pending" in repr(job)
