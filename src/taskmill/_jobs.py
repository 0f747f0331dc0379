"""Jobs (cilium hive ``job``): one-shot, timer and observer, and the triggers for timers.

A :class:`Job` is created by :func:`one_shot`, :func:`timer` or :func:`observer`
and run once, usually by a :class:`~taskmill.JobGroup`. While it runs it reports
to a :class:`~taskmill.Health` node (reachable from the job's code through
:func:`current_health`) and to a :class:`~taskmill.Metrics` sink, and logs through
``logging.getLogger("taskmill._jobs")`` with ``extra={"job": name, "job_kind": kind}``.

Job functions are ``async def fn() -> object`` (observers: ``async def fn(item)``);
wrap arguments in a lambda or :func:`functools.partial`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeVar, final

from ._errors import AlreadyStarted, ConfigurationError, NotRunning, StateError, TaskTimeout
from ._health import Health, HealthError
from ._metrics import Metrics, NoopMetrics
from ._names import sanitize_name
from ._retry import Retry
from ._runner import Runner
from ._ticker import Ticker
from ._trigger import TimerSignal

__all__ = [
    "Job",
    "JobKind",
    "JobState",
    "JobStatistics",
    "RunContext",
    "Shutdown",
    "check_callable",
    "current_health",
    "format_seconds",
    "observer",
    "one_shot",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Shutdown = Callable[[BaseException | None], None]
"""Asks the owning application to shut down, carrying the error that caused it."""

OBSERVER_OK_EVERY: Final = 10.0
"""An observer reports OK to its health node at most this often (seconds)."""

_current: contextvars.ContextVar[Health] = contextvars.ContextVar("taskmill_job_health")


def current_health() -> Health:
    """Return the health node of the job whose code is running.

    Raises:
        NotRunning: when called outside a running job.
    """
    try:
        return _current.get()
    except LookupError:
        raise NotRunning("current_health() is only available inside a running job") from None


@final
class JobKind(enum.StrEnum):
    """What a job does; also the ``kind`` label of its metrics."""

    ONE_SHOT = "one_shot"
    TIMER = "timer"
    OBSERVER = "observer"


@final
class JobState(enum.StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    """Created, not run yet."""
    RUNNING = "running"
    FINISHED = "finished"
    """Returned normally (a one-shot succeeded, an observer's source ended)."""
    FAILED = "failed"
    """Ended with an error (a one-shot out of attempts, an observer's source failed)."""
    STOPPED = "stopped"
    """Cancelled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatistics:
    """A snapshot of a :class:`Job`.

    Attributes:
        name: The sanitised name.
        kind: The job kind.
        state: The job state.
        runs: Runs (one-shot attempts, timer runs, observer items) that ended.
        errors: Runs that failed.
        last_duration: Seconds the last run took (``None`` before the first).
        last_error: The last failed run's error, as text.
        missed_ticks: Timer only: grid points dropped because a run overran them.
        triggered_runs: Timer only: runs that served at least one trigger.
        dropped_triggers: Timer only: triggers dropped by the debounce.
    """

    name: str
    kind: JobKind
    state: JobState
    runs: int = 0
    errors: int = 0
    last_duration: float | None = None
    last_error: HealthError | None = None
    missed_ticks: int = 0
    triggered_runs: int = 0
    dropped_triggers: int = 0


def format_seconds(seconds: float) -> str:
    """Format a duration for health messages (``"0.25s"``, ``"1.5e+03s"``)."""
    return f"{seconds:.3g}s"


@final
class RunContext:
    """One execution of a job: where it reports, and its counters."""

    __slots__ = (
        "errors",
        "health",
        "kind",
        "last_duration",
        "last_error",
        "loop",
        "metrics",
        "name",
        "runs",
        "shutdown",
        "ticker",
    )

    def __init__(
        self, job: Job, health: Health, metrics: Metrics, shutdown: Shutdown | None
    ) -> None:
        self.name = job.name
        self.kind = job.kind
        self.health = health
        self.metrics = metrics
        self.shutdown = shutdown
        self.loop = asyncio.get_running_loop()
        self.runs = 0
        self.errors = 0
        self.last_duration: float | None = None
        self.last_error: BaseException | None = None
        self.ticker: Ticker | None = None
        """The timer's ticker (timers only)."""

    @property
    def extra(self) -> dict[str, str]:
        """The ``extra`` for log records: the job's name and kind."""
        return {"job": self.name, "job_kind": str(self.kind)}

    async def call(self, fn: Callable[[], Awaitable[object]]) -> BaseException | None:
        """Run ``fn`` once; record the outcome; return its error (``None`` on success)."""
        started = self.loop.time()
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and reported
            self.ended(self.loop.time() - started, exc)
            return exc
        self.ended(self.loop.time() - started, None)
        return None

    def ended(self, seconds: float, error: BaseException | None) -> None:
        """Record one run that took ``seconds`` (``error``: it failed)."""
        self.runs += 1
        self.last_duration = seconds
        self.metrics.job_run(self.kind, self.name, seconds)
        if error is not None:
            self.errors += 1
            self.last_error = error
            self.metrics.job_error(self.kind, self.name, error)

    def request_shutdown(self, error: BaseException) -> None:
        """Ask the owning application to shut down because of ``error``."""
        if self.shutdown is None:
            logger.error(
                "job %s failed with shutdown_on_failure but has no shutdown handler",
                self.name,
                extra=self.extra,
            )
            return
        logger.error("job %s failed: requesting shutdown", self.name, extra=self.extra)
        try:
            self.shutdown(error)
        except Exception:
            logger.exception("shutdown handler failed", extra=self.extra)


_Body = Callable[[RunContext], Awaitable[None]]


@final
class Job:
    """A named unit of background work, run once (by a group or with :meth:`run`).

    Create jobs with :func:`one_shot`, :func:`timer` or :func:`observer`; each
    job object runs at most once (build a new one to run again).

    Attributes:
        name: The sanitised name (safe for metric labels and health scopes).
        kind: What the job does.
    """

    __slots__ = ("_body", "_claimed", "_health", "_run", "_signal", "_state", "kind", "name")

    def __init__(
        self, name: str, kind: JobKind, body: _Body, *, signal: TimerSignal | None = None
    ) -> None:
        if not name:
            raise ConfigurationError("a job needs a non-empty name")
        self.name = sanitize_name(name)
        self.kind = kind
        self._body = body
        self._state = JobState.PENDING
        self._health: Health | None = None
        self._run: RunContext | None = None
        self._signal = signal
        self._claimed = False

    def claim(self) -> None:
        """Mark the job as owned by a runner such as a :class:`~taskmill.JobGroup`.

        Raises:
            StateError: the job was already claimed or has already run.
        """
        if self._claimed or self._state is not JobState.PENDING:
            raise StateError(f"{self!r} was already added or run; jobs are single-use")
        self._claimed = True

    @property
    def state(self) -> JobState:
        """Where the job is in its life."""
        return self._state

    @property
    def health(self) -> Health | None:
        """The health node the job reports to (``None`` before it runs)."""
        return self._health

    async def run(
        self,
        *,
        health: Health | None = None,
        metrics: Metrics | None = None,
        shutdown: Shutdown | None = None,
    ) -> None:
        """Run the job to its end in the current task.

        Args:
            health: The node to report to (default: a new root named after the job).
            metrics: Where to report runs (default: :class:`~taskmill.NoopMetrics`).
            shutdown: Called with the error when a one-shot with
                ``shutdown_on_failure`` finally fails.

        Raises:
            AlreadyStarted: the job already ran (jobs are single-use).
            Exception: a one-shot's last error once it is out of attempts, or an
                observer source's error.
        """
        if self._state is not JobState.PENDING:
            raise AlreadyStarted(f"job {self.name!r} already ran; jobs are single-use")
        self._state = JobState.RUNNING
        health = health if health is not None else Health.root(self.name)
        self._health = health
        run = self._run = RunContext(self, health, metrics or NoopMetrics(), shutdown)
        token = _current.set(health)
        try:
            await self._body(run)
        except asyncio.CancelledError:
            self._state = JobState.STOPPED
            health.stopped("stopped")
            raise
        except Exception as exc:
            self._state = JobState.FAILED
            health.stopped(f"failed: {exc}", exc)
            logger.exception("job %s failed", self.name, extra=run.extra)
            raise
        else:
            self._state = JobState.FINISHED
        finally:
            with contextlib.suppress(ValueError):  # closed by the GC in another context
                _current.reset(token)
            if self._signal is not None:
                self._signal.detach()

    def statistics(self) -> JobStatistics:
        """Return a snapshot of the job's state and counters."""
        run = self._run
        ticker = None if run is None else run.ticker
        signal = self._signal
        last_error = None if run is None or run.last_error is None else run.last_error
        return JobStatistics(
            name=self.name,
            kind=self.kind,
            state=self._state,
            runs=0 if run is None else run.runs,
            errors=0 if run is None else run.errors,
            last_duration=None if run is None else run.last_duration,
            last_error=None if last_error is None else HealthError.from_exception(last_error),
            missed_ticks=0 if ticker is None else ticker.missed,
            triggered_runs=0 if signal is None else signal.served,
            dropped_triggers=0 if signal is None else signal.dropped,
        )

    def __repr__(self) -> str:
        return f"<Job {self.name!r} kind={self.kind} state={self._state}>"


# -- one-shot -------------------------------------------------------------------------
def one_shot(
    name: str,
    fn: Callable[[], Awaitable[object]],
    *,
    retry: Retry | None = None,
    shutdown_on_failure: bool = False,
) -> Job:
    """A job that runs ``fn`` once, retrying failures by ``retry``.

    Health: OK ``"running"`` at each attempt, DEGRADED with the error after a
    failed attempt, OK ``"finished in Xs"`` on success, STOPPED ``"failed: ..."``
    when out of attempts. Cancellation at any point ends the job quietly.

    Args:
        name: The job's name (sanitised, see :func:`~taskmill.sanitize_name`).
        fn: ``async def fn() -> object``; use :func:`current_health` to report
            sub-status.
        retry: The retry policy (default: a single attempt). Hive's
            ``WithRetry(times, backoff)`` is ``Retry.from_hive(times, ...)``.
        shutdown_on_failure: When the job finally fails, ask the owning app to
            shut down with the last error. Never on success or cancellation.

    Returns:
        The job.
    """
    check_callable(fn)

    async def body(run: RunContext) -> None:
        await _one_shot(run, fn, retry, shutdown_on_failure=shutdown_on_failure)

    return Job(name, JobKind.ONE_SHOT, body)


async def _one_shot(
    run: RunContext,
    fn: Callable[[], Awaitable[object]],
    retry: Retry | None,
    *,
    shutdown_on_failure: bool,
) -> None:
    runner = None if retry is None else Runner(retry)
    task = asyncio.current_task()
    attempt = 0
    while True:
        attempt += 1
        run.health.ok("running" if attempt == 1 else f"running (attempt {attempt})")
        started = run.loop.time()
        error = await run.call(_attempt(fn, retry, runner, started))
        if error is None:
            run.health.ok(f"finished in {format_seconds(run.loop.time() - started)}")
            return
        if runner is None:
            _give_up(run, error, shutdown_on_failure=shutdown_on_failure)
        step = runner.step(error, started=started, finished=run.loop.time())
        if not step.again:
            _give_up(run, runner.failure(), shutdown_on_failure=shutdown_on_failure)
        run.health.degraded(
            f"attempt {attempt} failed; retrying in {format_seconds(step.delay)}", error
        )
        logger.warning(
            "job %s attempt %d failed; retrying in %.3gs",
            run.name,
            attempt,
            step.delay,
            exc_info=error,
            extra=run.extra,
        )
        await asyncio.sleep(step.delay)
        if task is not None and task.cancelling():  # cancelled, and someone swallowed it
            raise asyncio.CancelledError


def _attempt(
    fn: Callable[[], Awaitable[object]], retry: Retry | None, runner: Runner | None, started: float
) -> Callable[[], Awaitable[object]]:
    """Return the call for one attempt, under the policy's timeout/deadline if any."""
    limit = None if retry is None or runner is None else _attempt_limit(retry, runner, started)
    if limit is None or runner is None:
        return fn
    number = runner.attempts + 1

    async def guarded() -> object:
        scope = asyncio.timeout_at(started + limit)
        try:
            async with scope:
                return await fn()
        except TimeoutError as exc:
            if scope.expired():
                raise TaskTimeout(limit, number) from exc
            raise  # the function's own TimeoutError

    return guarded


def _attempt_limit(retry: Retry, runner: Runner, started: float) -> float | None:
    """Seconds one attempt may run: the per-attempt timeout, cut to the total deadline."""
    if retry.deadline is None:
        return retry.timeout
    first = runner.first_started
    left = retry.deadline - (started - (started if first is None else first))
    return left if retry.timeout is None else min(left, retry.timeout)


def _give_up(run: RunContext, error: BaseException, *, shutdown_on_failure: bool) -> NoReturn:
    if shutdown_on_failure:
        run.request_shutdown(error)
    raise error


# -- observer -------------------------------------------------------------------------
def observer(name: str, fn: Callable[[T], Awaitable[object]], source: AsyncIterable[T]) -> Job:
    """A job that calls ``fn(item)`` for each item of ``source``, one at a time.

    A failing ``fn`` does not stop the observer (DEGRADED + log + metrics). The job
    ends when ``source`` is exhausted (OK ``"completed [N processed]"``); if the
    source itself raises, the job fails with that error. While items flow the
    health node reports OK with the processed count at most every 10 seconds.
    On cancellation the source is closed if it has ``aclose()``.

    Args:
        name: The job's name (sanitised).
        fn: ``async def fn(item) -> object``.
        source: Any async iterable (async generator, channel, stream).

    Returns:
        The job.
    """
    check_callable(fn)

    async def body(run: RunContext) -> None:
        await _observe(run, fn, source)

    return Job(name, JobKind.OBSERVER, body)


async def _observe(
    run: RunContext, fn: Callable[[T], Awaitable[object]], source: AsyncIterable[T]
) -> None:
    run.health.ok("observing")
    iterator = aiter(source)
    processed = 0
    last_ok: float | None = None
    try:
        async for item in iterator:
            error = await run.call(functools.partial(fn, item))
            if error is not None:
                run.health.degraded(f"handler failed: {error}", error)
                logger.error(
                    "observer job %s handler failed", run.name, exc_info=error, extra=run.extra
                )
                continue
            processed += 1
            now = run.loop.time()
            if last_ok is None or now - last_ok >= OBSERVER_OK_EVERY:
                last_ok = now
                run.health.ok(
                    f"ok ({format_seconds(run.last_duration or 0.0)}) [{processed} processed]"
                )
    finally:
        aclose: Any = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    run.health.ok(f"completed [{processed} processed]")


def check_callable(fn: object) -> None:
    if not callable(fn):
        raise ConfigurationError(f"fn must be callable, got {fn!r}")
