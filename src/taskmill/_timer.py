"""Timer jobs (cilium hive ``job.Timer``): interval runs on the drift-free ticker, plus triggers.

Runs are sequential. A run starts when the next grid point of the
:class:`~taskmill.Ticker` is reached, or when a :class:`~taskmill.Trigger` the timer
is attached to has fired; a tick and pending triggers that meet at a run start are
served by that one run. Triggers never move the grid.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable

from ._errors import ConfigurationError
from ._jobs import Job, JobKind, RunContext, check_callable, format_seconds
from ._ticker import Ticker
from ._trigger import TimerSignal, Trigger

__all__ = ["timer"]

logger = logging.getLogger(__name__)


def timer(
    name: str,
    fn: Callable[[], Awaitable[object]],
    *,
    interval: float,
    trigger: Trigger | None = None,
    immediate: bool = False,
    debounce: float = 0.0,
) -> Job:
    """A job that runs ``fn`` every ``interval`` seconds and whenever ``trigger`` fires.

    Runs are sequential and spaced start-to-start on a drift-free grid
    (:class:`~taskmill.Ticker`): the first run comes one interval after the start
    (at the start with ``immediate=True``); a run that overruns the next grid
    point is followed at once by the next, and overrun grid points are dropped.
    Errors never stop a timer (DEGRADED + log + metrics); a success reports OK
    ``"ok (duration)"``.

    Args:
        name: The job's name (sanitised).
        fn: ``async def fn() -> object``.
        interval: Seconds between runs; ``0`` means trigger-only.
        trigger: Runs ``fn`` soon after :meth:`Trigger.trigger` (coalescing).
        immediate: Also run at the start.
        debounce: Drop (not defer) a trigger fired less than ``debounce`` seconds
            after the start of this timer's last run.

    Returns:
        The job.

    Raises:
        ConfigurationError: a negative or non-finite ``interval`` or ``debounce``, or
            ``interval == 0`` without a trigger and without ``immediate``.
    """
    check_callable(fn)
    if not (math.isfinite(interval) and interval >= 0):
        raise ConfigurationError(f"interval must be a finite number >= 0, got {interval!r}")
    if not (math.isfinite(debounce) and debounce >= 0):
        raise ConfigurationError(f"debounce must be a finite number >= 0, got {debounce!r}")
    if interval == 0 and trigger is None and not immediate:
        raise ConfigurationError("a timer with interval 0 needs a trigger")
    signal = None
    if trigger is not None:
        signal = TimerSignal(debounce)
        signal.attach(trigger)

    body = functools.partial(_timer, fn, interval, signal, immediate)  # positional: smaller
    return Job(name, JobKind.TIMER, body, signal=signal)


async def _timer(
    fn: Callable[[], Awaitable[object]],
    interval: float,
    signal: TimerSignal | None,
    immediate: bool,  # noqa: FBT001 - bound positionally by timer()
    run: RunContext,
) -> None:
    loop = run.loop
    started = loop.time()
    ticker = run.ticker = Ticker(interval, start=started, immediate=immediate) if interval else None
    run.health.ok("primed")
    due = immediate and ticker is None
    while True:
        if not due:
            waiter, handle = _arm(loop, ticker, signal)
            try:
                await waiter
            finally:
                _disarm(handle, signal)
        now = loop.time()
        if ticker is not None and ticker.due(now):
            ticker.tick(now)
            due = True
        if signal is not None:
            served = signal.take(now, started)
            if served is not None:
                run.metrics.trigger(run.name, *served)
                due = True
        if due:
            due = False
            await _timer_run(run, fn, signal, now)


def _arm(
    loop: asyncio.AbstractEventLoop, ticker: Ticker | None, signal: TimerSignal | None
) -> tuple[Awaitable[None], asyncio.TimerHandle | None]:
    """Return what to await until the next tick or trigger (always yields once).

    A plain future woken by a timer handle or by the signal: no coroutine frame is
    kept per idle timer.
    """
    deadline = None if ticker is None else ticker.next_deadline()
    if (signal is not None and signal.pending) or (
        deadline is not None and deadline <= loop.time()
    ):
        return asyncio.sleep(0), None
    waiter: asyncio.Future[None] = loop.create_future()
    handle = None if deadline is None else loop.call_at(deadline, _wake, waiter)
    if signal is not None:
        signal.waiter = waiter
    return waiter, handle


def _disarm(handle: asyncio.TimerHandle | None, signal: TimerSignal | None) -> None:
    if handle is not None:
        handle.cancel()
    if signal is not None:
        signal.waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _timer_run(
    run: RunContext, fn: Callable[[], Awaitable[object]], signal: TimerSignal | None, now: float
) -> None:
    if signal is not None:
        signal.last_start = now
    error = await run.call(fn)
    if error is None:
        run.health.ok(f"ok ({format_seconds(run.last_duration or 0.0)})")
        return
    run.health.degraded(f"run failed: {error}", error)
    logger.error("timer job %s run failed", run.name, exc_info=error, extra=run.extra)
