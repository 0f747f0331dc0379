"""The state of the in-process engine and its bookkeeping: records, terminal transitions.

:class:`Records` owns every field of the engine (one ``__slots__`` for the whole
TaskManager) and the operations that are not on the worker's hot loop: ids and
timestamps, the terminal transition of a task (counters, waiters, unique keys,
result streams, events, retention), and cancellation of a task that is not
running. :class:`~taskmill._engine.Engine` adds intake, workers and the scheduler.

Retention: finished records are kept in finish order; beyond ``max_tasks`` the
oldest is forgotten at once, and records older than ``ttl`` are swept every
``ttl / 16`` (``get()`` treats an expired record as gone even before the sweep).
"""

# The engine and TaskHandle are friends: the handle is the engine's record.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import datetime as _dt
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from ._handle import (
    ANY_CANCEL,
    CANCEL,
    CANCEL_WORKER,
    HAS_WAITERS,
    IN_READY,
    IN_TIMERS,
    NO_KWARGS,
    TaskHandle,
    TaskStatus,
)
from ._limits import LimitsMixin
from ._middleware import Events, Middleware
from ._results import ResultStream, TaskResult
from ._scheduler import ReadyQueue, TimerHeap

if TYPE_CHECKING:
    from ._ratelimit import RateLimit, TokenBucket

__all__ = ["Handle", "Records"]

QUEUED: Final = TaskStatus.QUEUED
SCHEDULED: Final = TaskStatus.SCHEDULED
RUNNING: Final = TaskStatus.RUNNING
RETRYING: Final = TaskStatus.RETRYING
SUCCEEDED: Final = TaskStatus.SUCCEEDED
FAILED: Final = TaskStatus.FAILED
CANCELLED: Final = TaskStatus.CANCELLED
TIMED_OUT: Final = TaskStatus.TIMED_OUT

NEW: Final = "new"
STARTED: Final = "running"
STOPPING: Final = "stopping"
STOPPED: Final = "stopped"

_COMPACT_MIN: Final = 1024  # stale queue entries tolerated before compacting
Handle = TaskHandle[Any]


def set_none(future: asyncio.Future[None]) -> None:
    """Resolve ``future`` with None unless it is already done."""
    if not future.done():
        future.set_result(None)


