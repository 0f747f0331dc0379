"""The in-process engine under :class:`~taskmill.TaskManager`: workers, scheduler, bookkeeping.

Shape of the hot path (designed for a few microseconds per task end to end):

* a submit builds one :class:`~taskmill.TaskHandle` (which *is* the record; its id
  string is only formatted when read), pushes it on the
  :class:`~taskmill._scheduler.ReadyQueue` and wakes one idle worker;
* ``concurrency`` long-lived worker coroutines pop and run tasks; no asyncio.Task
  is created per task, no datetime is built, nothing is logged;
* one sleeper coroutine owns the :class:`~taskmill._scheduler.TimerHeap` (delayed,
  scheduled and retrying tasks, and tasks waiting for a per-key rate token). It
  sleeps until the earliest entry and is woken only by an earlier insert. Due
  tasks move to the ready queue only while it has room: when it is full the
  sleeper awaits space (no busy spin, unlike marionette's scheduler);
* retries go back through the sleeper with status ``retrying``: a task that is
  backing off never holds a worker slot.

Cancelling a running task cancels its worker's asyncio.Task and undoes that
request (``Task.uncancel``) once the attempt ended, so the worker lives on. A
cancellation of the worker that did *not* come from us (the loop shutting down)
finishes the task as cancelled and ends the worker.
"""

# The engine and TaskHandle are friends: the handle is the engine's record.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FunctionType
from typing import TYPE_CHECKING, Any, Final

from . import _clock
from ._calls import call_attempt
from ._errors import ConfigurationError, NotRunning, TaskTimeout
from ._handle import (
    ANY_CANCEL,
    CANCEL_WORKER,
    HAS_RUNNER,
    HAS_WAITERS,
    IN_READY,
    NO_KWARGS,
    SLOW_END,
    TaskHandle,
)
from ._middleware import Events
from ._records import (
    CANCELLED,
    FAILED,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    STARTED,
    STOPPED,
    SUCCEEDED,
    TIMED_OUT,
    Handle,
    Records,
    set_none,
)
from ._retry import Retry
from ._runner import Runner

if TYPE_CHECKING:
    from ._taskoptions import Resolved

__all__ = ["Engine"]

logger = logging.getLogger(__name__)

