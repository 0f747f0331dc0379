"""The sans-IO retry state machine and the records it keeps.

:class:`Runner` takes the outcome of one attempt (and the monotonic times it started
and finished) and answers with a :class:`Step`: whether to try again and after how
long. It never sleeps and does no I/O, so it is table-testable and
every driver in taskmill (``run``/``@retry``, task groups, supervised workers,
one-shot jobs, the TaskManager) shares it. Its state is plain numbers
(:class:`RetryState`), so a durable backend can persist and restore it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from . import _clock
from ._errors import ConfigurationError, Next, RetriesExhausted, RetryDirective, StateError

if TYPE_CHECKING:
    from ._retry import Retry

__all__ = ["NEVER_RETRY", "Attempt", "RetryState", "Runner", "Step"]

NEVER_RETRY: Final = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)
"""Never retried, whatever the policy or directive says: they end the loop at once."""

_RNG: Final = random.Random()
_UTC: Final = _dt.UTC
_GAVE_UP: Final = frozenset({"attempts", "deadline"})


@final
@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a retried call.

    Attributes:
        number: 1-based attempt number.
        started_at: When it started (aware UTC; follows virtual time in tests).
        duration: How long it ran, in seconds.
        error: Its error (directives unwrapped), ``None`` if it succeeded.
    """

    number: int
    started_at: _dt.datetime
    duration: float
    error: BaseException | None = None

    @property
    def succeeded(self) -> bool:
        """Whether this attempt returned without error."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (the error as its type name and message)."""
        error = self.error
        return {
            "number": self.number,
            "started_at": self.started_at.isoformat(),
            "duration": self.duration,
            "error_type": None if error is None else type(error).__qualname__,
            "message": None if error is None else str(error),
        }


@final
@dataclass(frozen=True, slots=True)
class Step:
    """What :meth:`Runner.step` decided after one attempt.

    Unpacks like sc-bos' ``Step`` results: ``error, again, delay = runner.step(...)``.

    Attributes:
        error: The attempt's error (directive unwrapped), ``None`` on success.
        again: Whether to make another attempt.
        delay: Seconds to wait before it (``0.0`` when ``again`` is false).
    """

    error: BaseException | None
    again: bool
    delay: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.error, self.again, self.delay))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RetryState:
    """A snapshot of a :class:`Runner` (also handed to ``before_sleep``).

    All fields but ``error`` are plain numbers, so a durable backend can persist
    them and rebuild the Runner with :meth:`Runner.restore`.

    Attributes:
        attempt: Attempts made so far.
        retries: Retries made so far (``attempt - 1``, or 0).
        backoff_index: The retry number last passed to the backoff (directives
            reset it, so it can be smaller than ``retries``).
        previous_delay: The last delay decided (``0.0`` before any).
        next_delay: The delay before the next attempt (``0.0`` when none is due).
        first_started: Monotonic time the first attempt started (``None`` before).
        elapsed: Seconds from the first attempt's start to the last one's end.
        error: The last attempt's error, if any (not meant to be persisted).
    """

    attempt: int = 0
    retries: int = 0
    backoff_index: int = 0
    previous_delay: float = 0.0
    next_delay: float = 0.0
    first_started: float | None = None
    elapsed: float = 0.0
    error: BaseException | None = None


