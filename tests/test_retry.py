"""The retry policy, the sans-IO Runner, and the async/sync drivers (on virtual time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import inspect
import itertools
import math
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import taskmill
from taskmill import (
    Attempt,
    ConfigurationError,
    Constant,
    Exponential,
    Next,
    ResetBackoff,
    RetriesExhausted,
    Retry,
    RetryDirective,
    RetryNow,
    RetryState,
    Runner,
    StateError,
    Step,
    StopRetrying,
    TaskTimeout,
    _clock,
    retry,
    run,
)
from taskmill.testing import wait_all_tasks_blocked

OFFSET = 1_700_000_000.0
BOOM = ValueError("boom")


def make_runner(**kwargs: Any) -> Runner:
    return Runner(Retry(**kwargs), rng=random.Random(0), wall_offset=OFFSET)


def feed(
    runner: Runner, outcomes: list[BaseException | None], duration: float = 0.5
) -> list[tuple[str | None, bool, float]]:
    """Step through outcomes, each attempt starting when the previous wait ended."""
    now = 0.0
    steps: list[tuple[str | None, bool, float]] = []
    for outcome in outcomes:
        step = runner.step(outcome, started=now, finished=now + duration)
        name = None if step.error is None else type(step.error).__name__
        steps.append((name, step.again, step.delay))
        now += duration + step.delay
        if not step.again:
            break
    return steps


V = "ValueError"
UNLIMITED_EXP: dict[str, Any] = {"max_attempts": None, "backoff": Exponential(1.0)}

STEP_TABLE = [
    pytest.param({}, [None], [(None, False, 0.0)], "succeeded", id="success-first"),
    pytest.param(
        {"max_attempts": 3, "backoff": Constant(1.0)},
        [BOOM, BOOM, BOOM, None],
        [(V, True, 1.0), (V, True, 1.0), (V, False, 0.0)],
        "attempts",
        id="constant-exhausts",
    ),
    pytest.param(
        UNLIMITED_EXP,
        [BOOM, BOOM, BOOM, BOOM, None],
        [(V, True, 1.0), (V, True, 2.0), (V, True, 4.0), (V, True, 8.0), (None, False, 0.0)],
        "succeeded",
        id="exponential-then-success",
    ),
    pytest.param(
        UNLIMITED_EXP,
        [BOOM, BOOM, RetryNow(BOOM), BOOM, BOOM],
        [(V, True, 1.0), (V, True, 2.0), (V, True, 0.0), (V, True, 1.0), (V, True, 2.0)],
        None,
        id="retry-now-resets",
    ),
    pytest.param(
        UNLIMITED_EXP,
        [BOOM, BOOM, BOOM, ResetBackoff(BOOM), BOOM],
        [(V, True, 1.0), (V, True, 2.0), (V, True, 4.0), (V, True, 1.0), (V, True, 2.0)],
        None,
        id="reset-backoff",
    ),
    pytest.param(
        UNLIMITED_EXP,
        [BOOM, StopRetrying(KeyError("k")), BOOM],
        [(V, True, 1.0), ("KeyError", False, 0.0)],
        "stopped",
        id="stop-retrying",
    ),
    pytest.param(
        {"retry_on": KeyError}, [BOOM], [(V, False, 0.0)], "not_retryable", id="retry-on-refuses"
    ),
    pytest.param(
        {"retry_on": (KeyError, ValueError), "backoff": Constant(1.0)},
        [BOOM, KeyError("k"), OSError()],
        [(V, True, 1.0), ("KeyError", True, 1.0), ("OSError", False, 0.0)],
        "not_retryable",
        id="retry-on-tuple",
    ),
    pytest.param(
        {"retry_on": lambda e: "again" in str(e), "backoff": Constant(2.0)},
        [ValueError("again"), ValueError("no")],
        [(V, True, 2.0), (V, False, 0.0)],
        "not_retryable",
        id="retry-on-predicate",
    ),
    pytest.param(
        {"retry_on": KeyError, "backoff": Constant(1.0), "max_attempts": None},
        [RetryNow(BOOM), ResetBackoff(BOOM), RetryDirective(BOOM), BOOM],
        [(V, True, 0.0), (V, True, 1.0), (V, True, 1.0), (V, False, 0.0)],
        "not_retryable",
        id="directives-bypass-retry-on",
    ),
    pytest.param(
        {"retry_on": BaseException},
        [asyncio.CancelledError()],
        [("CancelledError", False, 0.0)],
        "not_retryable",
        id="cancelled-never",
    ),
    pytest.param(
        {},
        [RetryNow(asyncio.CancelledError())],
        [("CancelledError", False, 0.0)],
        "not_retryable",
        id="cancelled-in-directive-never",
    ),
    pytest.param(
        {"retry_on": BaseException},
        [KeyboardInterrupt()],
        [("KeyboardInterrupt", False, 0.0)],
        "not_retryable",
        id="keyboard-interrupt-never",
    ),
    pytest.param(
        {"retry_on": BaseException},
        [SystemExit(1)],
        [("SystemExit", False, 0.0)],
        "not_retryable",
        id="system-exit-never",
    ),
    pytest.param({"max_attempts": 1}, [BOOM], [(V, False, 0.0)], "attempts", id="single-attempt"),
    pytest.param(
        {"max_attempts": 2},
        [RetryNow(BOOM), RetryNow(BOOM)],
        [(V, True, 0.0), (V, False, 0.0)],
        "attempts",
        id="directive-respects-max-attempts",
    ),
]


class TestRunnerStep:
    @pytest.mark.parametrize(("policy", "outcomes", "expected", "outcome"), STEP_TABLE)
    def test_table(
        self,
        policy: dict[str, Any],
        outcomes: list[BaseException | None],
        expected: list[tuple[str | None, bool, float]],
        outcome: str | None,
    ) -> None:
        """Each row: the steps decided and why the Runner stopped."""
        runner = make_runner(**policy)
        assert expected == feed(runner, outcomes)
        assert outcome == runner.outcome

    def test_directive_is_unwrapped(self) -> None:
        """Step.error and the history hold the wrapped error, never the directive."""
        runner = make_runner(backoff=Constant(1.0))
        step = runner.step(RetryNow(BOOM), started=0.0, finished=1.0)
        assert step.error is BOOM
        assert runner.history[0].error is BOOM

    def test_step_unpacks_like_sc_bos(self) -> None:
        """``error, again, delay = runner.step(...)``."""
        error, again, delay = make_runner(backoff=Constant(3.0)).step(BOOM, started=0, finished=0)
        assert (BOOM, True, 3.0) == (error, again, delay)

    @pytest.mark.parametrize(
        ("finished", "again"),
        [(5.0, True), (6.9, True), (7.0, False), (9.0, False)],
    )
    def test_deadline_stops_before_a_useless_wait(self, finished: float, again: bool) -> None:
        """Give up when finished - first_start + delay >= deadline (10 s, delay 3 s)."""
        runner = make_runner(max_attempts=None, deadline=10.0, backoff=Constant(3.0))
        runner.step(BOOM, started=0.0, finished=1.0)
        step = runner.step(BOOM, started=4.0, finished=finished)
        assert again == step.again
        assert (None if again else "deadline") == runner.outcome

    def test_attempts_checked_before_deadline(self) -> None:
        """When both run out at once, the reason is 'attempts'."""
        runner = make_runner(max_attempts=1, deadline=1.0)
        runner.step(BOOM, started=0.0, finished=5.0)
        assert "attempts" == runner.outcome

    def test_history_and_exhausted(self) -> None:
        """Attempts are dated from wall_offset; exhausted() carries history and cause."""
        runner = make_runner(max_attempts=3, backoff=Constant(1.0))
        errors = [ValueError("1"), ValueError("2"), ValueError("3")]
        feed(runner, list(errors), duration=0.5)
        history = runner.history
        assert [1, 2, 3] == [a.number for a in history]
        assert errors == [a.error for a in history]
        assert [0.5, 0.5, 0.5] == [a.duration for a in history]
        start = dt.datetime.fromtimestamp(OFFSET, dt.UTC)
        expected_starts = [start + dt.timedelta(seconds=s) for s in (0.0, 1.5, 3.0)]
        assert expected_starts == [a.started_at for a in history]
        exc = runner.exhausted()
        assert "attempts" == exc.reason
        assert 3.5 == exc.total_duration
        assert errors[-1] is exc.__cause__
        assert history == exc.attempts
        assert exc is not runner.failure()
        assert isinstance(runner.failure(), RetriesExhausted)

    def test_failure_is_the_error_itself_when_not_retryable(self) -> None:
        """failure() returns the original error when retry_on refuses it."""
        runner = make_runner(retry_on=KeyError)
        runner.step(BOOM, started=0, finished=0)
        assert BOOM is runner.failure()

    def test_failure_refused_while_running_or_after_success(self) -> None:
        """failure() only makes sense after a final failed step."""
        runner = make_runner()
        with pytest.raises(StateError):
            runner.failure()
        runner.step(None, started=0, finished=0)
        with pytest.raises(StateError):
            runner.failure()

    def test_step_after_finish_is_refused(self) -> None:
        """A finished Runner cannot be stepped again."""
        runner = make_runner()
        runner.step(None, started=0, finished=0)
        with pytest.raises(StateError, match="succeeded"):
            runner.step(None, started=1, finished=1)

    def test_finished_before_started_is_refused(self) -> None:
        """Timestamps out of order are a caller bug."""
        with pytest.raises(ConfigurationError, match="finished"):
            make_runner().step(BOOM, started=2.0, finished=1.0)

    def test_unknown_directive_is_refused(self) -> None:
        """A directive with an unknown Next value is a ConfigurationError (sc-bos panics)."""

        class Weird(RetryDirective):
            next = 9  # type: ignore[assignment]

        with pytest.raises(ConfigurationError, match="directive"):
            make_runner().step(Weird(BOOM), started=0, finished=0)

    def test_backoff_returning_nan_is_refused(self) -> None:
        """A custom backoff returning NaN is caught, not slept on."""

        class Bad:
            def delay(self, retry: int, rng: random.Random, previous: float = 0.0) -> float:
                return math.nan

        with pytest.raises(ConfigurationError, match="finite"):
            make_runner(backoff=Bad()).step(BOOM, started=0, finished=0)

    def test_previous_delay_reaches_decorrelated_jitter(self) -> None:
        """The Runner threads the previous delay into the backoff."""
        backoff = Exponential(1.0, max=100.0, jitter="decorrelated")
        runner = make_runner(max_attempts=None, backoff=backoff)
        got = [step[2] for step in feed(runner, [BOOM] * 10, duration=0.0)]
        assert got == list(backoff.sequence(10, random.Random(0)))

    def test_state_snapshot(self) -> None:
        """state() reports attempts, retries, index, delays and elapsed time."""
        runner = make_runner(max_attempts=None, backoff=Exponential(1.0))
        assert RetryState() == runner.state()
        feed(runner, [BOOM, BOOM, RetryNow(BOOM), BOOM], duration=0.5)
        assert (
            RetryState(
                attempt=4,
                retries=3,
                backoff_index=1,
                previous_delay=1.0,
                next_delay=1.0,
                first_started=0.0,
                elapsed=5.0,
                error=BOOM,
            )
            == runner.state()
        )
        assert runner.state() == runner.statistics()

    def test_restore_continues_the_sequence(self) -> None:
        """A Runner rebuilt from a snapshot decides exactly like the original."""
        policy = Retry(max_attempts=6, backoff=Exponential(1.0), deadline=100.0)
        original = Runner(policy, rng=random.Random(0), wall_offset=0.0)
        feed(original, [BOOM, BOOM])
        restored = Runner.restore(policy, original.state(), wall_offset=0.0)
        for runner in (original, restored):
            assert Step(BOOM, True, 4.0) == runner.step(BOOM, started=4.0, finished=4.5)
        assert 3 == restored.attempts

    def test_repr_shows_state(self) -> None:
        """The repr names attempts, index, next delay and outcome."""
        runner = make_runner(backoff=Constant(2.0))
        runner.step(BOOM, started=0, finished=0)
        assert "<Runner attempts=1 backoff_index=1 next_delay=2.0 outcome=running>" == repr(runner)

    def test_hooks_are_called_from_step(self) -> None:
        """on_attempt sees every attempt; before_sleep sees the state before each wait."""
        attempts: list[Attempt] = []
        states: list[RetryState] = []
        runner = make_runner(
            backoff=Constant(1.0), on_attempt=attempts.append, before_sleep=states.append
        )
        feed(runner, [BOOM, None])
        assert [BOOM, None] == [a.error for a in attempts]
        assert [(1, 1.0)] == [(s.attempt, s.next_delay) for s in states]


class TestRunnerProperties:
    @given(
        max_attempts=st.none() | st.integers(1, 20),
        outcomes=st.lists(st.sampled_from(["fail", "now", "reset", "ok"]), max_size=60),
        jitter=st.sampled_from(["none", "full", "equal", "proportional", "decorrelated"]),
        duration=st.floats(0.0, 1e6),
        seed=st.integers(0, 2**32),
    )
    def test_delays_are_sane_and_attempts_bounded(
        self,
        max_attempts: int | None,
        outcomes: list[str],
        jitter: Any,
        duration: float,
        seed: int,
    ) -> None:
        """Never a negative/NaN/inf delay; never more than max_attempts attempts."""
        policy = Retry(max_attempts=max_attempts, backoff=Exponential(0.5, max=30, jitter=jitter))
        runner = Runner(policy, rng=random.Random(seed), wall_offset=0.0)
        kinds: dict[str, BaseException | None] = {
            "fail": BOOM,
            "now": RetryNow(BOOM),
            "reset": ResetBackoff(BOOM),
            "ok": None,
        }
        now = 0.0
        for kind in outcomes:
            step = runner.step(kinds[kind], started=now, finished=now + duration)
            assert math.isfinite(step.delay)
            assert 0.0 <= step.delay <= 30.0
            if max_attempts is not None:
                assert runner.attempts <= max_attempts
                assert not (step.again and runner.attempts == max_attempts)
            if not step.again:
                break
            now += duration + step.delay


class TestPolicy:
    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": -1}, "max_attempts"),
            ({"max_attempts": 1.5}, "max_attempts"),
            ({"max_attempts": True}, "max_attempts"),
            ({"max_attempts": "3"}, "max_attempts"),
            ({"timeout": 0}, "timeout"),
            ({"timeout": -1.0}, "timeout"),
            ({"timeout": math.nan}, "timeout"),
            ({"timeout": math.inf}, "timeout"),
            ({"deadline": 0.0}, "deadline"),
            ({"deadline": math.nan}, "deadline"),
            ({"deadline": "5"}, "deadline"),
            ({"retry_on": "ValueError"}, "retry_on"),
            ({"retry_on": int}, "retry_on"),
            ({"retry_on": (ValueError, "x")}, "retry_on"),
            ({"backoff": 1.0}, "backoff"),
            ({"on_attempt": 3}, "on_attempt"),
            ({"before_sleep": "x"}, "before_sleep"),
            ({"rng": 42}, "rng"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, Any], name: str) -> None:
        """Bad fields raise ConfigurationError naming the field, at construction."""
        with pytest.raises(ConfigurationError, match=name):
            Retry(**kwargs)

    def test_defaults(self) -> None:
        """3 attempts, full-jitter exponential 0.1..10 s, Exception, no limits."""
        policy = Retry()
        assert 3 == policy.max_attempts
        assert Exponential(0.1, max=10.0, jitter="full") == policy.backoff
        assert policy.timeout is None
        assert policy.deadline is None
        assert Exception is policy.retry_on
        assert policy == Retry.DEFAULT

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            (Retry.never(), 1),
            (Retry.from_sc_bos(10), 10),
            (Retry.from_sc_bos(1), 1),
            (Retry.from_sc_bos(0), 1),
            (Retry.from_sc_bos(-3), 1),
            (Retry.from_sc_bos(None), None),
            (Retry.from_marionette(0), 1),
            (Retry.from_marionette(3), 4),
            (Retry.from_marionette(-2), 1),
            (Retry.from_hive(0), 1),
            (Retry.from_hive(3), 4),
            (Retry.from_hive(-1), None),
        ],
    )
    def test_seed_spelling_adapters(self, policy: Retry, expected: int | None) -> None:
        """sc-bos counts total attempts; marionette and hive count extra ones."""
        assert expected == policy.max_attempts

    def test_adapters_pass_other_fields(self) -> None:
        """The adapters accept any other Retry field."""
        policy = Retry.from_hive(2, backoff=Constant(1.0), timeout=5.0)
        assert Constant(1.0) == policy.backoff
        assert 5.0 == policy.timeout

    def test_is_retryable(self) -> None:
        """retry_on decides, but cancellation and interpreter exits never retry."""
        policy = Retry(retry_on=BaseException)
        assert policy.is_retryable(BOOM)
        assert policy.is_retryable(GeneratorExit())
        assert not policy.is_retryable(asyncio.CancelledError())
        assert not policy.is_retryable(KeyboardInterrupt())
        assert not Retry(retry_on=KeyError).is_retryable(BOOM)


class Calls:
    """A flaky async/sync function that records virtual start times."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error
        self.times: list[float] = []

    async def __call__(self, value: int = 7) -> int:
        return self.sync(value)

    def sync(self, value: int = 7) -> int:
        self.times.append(_clock.monotonic())
        if len(self.times) <= self.failures:
            raise self.error or ValueError(f"failure {len(self.times)}")
        return value