_SINGLE: Final = Retry(max_attempts=1)
_FAIRNESS: Final = 64  # a worker yields to the loop after this many tasks in a row
_CO_COROUTINE: Final = inspect.CO_COROUTINE
_new: Final = object.__new__


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (functions, methods, partials, objects)."""
    if type(fn) is FunctionType:
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004  # instances with async __call__
    return not isinstance(fn, type) and inspect.iscoroutinefunction(call)


class Engine(Records):
    """Intake, workers, attempts and the scheduler (see the module doc)."""

    __slots__ = ()

    async def _wait_for_space(self) -> None:
        """Wait until a queue slot is free; raise NotRunning when not running."""
        while True:
            if self._state is not STARTED:
                raise NotRunning(f"the task manager is not running (state: {self._state})")
            if self._queued < self._queue_size:
                return
            loop = self._loop
            assert loop is not None
            future = loop.create_future()
            self._space.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._wake_space()  # pass the wake-up on
                raise

    def _try_accept(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], opts: Resolved
    ) -> Handle | None:
        """Accept a task now, or return None when it needs a queue slot and none is free."""
        if self._state is not STARTED:
            raise NotRunning(f"the task manager is not running (state: {self._state})")
        if not opts.plain:
            return self._accept_special(fn, args, kwargs, opts)
        if self._queued >= self._queue_size:
            return None
        if type(fn) is FunctionType:
            is_async = fn.__code__.co_flags & _CO_COROUTINE != 0
        elif callable(fn):
            is_async = _is_async_callable(fn)
        else:
            raise ConfigurationError(f"fn must be callable, got {fn!r}")
        seq = self._seq = self._seq + 1
        loop = self._loop
        assert loop is not None
        # TaskHandle.__init__, inlined (no Python frame: this is the hottest line).
        # An empty **kwargs dict is a GC allocation: it is not kept alive.
        handle: Handle = _new(TaskHandle)
        handle._seq = seq
        handle._fn = fn
        handle._args = args
        handle._kwargs = kwargs or NO_KWARGS
        handle._opts = opts
        handle._submitted = loop.time()
        handle._is_async = is_async
        handle._status = QUEUED
        handle._attempts = 0
        handle._flags = 0
        self._tasks[seq] = handle
        self._queued += 1
        level = self._ready_levels.get(opts.priority)  # ReadyQueue.push(), inlined
        if level is None:
            self._ready.push(opts.priority, handle)
        else:
            level.append(handle)
        if self._idle:
            self._wake_worker()
        if self._on_submitted:
            Events.emit(self._on_submitted, handle)
        return handle

    def _accept_special(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: Resolved,
        when: float | None = None,
    ) -> Handle | None:
        """Accept a task with options beyond the plain ones (or an explicit due time)."""
        if self._state is not STARTED:
            raise NotRunning(f"the task manager is not running (state: {self._state})")
        key = opts.unique_key
        if key is not None and key in self._unique:
            return self._unique[key]
        if when is None:
            when = self._due_time(opts)
        if when is None and self._queued >= self._queue_size:
            return None
        if not callable(fn):
            raise ConfigurationError(f"fn must be callable, got {fn!r}")
        seq = self._seq = self._seq + 1
        handle: Handle = TaskHandle(
            seq, fn, args, kwargs or NO_KWARGS, opts, self._now(), _is_async_callable(fn)
        )
        self._tasks[seq] = handle
        if key is not None:
            self._unique[key] = handle
        if when is None:
            self._queued += 1
            self._enqueue(handle)
        else:
            handle._status = SCHEDULED
            handle._when = when
            self._scheduled += 1
            self._schedule(when, handle)
        if self._on_submitted:
            Events.emit(self._on_submitted, handle)
        return handle

    def _accept_scheduled(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: Resolved,
        when: float,
    ) -> Handle:
        """Accept a task due at loop time ``when`` (never needs a queue slot)."""
        handle = self._accept_special(fn, args, kwargs, opts, when)
        assert handle is not None
        return handle

    def _due_time(self, opts: Resolved) -> float | None:
        if opts.delay is not None:
            return self._now() + opts.delay
        if opts.at is not None:
            return self._now() + (opts.at.timestamp() - _clock.wall_time())
        return None

    def _enqueue(self, handle: Handle) -> None:
        """Put a QUEUED handle on the ready queue and wake a worker."""
        handle._where = IN_READY
        self._ready.push(handle._opts.priority, handle)
        if self._idle:
            self._wake_worker()

    def _spawn_worker(self) -> None:
        loop = self._loop
        assert loop is not None
        worker = loop.create_task(self._work(), name="taskmill-worker")
        self._workers.add(worker)
        worker.add_done_callback(self._worker_exited)

    def _worker_exited(self, worker: asyncio.Task[None]) -> None:
        self._workers.discard(worker)
        if worker.cancelled():
            return
        error = worker.exception()
        if error is not None:  # a bug in taskmill: keep the pool at strength
            logger.error("task manager worker crashed; replacing it", exc_info=error)
            if self._state is STARTED and len(self._workers) < self._concurrency:
                self._spawn_worker()

    async def _work(self) -> None:  # noqa: PLR0912, PLR0915  # the hot loop, inlined on purpose
        me = asyncio.current_task()
        loop = self._loop
        assert me is not None
        assert loop is not None
        ready = self._ready
        levels, priorities = ready._levels, ready._priorities
        finished = self._finished
        tasks = self._tasks
        budget = _FAIRNESS
        while True:
            if not budget:
                budget = _FAIRNESS
                await asyncio.sleep(0)
            if self._excess:
                self._excess -= 1
                return
            # ReadyQueue.pop(), inlined for the common case (best level not empty).
            level = levels[priorities[0]] if priorities else None
            handle = level.popleft() if level else ready.pop()
            if handle is None:
                if self._state is STOPPED:
                    return
                future = loop.create_future()
                self._idle.append(future)
                await future
                continue
            if handle._status is not QUEUED:
                self._stale_ready -= 1
                continue
            opts = handle._opts
            if self._bucket is not None or not opts.plain:
                wait = self._admit(handle, loop.time())
                if wait:
                    if wait > 0.0:
                        await self._wait_for_token(wait)
                    continue
            budget -= 1
            if not (handle._is_async and opts.fast) or self._middleware:
                await self._execute(handle, me)
                continue
            # The fast path: a coroutine function without timeout, key or middleware.
            self._begin_attempt(handle, me, loop.time())
            try:
                kwargs = handle._kwargs
                if kwargs:
                    value = await handle._fn(*handle._args, **kwargs)
                else:
                    value = await handle._fn(*handle._args)
            except BaseException as error:  # noqa: BLE001  # every outcome is recorded
                self._attempt_failed(handle, error, me)
                continue
            if handle._flags & SLOW_END:
                self._attempt_succeeded(handle, value, me)
                continue
            self._running -= 1
            now = loop.time()
            handle._status = SUCCEEDED
            handle._finished = now
            handle._value = value
            handle._args = ()
            handle._kwargs = NO_KWARGS
            if handle._flags & HAS_WAITERS:
                handle._wake()
            if self._slow_finish or not opts.plain:
                self._observe_finish(handle)
            finished.append(handle)
            if len(finished) > self._keep_count:
                del tasks[finished.popleft()._seq]
            if now >= self._prune_time:
                self._prune(now)
            if self._quiet and not self._live_count():
                self._wake_quiet()

    def _begin_attempt(self, handle: Handle, me: asyncio.Task[Any], now: float) -> None:
        """Move a queued handle to running on worker ``me`` (both execution paths)."""
        handle._status = RUNNING
        handle._worker = me
        handle._attempts += 1
        self._queued -= 1
        self._running += 1
        if self._space:
            self._wake_space()
        handle._started = now
        if self._on_started:
            Events.emit(self._on_started, handle)

    async def _execute(self, handle: Handle, me: asyncio.Task[Any]) -> None:
        """Run one attempt on the general path (sync code, timeouts, middleware, keys)."""
        opts = handle._opts
        self._begin_attempt(handle, me, self._now())
        try:
            value = await call_attempt(self, handle)
        except BaseException as error:  # noqa: BLE001  # every outcome is recorded
            self._attempt_failed(handle, error, me)
        else:
            self._attempt_succeeded(handle, value, me)
        finally:
            if opts.concurrency_key is not None:
                self._release_key(opts.concurrency_key)

    def _thread_pool(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(
                max_workers=self._max_threads, thread_name_prefix="taskmill"
            )
        return executor

    def _attempt_succeeded(self, handle: Handle, value: Any, me: asyncio.Task[Any]) -> None:
        if handle._flags & CANCEL_WORKER:
            me.uncancel()
        handle._value = value
        self._attempt_ended(handle, None)

    def _attempt_failed(self, handle: Handle, error: BaseException, me: asyncio.Task[Any]) -> None:
        if handle._flags & CANCEL_WORKER:
            me.uncancel()
        external = me.cancelling() > 0  # someone other than us cancels this worker
        if external and isinstance(error, asyncio.CancelledError):
            if handle._status is RUNNING:
                self._running -= 1
                self._finish(handle, CANCELLED, None, None)
            raise error
        self._attempt_ended(handle, error)
        if external:
            raise asyncio.CancelledError

    def _attempt_ended(self, handle: Handle, error: BaseException | None) -> None:
        """Record an attempt that did not take the plain success path."""
        if handle._status is not RUNNING:  # force-finished by stop() meanwhile
            return
        self._running -= 1
        flags = handle._flags
        if flags & ANY_CANCEL:
            self._finish(handle, CANCELLED, None, None)
            return
        if error is None and not flags & HAS_RUNNER:
            self._finish(handle, SUCCEEDED, handle._value, None)
            return
        if flags & HAS_RUNNER:
            runner = handle._runner
        else:
            handle._flags = flags | HAS_RUNNER
            runner = handle._runner = Runner(
                handle._opts.retry or _SINGLE, wall_offset=self._offset
            )
        started = handle._started
        assert started is not None
        now = self._now()
        try:
            error, again, delay = runner.step(error, started=started, finished=max(now, started))
        except Exception:
            logger.exception("the retry policy of task %s failed; the task fails", handle.id)
            again = False
        if error is None:
            self._finish(handle, SUCCEEDED, handle._value, None)
        elif again:
            self._retry_later(handle, error, now + delay)
        else:
            status = TIMED_OUT if isinstance(error, TaskTimeout) else FAILED
            self._finish(handle, status, None, error)

    def _retry_later(self, handle: Handle, error: BaseException, when: float) -> None:
        handle._error = error
        if self._state is not STARTED:  # stopping: a retry is abandoned, not run
            self._report_abandoned.append(handle)
            self._finish(handle, CANCELLED, None, error)
            return
        handle._status = RETRYING
        handle._when = when
        self._retrying += 1
        self._retries += 1
        self._schedule(when, handle)
        if self._events.retrying:
            Events.emit(self._events.retrying, handle)

    async def _sleep_main(self) -> None:
        loop = self._loop
        assert loop is not None
        timers = self._timers
        while True:
            when = timers.next_when()
            if when is None or when > loop.time():
                await self._sleep_until(when)
            elif not self._move_due(loop.time()):
                future = loop.create_future()
                self._space.append(future)
                await future

    async def _sleep_until(self, when: float | None) -> None:
        loop = self._loop
        assert loop is not None
        alarm = self._alarm = loop.create_future()
        timer = None
        if when is not None:
            self._armed = when
            timer = loop.call_at(when, set_none, alarm)
        try:
            await alarm
        finally:
            self._alarm = None
            self._armed = float("inf")
            if timer is not None:
                timer.cancel()

    def _move_due(self, now: float) -> bool:
        """Move due timer entries to the ready queue; False when out of room."""
        timers = self._timers
        while True:
            entry = timers.peek()
            if entry is None or entry[0] > now:
                return True
            handle = entry[1]
            status = handle._status
            if status is QUEUED:  # waited for a per-key rate token; already counted
                timers.pop()
                self._enqueue(handle)
                continue
            if status is not SCHEDULED and status is not RETRYING:
                timers.pop()
                self._stale_timers -= 1
                continue
            if self._queued >= self._queue_size:
                return False
            timers.pop()
            if status is SCHEDULED:
                self._scheduled -= 1
            else:
                self._retrying -= 1
            self._queued += 1
            handle._status = QUEUED
            self._enqueue(handle)