class Records(LimitsMixin):
    """Engine state and bookkeeping (see the module doc)."""

    __slots__ = (
        "_alarm",
        "_armed",
        "_bucket",
        "_bucket_limit",
        "_concurrency",
        "_concurrency_limits",
        "_dropped",
        "_events",
        "_excess",
        "_executor",
        "_finished",
        "_idle",
        "_keep_count",
        "_keep_ttl",
        "_key_buckets",
        "_key_running",
        "_key_waiting",
        "_loop",
        "_max_threads",
        "_middleware",
        "_n_cancelled",
        "_n_failed",
        "_n_timed_out",
        "_offset",
        "_on_finished",
        "_on_started",
        "_on_submitted",
        "_prefix",
        "_prune_time",
        "_queue_size",
        "_queued",
        "_quiet",
        "_rate_limits",
        "_rate_lock",
        "_ready",
        "_ready_levels",
        "_report_abandoned",
        "_report_finished",
        "_retries",
        "_retrying",
        "_running",
        "_scheduled",
        "_seq",
        "_sleeper",
        "_slow_finish",
        "_space",
        "_stale_ready",
        "_stale_timers",
        "_state",
        "_streams",
        "_tasks",
        "_timers",
        "_unique",
        "_workers",
    )

    # -- configuration (set by TaskManager.__init__) ---------------------------
    _concurrency: int
    _queue_size: float  # math.inf when unbounded
    _bucket_limit: RateLimit | None
    _keep_count: float  # math.inf when unbounded
    _keep_ttl: float | None
    _max_threads: int | None

    def _init_state(self) -> None:
        self._state = NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0  # wall seconds minus loop seconds
        self._prefix = ""
        self._seq = 0
        self._ready: ReadyQueue[Handle] = ReadyQueue()
        self._ready_levels = self._ready._levels  # for the inlined push
        self._timers: TimerHeap[Handle] = TimerHeap()
        self._tasks: dict[int, Handle] = {}
        self._finished: deque[Handle] = deque()
        self._prune_time = 0.0
        self._unique: dict[str, Handle] = {}
        self._queued = self._scheduled = self._running = self._retrying = 0
        self._stale_ready = self._stale_timers = 0
        self._retries = self._dropped = 0
        self._n_failed = self._n_cancelled = self._n_timed_out = 0
        self._idle: deque[asyncio.Future[None]] = deque()
        self._space: deque[asyncio.Future[None]] = deque()
        self._quiet: list[asyncio.Future[None]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._excess = 0
        self._sleeper: asyncio.Task[None] | None = None
        self._alarm: asyncio.Future[None] | None = None
        self._armed = float("inf")
        self._executor: ThreadPoolExecutor | None = None
        self._bucket: TokenBucket | None = None
        self._rate_lock = asyncio.Lock()
        self._key_buckets: dict[str, TokenBucket] = {}
        self._key_running: dict[str, int] = {}
        self._key_waiting: dict[str, deque[Handle]] = {}
        self._middleware: list[Middleware] = []
        self._events = Events()
        self._on_submitted = self._events.submitted
        self._on_started = self._events.started
        self._on_finished = self._events.finished
        self._streams: list[ResultStream] = []
        self._report_finished: list[Handle] | None = None
        self._slow_finish = False  # streams, finished callbacks or a stop report need work
        self._report_abandoned: list[Handle] = []

    def _now(self) -> float:
        loop = self._loop
        assert loop is not None
        return loop.time()

    def _datetime(self, loop_time: float) -> _dt.datetime:
        """Convert a loop-clock time to an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(loop_time + self._offset, _dt.UTC)

    def _format_id(self, seq: int) -> str:
        return f"{self._prefix}{seq:08x}"

    def _lookup(self, task_id: str) -> Handle | None:
        prefix = self._prefix
        if not prefix or not task_id.startswith(prefix):
            return None
        try:
            seq = int(task_id[len(prefix) :], 16)
        except ValueError:
            return None
        handle = self._tasks.get(seq)
        if handle is None or self._format_id(seq) != task_id:
            return None
        return handle

    def _wake_worker(self) -> None:
        idle = self._idle
        while idle:
            future = idle.popleft()
            if not future.done():
                future.set_result(None)
                return

    def _wake_space(self) -> None:
        space = self._space
        while space:
            future = space.popleft()
            if not future.done():
                future.set_result(None)
                return

    def _schedule(self, when: float, handle: Handle) -> None:
        """Put a handle on the timer heap, waking the sleeper if it is now the earliest."""
        if self._timers.push(when, handle) and when < self._armed:
            alarm = self._alarm
            if alarm is not None and not alarm.done():
                alarm.set_result(None)

    def _finish(
        self, handle: Handle, status: TaskStatus, value: Any, error: BaseException | None
    ) -> None:
        """Move a handle to its terminal status (callers already fixed their counters)."""
        now = self._now()
        handle._status = status
        handle._finished = now
        handle._value = value
        handle._error = error
        handle._args = ()
        handle._kwargs = NO_KWARGS
        if status is CANCELLED:
            self._n_cancelled += 1
        elif status is FAILED:
            self._n_failed += 1
        elif status is TIMED_OUT:
            self._n_timed_out += 1
        if handle._flags & HAS_WAITERS:
            handle._wake()
        if self._slow_finish or not handle._opts.plain:
            self._observe_finish(handle)
        self._finished.append(handle)
        if len(self._finished) > self._keep_count:
            del self._tasks[self._finished.popleft()._seq]
        if now >= self._prune_time:
            self._prune(now)
        if self._quiet and not self._live_count():
            self._wake_quiet()

    def _live_count(self) -> int:
        """Tasks not finished yet."""
        return self._queued + self._scheduled + self._running + self._retrying

    def _refresh_flags(self) -> None:
        """Recompute the flag the success path checks (after subscribing or stopping)."""
        self._slow_finish = bool(
            self._streams or self._events.finished or self._report_finished is not None
        )

    def _observe_finish(self, handle: Handle) -> None:
        """The rarer parts of a terminal transition: unique keys, streams, events, stop."""
        key = handle._opts.unique_key
        if key is not None and self._unique.get(key) is handle:
            del self._unique[key]
        if self._streams:
            self._publish(handle)
        if self._on_finished:
            Events.emit(self._on_finished, handle)
        if self._report_finished is not None:
            self._report_finished.append(handle)

    def _prune(self, now: float) -> None:
        """Forget finished records older than the retention TTL (run every ttl/16)."""
        ttl = self._keep_ttl
        if ttl is None:
            self._prune_time = float("inf")
            return
        self._prune_time = now + ttl / 16
        finished = self._finished
        tasks = self._tasks
        horizon = now - ttl
        while finished and finished[0]._finished <= horizon:
            del tasks[finished.popleft()._seq]

    def _expired(self, handle: Handle) -> bool:
        """Whether a finished record is past the retention TTL (pruning is batched)."""
        ttl = self._keep_ttl
        return ttl is not None and handle.done() and handle._finished <= self._now() - ttl

    def _publish(self, handle: Handle) -> None:
        finished = handle._finished
        started: float | None = getattr(handle, "_started", None)
        result = TaskResult(
            id=handle.id,
            name=handle.name,
            status=handle._status,
            value=handle._value,
            error=handle.error,
            attempts=handle._attempts,
            submitted_at=self._datetime(handle._submitted),
            started_at=None if started is None else self._datetime(started),
            finished_at=self._datetime(finished),
        )
        for stream in self._streams:
            stream.push(result)

    def _wake_quiet(self) -> None:
        quiet, self._quiet = self._quiet, []
        for future in quiet:
            set_none(future)

    def _cancel_handle(self, handle: Handle) -> bool:
        status = handle._status
        if status is RUNNING:
            if handle._flags & ANY_CANCEL:
                return False
            worker = handle._worker
            if worker is not asyncio.current_task():
                handle._flags |= CANCEL | CANCEL_WORKER  # uncancelled when the attempt ends
                worker.cancel()
            else:
                handle._flags |= CANCEL  # it cancelled itself: it ends cancelled when done
            return True
        if status is QUEUED:
            self._queued -= 1
            where = getattr(handle, "_where", IN_READY)
            if where == IN_READY:
                self._stale_ready += 1
            elif where == IN_TIMERS:
                self._stale_timers += 1
            else:
                self._unpark_key_waiter(handle)
            if self._space:
                self._wake_space()
        elif status is SCHEDULED:
            self._scheduled -= 1
            self._stale_timers += 1
        elif status is RETRYING:
            self._retrying -= 1
            self._stale_timers += 1
        else:
            return False
        self._finish(handle, CANCELLED, None, handle.error)
        self._maybe_compact()
        return True

    def _maybe_compact(self) -> None:
        if self._stale_ready > _COMPACT_MIN and self._stale_ready * 2 > len(self._ready):
            self._ready.compact(lambda h: h._status is QUEUED)
            self._stale_ready = 0
        if self._stale_timers > _COMPACT_MIN and self._stale_timers * 2 > len(self._timers):
            self._timers.compact(lambda h: not h.done())
            self._stale_timers = 0
