"""Timer jobs (cilium hive ``job.Timer``): interval runs on the drift-free ticker, plus triggers.

Runs are sequential. A run starts when the next grid point of the
:class:`~taskmill.Ticker` is reached, or when a :class:`~taskmill.Trigger` the timer
is attached to has fired; a tick and pending triggers that meet at a run start are
served by that one run. Triggers never move the grid.

How runs are started: one :class:`_Dispatcher` per event loop keeps every timer's
next deadline in a heap and holds a single loop timer for the earliest one. When
deadlines come due it starts the runs itself, one after the other, each *as the
timer's own task*: ``asyncio.current_task()`` is the job's task and the run executes
in the job's context, exactly as if the task had woken up. A run that completes
without suspending (the common cheap periodic check) therefore costs no task
wake-up, no future and no loop timer of its own; a run that suspends is handed to
the job's task, which drives it to its end and hands the timer back to the
dispatcher. An idle timer is its task parked on one future plus its deadline in a heap.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import logging
import math
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, final

from ._errors import ConfigurationError
from ._jobs import Job, JobKind, RunContext, check_callable, format_seconds
from ._ticker import Ticker
from ._trigger import TimerSignal, Trigger

__all__ = ["timer"]

logger = logging.getLogger(__name__)

# asyncio's own hooks for running a step "as" a task (what eager tasks use on 3.12+).
# Should a Python lack them, every run is handed to the job's task instead.
_enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_enter_task", None
)
_leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_leave_task", None
)

BATCH: Final = 256
"""Runs the dispatcher starts per loop callback before letting other callbacks in."""


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


def _timer(
    fn: Callable[[], Awaitable[object]],
    interval: float,
    signal: TimerSignal | None,
    immediate: bool,  # noqa: FBT001 - bound positionally by timer()
    run: RunContext,
) -> Coroutine[Any, Any, None]:
    """Set the timer up in the job's task; return what that task then awaits."""
    started = run.loop.time()
    ticker = run.ticker = Ticker(interval, start=started, immediate=immediate) if interval else None
    run.health.ok("primed")
    state = _TimerState(run, fn, ticker, signal, started, force=immediate and ticker is None)
    return _serve(state)  # a small frame: an idle timer keeps only this one parked


async def _serve(state: _TimerState) -> None:
    """The job's task: park until a run is handed over, drive it, park again."""
    try:
        while True:
            waker = state.waker = state.loop.create_future()
            try:
                await waker
            except asyncio.CancelledError as cancel:
                gen = state.suspended
                if gen is None:  # idle: the job ends
                    raise
                # cancelled while a suspended run was being handed over: the run gets it
                state.suspended = None
                _cancel_waited(state.yielded)
                error = await _finish(state, _resume(gen, state.ctx, None, cancel))
            else:
                error = await state.take_over()
            state.ctx.run(state.ended, error)
    finally:
        state.close()