class TestAsyncDriver:
    async def test_success_first_try(self) -> None:
        """One call, its value returned."""
        calls = Calls(0)
        assert 5 == await run(calls, 5)
        assert [0.0] == calls.times

    async def test_success_path_builds_no_runner(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The fast path never constructs a Runner (it is built only after a failure)."""

        def no_runner(*args: Any, **kwargs: Any) -> Runner:
            raise AssertionError("Runner built")

        monkeypatch.setattr("taskmill._retry.Runner", no_runner)
        assert 7 == await run(Calls(0))
        with pytest.raises(AssertionError, match="Runner built"):
            await run(Calls(1))

    async def test_backoff_is_waited_at_exact_times(self) -> None:
        """3 failures then success: 4 calls at 0, 1, 3, 7 (exponential 1 s)."""
        calls = Calls(3)
        policy = Retry(max_attempts=5, backoff=Exponential(1.0))
        assert 9 == await policy.run(calls, 9)
        assert [0.0, 1.0, 3.0, 7.0] == calls.times

    async def test_exhaustion_raises_retries_exhausted(self) -> None:
        """All attempts fail: RetriesExhausted with history, cause = last error."""
        calls = Calls(10)
        with pytest.raises(RetriesExhausted) as info:
            await run(Retry(max_attempts=3, backoff=Constant(2.0)), calls)
        exc = info.value
        assert [0.0, 2.0, 4.0] == calls.times
        assert "failure 3" == str(exc.__cause__)
        assert ["failure 1", "failure 2", "failure 3"] == [str(e) for e in exc.errors]
        assert "attempts" == exc.reason
        assert 4.0 == exc.total_duration
        assert 4.0 == asyncio.get_running_loop().time()

    async def test_not_retryable_error_is_reraised_unchanged(self) -> None:
        """An error retry_on refuses comes out as the very same object, after one call."""
        error = KeyError("nope")
        calls = Calls(5, error)
        with pytest.raises(KeyError) as info:
            await run(Retry(retry_on=ValueError), calls)
        assert error is info.value
        assert 1 == len(calls.times)

    async def test_stop_retrying_raises_the_wrapped_error(self) -> None:
        """StopRetrying(err) ends at once with err itself."""
        error = OSError("fatal")
        calls = Calls(5, StopRetrying(error))
        with pytest.raises(OSError, match="fatal") as info:
            await run(Retry(max_attempts=5), calls)
        assert error is info.value
        assert 1 == len(calls.times)

    async def test_retry_now_and_reset_backoff_timing(self) -> None:
        """RetryNow retries at once; ResetBackoff waits the initial delay again."""
        loop = asyncio.get_running_loop()
        times: list[float] = []
        errors: list[BaseException] = [BOOM, BOOM, RetryNow(BOOM), BOOM, ResetBackoff(BOOM)]

        async def fn() -> str:
            times.append(loop.time())
            if errors:
                raise errors.pop(0)
            return "done"

        assert "done" == await run(Retry(max_attempts=None, backoff=Exponential(1.0)), fn)
        assert [0.0, 1.0, 3.0, 3.0, 4.0, 5.0] == times

    async def test_attempt_timeout_raises_task_timeout(self) -> None:
        """A hanging attempt fails with TaskTimeout(timeout, attempt) from TimeoutError."""
        loop = asyncio.get_running_loop()

        async def hang() -> None:
            await asyncio.sleep(3600)

        policy = Retry(max_attempts=2, timeout=1.5, backoff=Constant(1.0))
        with pytest.raises(RetriesExhausted) as info:
            await policy.run(hang)
        assert 4.0 == loop.time()
        timeouts = info.value.errors
        assert [(1.5, 1), (1.5, 2)] == [(e.timeout, e.attempt) for e in timeouts]  # type: ignore[attr-defined]
        assert all(isinstance(e, TaskTimeout) for e in timeouts)
        assert isinstance(timeouts[0].__cause__, TimeoutError)
        assert [1.5, 1.5] == [a.duration for a in info.value.attempts]

    async def test_fresh_timeout_each_attempt(self) -> None:
        """Each attempt gets the whole timeout: a 1 s task under a 1.5 s timeout succeeds."""
        loop = asyncio.get_running_loop()
        attempts = 0

        async def slow_then_fail() -> str:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(1.0)
            if attempts < 3:
                raise BOOM
            return "ok"

        policy = Retry(max_attempts=3, timeout=1.5, backoff=Constant(0.0))
        assert "ok" == await policy.run(slow_then_fail)
        assert 3.0 == loop.time()

    async def test_own_timeout_error_passes_unchanged(self) -> None:
        """The function's own TimeoutError is not turned into TaskTimeout."""
        error = TimeoutError("mine")

        async def fn() -> None:
            await asyncio.sleep(0.1)
            raise error

        policy = Retry(timeout=5.0, retry_on=lambda e: not isinstance(e, TimeoutError))
        with pytest.raises(TimeoutError) as info:
            await policy.run(fn)
        assert error is info.value

    async def test_deadline_stops_without_a_useless_wait(self) -> None:
        """Deadline 10 s, 3 s waits: attempts at 0, 3, 6, 9; gives up at 9 (no sleep to 12)."""
        calls = Calls(100)
        policy = Retry(max_attempts=None, deadline=10.0, backoff=Constant(3.0))
        with pytest.raises(RetriesExhausted) as info:
            await policy.run(calls)
        assert [0.0, 3.0, 6.0, 9.0] == calls.times
        assert "deadline" == info.value.reason
        assert 9.0 == asyncio.get_running_loop().time()
        assert "deadline reached" in str(info.value)

    async def test_deadline_cuts_the_attempt_timeout(self) -> None:
        """With timeout 2 s and deadline 6 s, the third attempt only gets the 1 s left."""
        loop = asyncio.get_running_loop()

        async def hang() -> None:
            await asyncio.sleep(3600)

        policy = Retry(max_attempts=None, timeout=2.0, deadline=6.0, backoff=Constant(0.5))
        with pytest.raises(RetriesExhausted) as info:
            await policy.run(hang)
        assert 6.0 == loop.time()
        assert [2.0, 2.0, 1.0] == [a.duration for a in info.value.attempts]
        assert "deadline" == info.value.reason
        last = info.value.last_error
        assert isinstance(last, TaskTimeout)
        assert (1.0, 3) == (last.timeout, last.attempt)

    async def test_deadline_alone_bounds_a_hanging_attempt(self) -> None:
        """Without a per-attempt timeout, the deadline still ends a hanging attempt."""

        async def hang() -> None:
            await asyncio.sleep(3600)

        with pytest.raises(RetriesExhausted) as info:
            await Retry(deadline=5.0).run(hang)
        assert 5.0 == asyncio.get_running_loop().time()
        assert isinstance(info.value.__cause__, TaskTimeout)

    async def test_cancel_during_backoff_wait(self) -> None:
        """Cancelling during the wait raises CancelledError; no further attempt."""
        calls = Calls(100)
        task = asyncio.create_task(Retry(max_attempts=5, backoff=Constant(10.0)).run(calls))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(100)
        assert [0.0] == calls.times

    async def test_cancel_during_attempt_propagates(self) -> None:
        """Cancellation inside an attempt propagates at once, even with retry_on=BaseException."""
        started = 0

        async def hang() -> None:
            nonlocal started
            started += 1
            await asyncio.sleep(3600)

        policy = Retry(retry_on=BaseException, max_attempts=5, timeout=100.0)
        task = asyncio.create_task(policy.run(hang))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1 == started

    @pytest.mark.parametrize("attempt_timeout", [None, 100.0])
    async def test_swallowed_cancel_starts_no_new_attempt(
        self, attempt_timeout: float | None
    ) -> None:
        """A function that swallows the cancel and fails gets no retry: CancelledError."""
        started = 0

        async def stubborn() -> None:
            nonlocal started
            started += 1
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise BOOM from None

        task = asyncio.create_task(Retry(max_attempts=5, timeout=attempt_timeout).run(stubborn))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1 == started

    async def test_system_exit_propagates_at_once(self) -> None:
        """SystemExit is never retried or wrapped."""
        calls = Calls(5, SystemExit(3))
        with pytest.raises(SystemExit):
            await run(Retry(retry_on=BaseException), calls)
        assert 1 == len(calls.times)

    @pytest.mark.timeout(10)
    async def test_zero_delay_still_yields_to_the_loop(self) -> None:
        """Unlimited retries with no delay do not starve other tasks."""
        ready = False

        def flip() -> None:
            nonlocal ready
            ready = True

        async def poll() -> str:
            if not ready:
                raise BOOM
            return "ready"

        asyncio.get_running_loop().call_soon(flip)
        assert "ready" == await Retry(max_attempts=None, backoff=Constant(0.0)).run(poll)

    async def test_hooks_see_attempts_and_waits(self) -> None:
        """on_attempt gets each Attempt (dated on virtual time); before_sleep each wait."""
        attempts: list[Attempt] = []
        states: list[RetryState] = []

        async def fn() -> int:
            await asyncio.sleep(0.25)
            if len(attempts) < 2:
                raise BOOM
            return 1

        policy = Retry(
            backoff=Exponential(1.0),
            on_attempt=attempts.append,
            before_sleep=states.append,
        )
        assert 1 == await policy.run(fn)
        assert [1, 2, 3] == [a.number for a in attempts]
        assert [BOOM, BOOM, None] == [a.error for a in attempts]
        assert [0.25] * 3 == [a.duration for a in attempts]
        gaps = [
            (b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)
        ]
        assert [1.25, 2.25] == gaps
        assert all(a.started_at.tzinfo is dt.UTC for a in attempts)
        assert [(1, 1.0, 0.25), (2, 2.0, 1.5)] == [
            (s.attempt, s.next_delay, s.elapsed) for s in states
        ]

    async def test_before_sleep_works_on_the_fast_path(self) -> None:
        """before_sleep alone keeps the fast path and is still called on retries."""
        states: list[RetryState] = []
        await Retry(backoff=Constant(1.0), before_sleep=states.append).run(Calls(1))
        assert [1] == [s.attempt for s in states]

    async def test_injected_rng_makes_jitter_reproducible(self) -> None:
        """Two policies with equally seeded RNGs wait exactly the same."""
        timelines = []
        for _ in range(2):
            calls = Calls(4)
            backoff = Exponential(1.0, jitter="full")
            await Retry(max_attempts=5, backoff=backoff, rng=random.Random(99)).run(calls)
            timelines.append([t - calls.times[0] for t in calls.times])
        assert timelines[0] == pytest.approx(timelines[1], abs=1e-12)
        assert len(set(timelines[0])) == 5

    async def test_default_policy_makes_three_attempts(self) -> None:
        """run(fn) uses Retry.DEFAULT: three attempts."""
        calls = Calls(10)
        with pytest.raises(RetriesExhausted):
            await run(calls)
        assert 3 == len(calls.times)

    async def test_sync_function_is_a_configuration_error(self) -> None:
        """Passing a sync function to run() is refused clearly (after its one call)."""
        calls = Calls(0)
        with pytest.raises(ConfigurationError, match="not an awaitable"):
            await run(Retry(max_attempts=5), calls.sync)  # type: ignore[call-overload]
        assert 1 == len(calls.times)

    @pytest.mark.parametrize("policy", [Retry(max_attempts=5), Retry(max_attempts=5, timeout=1)])
    async def test_bad_arguments_are_not_retried(self, policy: Retry) -> None:
        """A TypeError from calling fn (before any awaitable exists) is raised at once."""
        calls = Calls(0)
        fn: Any = calls
        with pytest.raises(TypeError):
            await run(policy, fn, 1, 2, 3)
        assert [] == calls.times

    async def test_run_without_a_callable(self) -> None:
        """run() needs a callable."""
        args: Any = (Retry(),)
        with pytest.raises(TypeError, match="callable"):
            await run(*args)
        with pytest.raises(TypeError, match="callable"):
            await run()  # type: ignore[call-overload]


class TestDecorator:
    async def test_async_keeps_metadata_and_signature(self) -> None:
        """functools.wraps and ParamSpec: name, doc, signature, still a coroutine function."""

        @retry(max_attempts=2)
        async def fetch(url: str, *, tries: int = 1) -> str:
            """Fetch it."""
            return url * tries

        assert "fetch" == fetch.__name__
        assert "Fetch it." == fetch.__doc__
        assert "(url: 'str', *, tries: 'int' = 1) -> 'str'" == str(inspect.signature(fetch))
        assert inspect.iscoroutinefunction(fetch)
        assert "abab" == await fetch("ab", tries=2)

    async def test_bare_decorator_uses_the_default(self) -> None:
        """@retry without arguments: three attempts."""
        calls = Calls(10)
        wrapped = retry(calls)
        with pytest.raises(RetriesExhausted):
            await wrapped()
        assert 3 == len(calls.times)

    async def test_policy_with_overrides(self) -> None:
        """@retry(policy, max_attempts=...) overrides fields of policy."""
        calls = Calls(10)
        base = Retry(max_attempts=2, backoff=Constant(1.0))
        with pytest.raises(RetriesExhausted):
            await retry(base, max_attempts=4)(calls)()
        assert [0.0, 1.0, 2.0, 3.0] == calls.times

    async def test_async_callable_object(self) -> None:
        """An object with an async __call__ is driven asynchronously."""
        wrapped = retry(Retry(backoff=Constant(1.0)))(Calls(1))
        assert inspect.iscoroutinefunction(wrapped)
        assert 3 == await wrapped(3)

    async def test_methods(self) -> None:
        """Decorated methods bind self as usual."""

        class Client:
            def __init__(self) -> None:
                self.calls = 0

            @retry(backoff=Constant(1.0))
            async def get(self, key: str) -> str:
                self.calls += 1
                if self.calls < 2:
                    raise BOOM
                return key.upper()

        client = Client()
        assert "K" == await client.get("k")
        assert 2 == client.calls

    def test_invalid_options_fail_at_decoration(self) -> None:
        """Bad policy fields raise when decorating, not when calling."""
        with pytest.raises(ConfigurationError, match="max_attempts"):
            retry(max_attempts=0)

    def test_non_callable_is_refused(self) -> None:
        """retry() takes a function or a Retry."""
        with pytest.raises(ConfigurationError, match="function or a Retry"):
            retry("nope")  # type: ignore[call-overload]

    def test_generators_are_refused(self) -> None:
        """Generator and async generator functions cannot be retried call-by-call."""

        def gen() -> Iterator[int]:
            yield 1

        async def agen() -> AsyncIterator[int]:
            yield 1

        for fn in (gen, agen):
            with pytest.raises(ConfigurationError, match="generator"):
                retry(fn)

    def test_sync_with_timeout_is_refused(self) -> None:
        """A sync function cannot be preempted: timeout is a decoration-time error."""

        def work() -> int:
            return 1

        with pytest.raises(ConfigurationError, match="timeout"):
            retry(timeout=1.0)(work)
        with pytest.raises(ConfigurationError, match="timeout"):
            Retry(timeout=1.0).run_sync(work)


class FakeClock:
    """Stands in for the real monotonic clock and the blocking sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(_clock, "real_monotonic", clock.monotonic)
    monkeypatch.setattr(_clock, "sleep_sync", clock.sleep)
    return clock


class TestSyncDriver:
    def test_retries_then_succeeds(self) -> None:
        """Two failures then success: three calls, the value returned."""
        calls = Calls(2)
        wrapped = retry(backoff=Constant(0.0))(calls.sync)
        assert 4 == wrapped(4)
        assert 3 == len(calls.times)

    def test_keeps_metadata(self) -> None:
        """The sync wrapper is a plain function with the original's metadata."""

        def compute(x: int) -> int:
            """Compute."""
            return x

        wrapped = retry(compute)
        assert not inspect.iscoroutinefunction(wrapped)
        assert "Compute." == wrapped.__doc__
        assert compute is wrapped.__wrapped__  # type: ignore[attr-defined]

    def test_waits_the_backoff(self, fake_clock: FakeClock) -> None:
        """Blocking waits follow the backoff exactly."""
        calls = Calls(3)
        assert 1 == Retry(max_attempts=4, backoff=Exponential(1.0)).run_sync(calls.sync, 1)
        assert [1.0, 2.0, 4.0] == fake_clock.sleeps

    def test_exhaustion_and_history(self, fake_clock: FakeClock) -> None:
        """RetriesExhausted with history dated on the real wall clock."""
        calls = Calls(10)
        with pytest.raises(RetriesExhausted) as info:
            Retry(max_attempts=2, backoff=Constant(5.0)).run_sync(calls.sync)
        exc = info.value
        assert 2 == len(exc.attempts)
        assert 5.0 == exc.total_duration
        gap = exc.attempts[1].started_at - exc.attempts[0].started_at
        assert dt.timedelta(seconds=5) == gap

    def test_deadline_between_attempts(self, fake_clock: FakeClock) -> None:
        """Each call takes 1 s, waits 3 s, deadline 10 s: three calls, two waits."""

        def slow_fail() -> None:
            fake_clock.now += 1.0
            raise BOOM

        with pytest.raises(RetriesExhausted) as info:
            Retry(max_attempts=None, deadline=10.0, backoff=Constant(3.0)).run_sync(slow_fail)
        assert [3.0, 3.0] == fake_clock.sleeps
        assert "deadline" == info.value.reason
        assert 9.0 == info.value.total_duration

    def test_not_retryable_and_stop_retrying(self) -> None:
        """Refused errors and StopRetrying come out unchanged after one call."""
        error = KeyError("k")
        calls = Calls(5, error)
        with pytest.raises(KeyError) as info:
            Retry(retry_on=ValueError).run_sync(calls.sync)
        assert error is info.value
        stop = Calls(5, StopRetrying(error))
        with pytest.raises(KeyError):
            Retry().run_sync(stop.sync)
        assert 1 == len(stop.times)

    def test_keyboard_interrupt_propagates_at_once(self) -> None:
        """KeyboardInterrupt is never retried, whatever retry_on says."""
        calls = Calls(5, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            retry(retry_on=BaseException)(calls.sync)()
        assert 1 == len(calls.times)

    def test_on_attempt_on_success(self) -> None:
        """on_attempt also fires for a first-try success (no fast path then)."""
        seen: list[Attempt] = []
        assert 7 == Retry(on_attempt=seen.append).run_sync(Calls(0).sync)
        assert [(1, None)] == [(a.number, a.error) for a in seen]


class TestRecords:
    def test_attempt_as_dict(self) -> None:
        """Attempt.as_dict is JSON-friendly: ISO time, error type name and message."""
        when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        assert {
            "number": 2,
            "started_at": "2026-01-02T03:04:05+00:00",
            "duration": 1.5,
            "error_type": "ValueError",
            "message": "boom",
        } == Attempt(2, when, 1.5, BOOM).as_dict()
        ok = Attempt(1, when, 0.0).as_dict()
        assert (None, None) == (ok["error_type"], ok["message"])
        assert Attempt(1, when, 0.0).succeeded

    def test_exports_are_public(self) -> None:
        """The retry API is exported from taskmill with its public module."""
        for obj in (Retry, Runner, Step, Attempt, RetryState, retry, run, Exponential, Constant):
            assert "taskmill" == obj.__module__
            assert obj is getattr(taskmill, obj.__name__)

    def test_next_enum_drives_directives(self) -> None:
        """Directive classes carry the sc-bos Next values the Runner obeys."""
        assert Next.RETRY_NOW == RetryNow(BOOM).next
        assert Next.RESET_BACKOFF == ResetBackoff(BOOM).next
        assert Next.STOP_NOW == StopRetrying(BOOM).next

    def test_partial_of_a_coroutine_function(self) -> None:
        """functools.partial of an async function is recognised as async."""

        async def add(a: int, b: int) -> int:
            return a + b

        assert inspect.iscoroutinefunction(retry(functools.partial(add, 1)))


class TestCancellingEdges:
    async def test_swallowed_cancel_then_final_failure_is_cancelled(self) -> None:
        """Even when no retry would follow, a cancelled task ends with CancelledError."""

        async def stubborn() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise KeyError("refused") from None

        task = asyncio.create_task(Retry(retry_on=ValueError).run(stubborn))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_outer_timeout_wins_over_a_swallowed_cancel(self) -> None:
        """An enclosing asyncio.timeout still fires if the function swallows its cancel."""
        loop = asyncio.get_running_loop()
        started = 0

        async def stubborn() -> None:
            nonlocal started
            started += 1
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise ValueError("swallowed") from None

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.0):
                await Retry(max_attempts=None, backoff=Constant(1.0)).run(stubborn)
        assert 5.0 == loop.time()
        assert 1 == started

    async def test_sync_function_returning_none_is_a_configuration_error(self) -> None:
        """A sync function given to run() is refused even when it returns None."""

        def nothing() -> None:
            return None

        fn: Any = nothing
        with pytest.raises(ConfigurationError, match="NoneType"):
            await run(Retry(max_attempts=3), fn)