@final
class Runner:
    """The retry state machine: one instance per retried call (not thread-safe).

    Feed it each attempt's outcome with :meth:`step`; it answers whether and when
    to try again. The caller passes monotonic timestamps; the Runner never sleeps
    and reads the clock at most once (to date attempts, only when ``wall_offset``
    is not given). The only calls out are the policy's ``on_attempt`` and
    ``before_sleep`` hooks; their exceptions propagate.

    Decision order for a failed attempt: a ``StopRetrying`` directive stops;
    cancellation, ``KeyboardInterrupt``, ``SystemExit`` and (unless a directive
    was raised) errors ``retry_on`` refuses stop as not retryable; then
    ``max_attempts``; then the delay (``NORMAL``: ``backoff.delay(index + 1)``;
    ``RETRY_NOW``: 0 and the index resets to 0; ``RESET_BACKOFF``:
    ``backoff.delay(1)``); then the deadline: if ``finished - first_started +
    delay >= deadline`` it gives up now rather than sleep uselessly.

    Args:
        policy: The retry policy.
        rng: Random source for jitter (default: ``policy.rng``, else a shared one).
        wall_offset: POSIX wall seconds minus monotonic seconds, to date attempts.
            Default: read once from :mod:`taskmill._clock` at the first step.
    """

    __slots__ = (
        "_attempts",
        "_first",
        "_history",
        "_index",
        "_last",
        "_last_error",
        "_next_delay",
        "_offset",
        "_policy",
        "_previous",
        "_reason",
        "_rng",
    )

    def __init__(
        self, policy: Retry, *, rng: random.Random | None = None, wall_offset: float | None = None
    ) -> None:
        self._policy = policy
        self._rng = rng if rng is not None else policy.rng if policy.rng is not None else _RNG
        self._offset = wall_offset
        self._attempts = 0
        self._index = 0
        self._previous = 0.0
        self._next_delay = 0.0
        self._first: float | None = None
        self._last = 0.0
        self._history: list[Attempt] = []
        self._last_error: BaseException | None = None
        self._reason: str | None = None

    @classmethod
    def restore(
        cls,
        policy: Retry,
        state: RetryState,
        *,
        rng: random.Random | None = None,
        wall_offset: float | None = None,
    ) -> Runner:
        """Rebuild a Runner from a persisted :class:`RetryState` (history starts empty).

        Args:
            policy: The retry policy.
            state: A snapshot from :meth:`state`.
            rng: Random source for jitter.
            wall_offset: See the class.

        Returns:
            A Runner that continues where the snapshot left off.
        """
        runner = cls(policy, rng=rng, wall_offset=wall_offset)
        runner._attempts = state.attempt
        runner._index = state.backoff_index
        runner._previous = state.previous_delay
        runner._next_delay = state.next_delay
        runner._first = state.first_started
        if state.first_started is not None:
            runner._last = state.first_started + state.elapsed
        runner._last_error = state.error
        return runner

    def __repr__(self) -> str:
        return (
            f"<Runner attempts={self._attempts} backoff_index={self._index} "
            f"next_delay={self._next_delay!r} outcome={self._reason or 'running'}>"
        )

    @property
    def policy(self) -> Retry:
        """The policy this Runner follows."""
        return self._policy

    @property
    def first_started(self) -> float | None:
        """Monotonic time the first attempt started (``None`` before any)."""
        return self._first

    @property
    def attempts(self) -> int:
        """Attempts made so far."""
        return self._attempts

    @property
    def history(self) -> tuple[Attempt, ...]:
        """Every attempt recorded by :meth:`step`, in order."""
        return tuple(self._history)

    @property
    def outcome(self) -> str | None:
        """``None`` while retrying, then why it stopped.

        One of ``"succeeded"``, ``"not_retryable"`` (``retry_on`` refused the error,
        or it was a cancellation), ``"stopped"`` (``StopRetrying``), ``"attempts"``
        (``max_attempts`` reached) or ``"deadline"``.
        """
        return self._reason

    def step(self, error: BaseException | None, *, started: float, finished: float) -> Step:
        """Record one attempt and decide what comes next.

        Args:
            error: The attempt's exception (a :class:`~taskmill.RetryDirective` is
                unwrapped and obeyed), or ``None`` if it succeeded.
            started: Monotonic seconds when the attempt started.
            finished: Monotonic seconds when it ended (``>= started``).

        Returns:
            The decision. When ``again`` is false and ``error`` is set, raise
            :meth:`failure`.

        Raises:
            StateError: The Runner already finished.
            ConfigurationError: ``finished < started``.
        """
        if self._reason is not None:
            raise StateError(f"this Runner already finished ({self._reason})")
        if not finished >= started:
            raise ConfigurationError(f"finished ({finished!r}) must be >= started ({started!r})")
        directive: Next | None = None
        if isinstance(error, RetryDirective):
            directive, error = error.next, error.error
        self._record(error, started, finished)
        decision = self._decide(error, directive, finished)
        if decision.again and self._policy.before_sleep is not None:
            self._policy.before_sleep(self.state())
        return decision

    def _record(self, error: BaseException | None, started: float, finished: float) -> None:
        if self._first is None:
            self._first = started
        if self._offset is None:
            self._offset = _clock.wall_time() - _clock.monotonic()
        self._attempts += 1
        self._last = finished
        self._last_error = error
        when = _dt.datetime.fromtimestamp(started + self._offset, _UTC)
        attempt = Attempt(self._attempts, when, finished - started, error)
        self._history.append(attempt)
        if self._policy.on_attempt is not None:
            self._policy.on_attempt(attempt)

    def _decide(self, error: BaseException | None, directive: Next | None, now: float) -> Step:
        policy = self._policy
        if error is None:
            return self._finish("succeeded", None)
        if directive == Next.STOP_NOW:
            return self._finish("stopped", error)
        if isinstance(error, NEVER_RETRY) or (directive is None and not policy.is_retryable(error)):
            return self._finish("not_retryable", error)
        if policy.max_attempts is not None and self._attempts >= policy.max_attempts:
            return self._finish("attempts", error)
        index = self._next_index(directive)
        delay = 0.0 if index == 0 else self._backoff(index)
        assert self._first is not None
        if policy.deadline is not None and now - self._first + delay >= policy.deadline:
            return self._finish("deadline", error)
        self._index, self._previous, self._next_delay = index, delay, delay
        return Step(error, True, delay)

    def _next_index(self, directive: Next | None) -> int:
        if directive is None or directive == Next.NORMAL:
            return self._index + 1
        if directive == Next.RETRY_NOW:
            return 0
        if directive == Next.RESET_BACKOFF:
            return 1
        raise ConfigurationError(f"unknown retry directive {directive!r}")

    def _backoff(self, index: int) -> float:
        delay = float(self._policy.backoff.delay(index, self._rng, self._previous))
        if not 0.0 <= delay < float("inf"):
            raise ConfigurationError(
                f"{self._policy.backoff!r} returned {delay!r} for retry {index}; "
                "a backoff must return a finite delay >= 0"
            )
        return delay

    def _finish(self, reason: str, error: BaseException | None) -> Step:
        self._reason = reason
        self._next_delay = 0.0
        return Step(error, False, 0.0)

    def state(self) -> RetryState:
        """Return a snapshot of the retry state (see :class:`RetryState`)."""
        first = self._first
        return RetryState(
            attempt=self._attempts,
            retries=max(0, self._attempts - 1),
            backoff_index=self._index,
            previous_delay=self._previous,
            next_delay=self._next_delay,
            first_started=first,
            elapsed=0.0 if first is None else self._last - first,
            error=self._last_error,
        )

    def statistics(self) -> RetryState:
        """Return the same snapshot as :meth:`state` (the taskmill-wide name)."""
        return self.state()

    def exhausted(self) -> RetriesExhausted:
        """Return the error for giving up: history, reason, ``__cause__`` = last error."""
        reason = self._reason if self._reason in _GAVE_UP else "attempts"
        total = 0.0 if self._first is None else self._last - self._first
        return RetriesExhausted(self._history, reason=reason, total_duration=total)

    def failure(self) -> BaseException:
        """Return what a driver raises after the final, failed :meth:`step`.

        :meth:`exhausted` when attempts or the deadline ran out; otherwise the
        attempt's own error (unwrapped from ``StopRetrying``).

        Raises:
            StateError: The Runner has not finished, or it succeeded.
        """
        if self._reason in _GAVE_UP:
            return self.exhausted()
        if self._reason is None or self._last_error is None:
            raise StateError(f"no failure to raise (outcome: {self._reason or 'running'})")
        return self._last_error