@final
class _TimerState:
    """One running timer: its ticker, trigger signal and run bookkeeping."""

    __slots__ = (
        "busy",
        "closed",
        "ctx",
        "dispatcher",
        "fatal",
        "fn",
        "force",
        "loop",
        "queued",
        "run",
        "run_started",
        "signal",
        "soon",
        "started",
        "suspended",
        "task",
        "ticker",
        "waker",
        "yielded",
    )

    def __init__(
        self,
        run: RunContext,
        fn: Callable[[], Awaitable[object]],
        ticker: Ticker | None,
        signal: TimerSignal | None,
        started: float,
        *,
        force: bool,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # a job body always runs in a task
        self.task = task
        self.loop = run.loop
        self.run = run
        self.fn = fn
        self.ticker = ticker
        self.signal = signal
        self.started = started
        self.ctx = contextvars.copy_context()  # the job's context (current_health, subsystem)
        self.dispatcher = _dispatcher(self.loop)
        self.queued = False  # due in the dispatcher
        self.soon = False  # a call_soon(self.fire) is pending
        self.busy = False  # a run is in progress
        self.closed = False
        self.force = force  # run at the first chance even with nothing due
        self.fatal: BaseException | None = None
        self.suspended: Coroutine[Any, Any, Any] | None = None
        self.yielded: object = None
        self.waker: asyncio.Future[None] | None = None
        self.run_started = started
        if signal is not None:
            signal.wake = self.poke
        if force or (signal is not None and signal.pending) or _overdue(ticker, started):
            self.schedule_soon()
        else:
            self.arm()

    # -- scheduling ---------------------------------------------------------------
    def arm(self) -> None:
        """Wait for the next grid point (triggers wake us through :meth:`poke`)."""
        ticker = self.ticker
        if ticker is not None and not self.queued:
            self.dispatcher.push(self, ticker.next_deadline())

    def poke(self) -> None:
        """A trigger arrived: look at it soon (a run in progress looks when it ends)."""
        if not self.busy and not self.closed:
            self.schedule_soon()

    def schedule_soon(self) -> None:
        if not self.soon:
            self.soon = True
            self.loop.call_soon(self.fire_soon)

    def fire_soon(self) -> None:
        self.soon = False
        self.fire()

    # -- starting a run (from a loop callback) --------------------------------------
    def fire(self) -> None:
        """Start a run if one is due, as the job's task, without waking it."""
        waker = self.waker
        if self.busy or self.closed or waker is None or waker.done():
            return  # running, ended, or the task is about to wake (cancelled)
        loop, task = self.loop, self.task
        if _enter_task is None or _leave_task is None:
            self.ctx.run(self.check, False)
            return
        try:
            _enter_task(loop, task)
        except RuntimeError:  # another task is current here: let the job's task run it
            self.ctx.run(self.check, False)
            return
        try:
            self.ctx.run(self.check, True)
        finally:
            _leave_task(loop, task)

    def check(self, eager: bool) -> None:  # noqa: FBT001 - internal
        try:
            now = self.loop.time()
            due = self.force
            self.force = False
            ticker = self.ticker
            if ticker is not None and ticker.due(now):
                ticker.tick(now)
                due = True
            signal = self.signal
            if signal is not None:
                served = signal.take(now, self.started)
                if served is not None:
                    self.run.metrics.trigger(self.run.name, *served)
                    due = True
            if not due:
                self.arm()
                return
            self.begin(now)
            if eager:
                self.first_step()
            else:
                self.hand_over(None, None)
        except BaseException as exc:  # noqa: BLE001 - ends this timer only, via its task
            self.fail(exc)

    def begin(self, now: float) -> None:
        if self.signal is not None:
            self.signal.last_start = now
        self.busy = True
        self.run_started = now

    def first_step(self) -> None:
        """Run ``fn`` until it completes or first suspends."""
        try:
            awaitable = self.fn()
        except Exception as exc:  # noqa: BLE001 - a failed run, like ``await fn()``
            self.ended(exc)
            return
        if not isinstance(awaitable, types.CoroutineType):
            self.hand_over(None, awaitable)  # some other awaitable: the task awaits it
            return
        try:
            yielded = awaitable.send(None)
        except StopIteration:
            self.ended(None)
        except Exception as exc:  # noqa: BLE001 - a failed run
            self.ended(exc)
        else:
            self.hand_over(awaitable, yielded)

    def hand_over(self, gen: Coroutine[Any, Any, Any] | None, yielded: object) -> None:
        """Let the job's task drive the run (``gen is None``: start it there)."""
        self.suspended = gen
        self.yielded = yielded
        waker = self.waker
        if waker is not None and not waker.done():  # done: the task was cancelled meanwhile
            waker.set_result(None)

    def fail(self, error: BaseException) -> None:
        """End the timer with ``error`` (raised in the job's task)."""
        self.fatal = error
        self.busy = True  # nothing more starts
        waker = self.waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    # -- in the job's task ----------------------------------------------------------
    async def take_over(self) -> BaseException | None:
        """Drive the handed-over run to its end; return its error."""
        fatal = self.fatal
        if fatal is not None:
            self.fatal = None
            raise fatal
        gen, self.suspended = self.suspended, None
        awaitable: Awaitable[object]
        if gen is not None:  # suspended after its first step
            awaitable = _resume(gen, self.ctx, self.yielded, None)
        elif self.yielded is not None:  # fn returned an awaitable that is not a coroutine
            awaitable = self.yielded  # type: ignore[assignment]
        else:  # not started eagerly
            try:
                awaitable = self.fn()
            except Exception as exc:  # noqa: BLE001 - a failed run, like ``await fn()``
                return exc
        return await _finish(self, awaitable)

    # -- ending a run -------------------------------------------------------------
    def ended(self, error: BaseException | None) -> None:
        """Record the run's outcome and wait for the next one."""
        run = self.run
        now = self.loop.time()
        run.ended(now - self.run_started, error)
        if error is None:
            run.health.ok(f"ok ({format_seconds(run.last_duration or 0.0)})")
        else:
            run.health.degraded(f"run failed: {error}", error)
            logger.error("timer job %s run failed", run.name, exc_info=error, extra=run.extra)
        self.busy = False
        self.yielded = None
        if self.closed:
            return
        signal = self.signal
        if self.force or (signal is not None and signal.pending) or _overdue(self.ticker, now):
            self.schedule_soon()  # an overrun: the next run follows at once
        else:
            self.arm()

    def close(self) -> None:
        self.closed = True
        self.waker = None
        if self.signal is not None:
            self.signal.wake = None
        if self.queued:
            self.dispatcher.discard()


def _overdue(ticker: Ticker | None, now: float) -> bool:
    return ticker is not None and ticker.next_deadline() <= now


async def _finish(state: _TimerState, awaitable: Awaitable[object]) -> BaseException | None:
    """Await the rest of a run in the job's task; return its error (``None``: success)."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001 - recorded and reported by ended()
        return exc
    finally:
        state.yielded = None
    return None


def _cancel_waited(yielded: object) -> None:
    """Cancel the future a suspended run waits on, as a task's cancel() would."""
    if isinstance(yielded, asyncio.Future):
        yielded.cancel()


@types.coroutine
def _resume(
    gen: Coroutine[Any, Any, Any],
    ctx: contextvars.Context,
    yielded: object,
    thrown: BaseException | None,
) -> Generator[Any, Any, None]:
    """Continue a suspended run in the awaiting task: pass every yield, send and throw through."""
    if thrown is not None:
        try:
            yielded = ctx.run(gen.throw, thrown)
        except StopIteration:
            return
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the run, as await would
            try:
                yielded = ctx.run(gen.throw, exc)
            except StopIteration:
                return
        else:
            try:
                yielded = ctx.run(gen.send, sent)
            except StopIteration:
                return


# -- the per-loop dispatcher ----------------------------------------------------------
@final
class _Dispatcher:
    """Every timer deadline of one loop, behind one loop timer handle.

    ``_heap`` holds each distinct deadline once, as a plain float (cheap to compare);
    ``_due`` maps a deadline to the timer due then, or to a list of the timers due
    then in scheduling order. Entries of timers that closed are skipped when popped
    and compacted away when they are many.
    """

    __slots__ = ("__weakref__", "_due", "_handle", "_heap", "_loop", "_queued", "_stale", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry is keyed by the loop: no strong ref
        self._heap: list[float] = []
        self._due: dict[float, _TimerState | list[_TimerState]] = {}
        self._queued = 0
        self._stale = 0
        self._handle: asyncio.Handle | None = None
        self._when = math.inf

    def push(self, state: _TimerState, when: float) -> None:
        due = self._due
        present = due.get(when)
        if present is None:
            due[when] = state
            heapq.heappush(self._heap, when)
        elif type(present) is list:
            present.append(state)
        else:
            due[when] = [present, state]  # type: ignore[list-item]
        state.queued = True
        self._queued += 1
        if when < self._when:
            self._arm(when)

    def discard(self) -> None:
        """A queued timer closed: drop its entry lazily, compacting when many are dead."""
        self._stale += 1
        if self._when != -math.inf:  # not while _run() walks the heap: it compacts after
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        if self._stale > 64 and self._stale * 2 > self._queued:
            self._compact()

    def _compact(self) -> None:
        due: dict[float, _TimerState | list[_TimerState]] = {}
        for when, present in self._due.items():
            states = present if isinstance(present, list) else [present]
            live = [state for state in states if not state.closed]
            for state in states:
                if state.closed:
                    state.queued = False
            if live:
                due[when] = live[0] if len(live) == 1 else live
        self._due = due
        self._heap = list(due)
        heapq.heapify(self._heap)
        self._queued -= self._stale
        self._stale = 0
        if not due and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._when = math.inf

    def _arm(self, when: float) -> None:
        loop = self._loop()
        if loop is None:  # pragma: no cover - the loop is gone with its timers
            return
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = loop.call_at(when, self._run)

    def _start(self, state: _TimerState) -> None:
        state.queued = False
        self._queued -= 1
        if state.closed:
            self._stale -= 1
        else:
            state.fire()

    def _run(self) -> None:
        self._handle = None
        self._when = -math.inf  # pushes made meanwhile do not arm: the end of this does
        loop = self._loop()
        if loop is None:  # pragma: no cover
            return
        now = loop.time()
        budget = BATCH
        try:
            heap, due = self._heap, self._due
            while budget > 0 and heap and heap[0] <= now:
                when = heapq.heappop(heap)
                present = due.pop(when)
                if type(present) is not list:
                    budget -= 1
                    self._start(present)  # type: ignore[arg-type]
                    continue
                for index, state in enumerate(present):
                    if budget == 0:  # the rest stay due, first in line
                        due[when] = present[index:]
                        heapq.heappush(heap, when)
                        break
                    budget -= 1
                    self._start(state)
        finally:
            self._maybe_compact()  # timers closed by the runs above
            heap = self._heap
            self._when = math.inf
            if heap and heap[0] <= now:  # more are due: let other callbacks run first
                self._when = -math.inf
                self._handle = loop.call_soon(self._run)
            elif heap:
                self._arm(heap[0])


_DISPATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Dispatcher] = (
    weakref.WeakKeyDictionary()
)


def _dispatcher(loop: asyncio.AbstractEventLoop) -> _Dispatcher:
    dispatcher = _DISPATCHERS.get(loop)
    if dispatcher is None:
        dispatcher = _DISPATCHERS[loop] = _Dispatcher(loop)
    return dispatcher
