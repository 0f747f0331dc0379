"""The :class:`TaskManager`: priorities, limits, scheduling, results and cancellation.

See docs/manager.md for the how-to. Semantics chosen here (DESIGN.md "TaskManager"):

* lower priority numbers run first, FIFO within a priority;
* ``queue_size`` bounds *queued* tasks (ready to run, or held back by a key limit).
  ``submit`` waits for room, ``submit_nowait`` raises :class:`~taskmill.WouldBlock`,
  ``submit_within(timeout, ...)`` waits at most ``timeout``. Delayed/scheduled and
  retrying tasks do not count against it (they cost memory only); when they come
  due they enter the queue as room allows;
* a second submit with a live ``unique_key`` returns the existing handle;
* ``stop(graceful=True)`` closes intake, abandons scheduled and retry-waiting tasks
  and drains queued and running ones; ``stop(graceful=False)`` (or a graceful stop
  whose ``timeout`` expires) also abandons queued tasks and cancels running ones.
  Abandoned tasks end ``cancelled`` and are listed in the :class:`StopReport`. A
  stopped manager cannot be restarted;
* a task's own ``CancelledError`` (not caused by a cancel of that task) and
  ``BaseException`` subclasses such as ``KeyboardInterrupt`` and ``SystemExit`` are
  recorded as that task's failure (never retried) and never reach the manager.
"""

# TaskManager drives its own engine and the handles it created.
# ruff: noqa: SLF001

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar, final

from ._errors import ConfigurationError, TaskNotFound
from ._handle import TaskHandle, TaskStatus
from ._middleware import EventCallback, Middleware, check_middleware
from ._ratelimit import RateLimit
from ._records import STARTED, STOPPED, STOPPING, Handle
from ._reports import ManagerStatistics
from ._results import DropPolicy, ResultStream
from ._retry import Retry
from ._stopping import StoppableEngine, seconds_or_none
from ._submit import SubmitMethods, TaskSubmitter
from ._taskoptions import Resolved, TaskOptions

__all__ = ["Retention", "TaskManager"]


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class Retention:
    """How long finished task records (and their results) stay available to ``get()``.

    The oldest records are pruned first; a pruned id raises
    :class:`~taskmill.TaskNotFound`. Handles you still hold keep working.

    Args:
        max_tasks: Keep at most this many finished records (``None`` = no count limit).
        ttl: Drop records this many seconds after they finished (``None`` = no age limit).

    Raises:
        ConfigurationError: A limit is not positive.
    """

    max_tasks: int | None = 10_000
    ttl: float | None = 3600.0

    def __post_init__(self) -> None:
        count: object = self.max_tasks
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 0
        ):
            raise ConfigurationError(f"max_tasks must be an int >= 0 or None, got {count!r}")
        if not seconds_or_none(self.ttl):
            raise ConfigurationError(f"ttl must be a number >= 0 or None, got {self.ttl!r}")


_NO_OPTIONS: Final = TaskOptions()
T = TypeVar("T")


def _first(*values: T | None) -> T | None:
    """Return the first value that is not None (the option merge rule)."""
    for value in values:
        if value is not None:
            return value
    return None


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_limits(rate_limits: Mapping[str, RateLimit], concurrency: Mapping[str, int]) -> None:
    rates: Iterable[tuple[object, object]] = rate_limits.items()
    for key, limit in rates:
        if not isinstance(key, str) or not isinstance(limit, RateLimit):
            raise ConfigurationError(f"rate_limits maps str keys to RateLimit, got {key!r}")
    counts: Iterable[tuple[object, object]] = concurrency.items()
    for key, count in counts:
        if not isinstance(key, str):
            raise ConfigurationError(f"concurrency_limits keys must be str, got {key!r}")
        _positive_int(f"concurrency_limits[{key!r}]", count)


@final
class TaskManager(StoppableEngine, SubmitMethods):
    """Runs submitted tasks with priorities, limits, scheduling, retries and results.

    Use it as an async context manager (graceful stop on exit, immediate stop if
    the block raised) or call :meth:`start` and :meth:`stop`.

    Args:
        concurrency: Tasks running at once (resizable: :attr:`concurrency`).
        queue_size: Bound on queued tasks (``None`` = unbounded).
        rate_limit: Global token bucket; a token is taken at each execution start,
            retries included.
        rate_limits: Per-key token buckets for tasks with ``rate_key``; the key
            ``"*"`` applies to every key not listed.
        concurrency_limits: Per-key concurrency for tasks with ``concurrency_key``;
            ``"*"`` applies to every key not listed.
        retry: Default retry policy (default ``None``: one attempt, no retries).
        timeout: Default per-attempt timeout in seconds (``None``: none).
        priority: Default priority (lower runs first).
        retention: How many finished records to keep, and for how long.
        max_threads: Size of the thread pool for sync callables (default: the
            standard library's default).

    Raises:
        ConfigurationError: A parameter is invalid.

    Example:
        >>> async def main():
        ...     async with TaskManager(concurrency=8) as mgr:
        ...         handle = await mgr.submit(asyncio.sleep, 0, "done")
        ...         return await handle
    """

    __slots__ = ("_defaults", "_retention", "_submit_engine", "_submit_options")

    def __init__(
        self,
        *,
        concurrency: int = 10,
        queue_size: int | None = 10_000,
        rate_limit: RateLimit | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        concurrency_limits: Mapping[str, int] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        priority: int = 0,
        retention: Retention | None = None,
        max_threads: int | None = None,
    ) -> None:
        self._concurrency = _positive_int("concurrency", concurrency)
        self._queue_size = (
            math.inf if queue_size is None else _positive_int("queue_size", queue_size)
        )
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(f"rate_limit must be a RateLimit or None, got {rate_limit!r}")
        self._bucket_limit = rate_limit
        self._rate_limits = dict(rate_limits or {})
        self._concurrency_limits = dict(concurrency_limits or {})
        _check_limits(self._rate_limits, self._concurrency_limits)
        retention = retention if retention is not None else Retention()
        if not isinstance(retention, Retention):
            raise ConfigurationError(f"retention must be a Retention, got {retention!r}")
        self._retention = retention
        self._keep_count = math.inf if retention.max_tasks is None else retention.max_tasks
        self._keep_ttl = retention.ttl
        self._max_threads = (
            None if max_threads is None else _positive_int("max_threads", max_threads)
        )
        self._defaults = TaskOptions(priority=priority, retry=retry, timeout=timeout)
        self._init_state()
        self._submit_engine = self
        self._submit_options = Resolved(self._defaults, self)
        self._init_lifecycle()

    def __repr__(self) -> str:
        return (
            f"<TaskManager {self._state} concurrency={self._concurrency} queued={self._queued} "
            f"scheduled={self._scheduled} running={self._running} retrying={self._retrying}>"
        )

    async def __aenter__(self) -> TaskManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(graceful=exc_type is None)

    # -- submitting ----------------------------------------------------------------------
    def with_options(
        self,
        options: TaskOptions | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        priority: int | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        at: _dt.datetime | None = None,
        unique_key: str | None = None,
        rate_key: str | None = None,
        concurrency_key: str | None = None,
    ) -> TaskSubmitter:
        """Return a :class:`TaskSubmitter` whose tasks get these options.

        Options given as keywords override those in ``options``; anything left
        ``None`` falls back to the manager's defaults (see :class:`TaskOptions`).

        Raises:
            ConfigurationError: An option is invalid, or a ``rate_key`` /
                ``concurrency_key`` has no configured limit.
        """
        base: object = options if options is not None else _NO_OPTIONS
        if not isinstance(base, TaskOptions):
            raise ConfigurationError(f"options must be a TaskOptions, got {base!r}")
        if at is None and delay is None:  # a keyword `at` or `delay` replaces both
            at, delay = base.at, base.delay
        defaults = self._defaults
        merged = TaskOptions(
            name=_first(name, base.name),
            description=_first(description, base.description),
            priority=_first(priority, base.priority, defaults.priority),
            retry=_first(retry, base.retry, defaults.retry),
            timeout=_first(timeout, base.timeout, defaults.timeout),
            delay=delay,
            at=at,
            unique_key=_first(unique_key, base.unique_key),
            rate_key=_first(rate_key, base.rate_key),
            concurrency_key=_first(concurrency_key, base.concurrency_key),
        )
        self._check_keys(merged)
        return TaskSubmitter(self, Resolved(merged, self))

    def _check_keys(self, options: TaskOptions) -> None:
        key = options.rate_key
        if key is not None and key not in self._rate_limits and "*" not in self._rate_limits:
            raise ConfigurationError(f"rate_key {key!r} has no limit in rate_limits")
        key = options.concurrency_key
        limits = self._concurrency_limits
        if key is not None and key not in limits and "*" not in limits:
            raise ConfigurationError(f"concurrency_key {key!r} has no limit")

    # -- looking up and cancelling ---------------------------------------------------------
    def get(self, task_id: str) -> TaskHandle[Any]:
        """Return the handle of a live or retained task.

        Raises:
            TaskNotFound: No such task (never submitted here, or its record was pruned).
        """
        handle = self._lookup(task_id)
        if handle is None or self._expired(handle):
            raise TaskNotFound(task_id)
        return handle

    def tasks(
        self, status: TaskStatus | Iterable[TaskStatus] | None = None
    ) -> list[TaskHandle[Any]]:
        """Return handles of live and retained tasks in submission order, optionally filtered."""
        if status is None:
            return list(self._tasks.values())
        wanted = {status} if isinstance(status, TaskStatus) else set(status)
        return [h for h in self._tasks.values() if h._status in wanted]

    def cancel(self, task_id: str) -> bool:
        """Cancel a task by id (see :meth:`TaskHandle.cancel`).

        Returns:
            ``False`` if it had already finished.

        Raises:
            TaskNotFound: No such task.
        """
        return self._cancel_handle(self.get(task_id))

    def cancel_all(self) -> int:
        """Cancel every task that has not finished; return how many were cancelled."""
        live: list[Handle] = [h for h in self._tasks.values() if not h.done()]
        return sum(self._cancel_handle(h) for h in live)

    # -- limits -----------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        """How many tasks may run at once; assign to resize while running.

        Growing starts waiting tasks at once; shrinking lets running tasks finish
        (the surplus workers leave after their current task).
        """
        return self._concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        value = _positive_int("concurrency", value)
        self._concurrency = value
        if self._state is not STARTED and self._state is not STOPPING:
            return
        alive = len(self._workers) - self._excess
        if value > alive:
            revived = min(self._excess, value - alive)
            self._excess -= revived
            for _ in range(value - alive - revived):
                self._spawn_worker()
        elif value < alive:
            self._excess += alive - value
            self._wake_all(self._idle)
            self._idle.clear()

    # -- observing ------------------------------------------------------------------------
    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware; the first one added is the outermost. Returns it (decorator use)."""
        self._middleware.append(check_middleware(middleware))
        return middleware

    def on(self, event: str, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(TaskInfo)`` on ``event``; returns a function that unsubscribes.

        Events: ``"submitted"``, ``"started"`` (each attempt), ``"retrying"``,
        ``"finished"``. Callbacks are synchronous; their exceptions are logged.

        Raises:
            ConfigurationError: Unknown event or non-callable callback.
        """
        remove = self._events.add(event, callback)
        self._refresh_flags()

        def unsubscribe() -> None:
            remove()
            self._refresh_flags()

        return unsubscribe

    def results(self, buffer: int = 100, policy: DropPolicy = "drop_oldest") -> ResultStream:
        """Subscribe to task results (one per terminal transition, from now on).

        Args:
            buffer: Results held for a slow reader.
            policy: ``"drop_oldest"`` or ``"drop_newest"`` when the buffer is full.

        Returns:
            An async iterator (and async context manager); it ends after the
            manager stops and its buffer is read.
        """
        stream = ResultStream(buffer, policy, on_close=self._unsubscribe, on_drop=self._on_drop)
        if self._state is STOPPED:
            stream.end()
        else:
            self._streams.append(stream)
            self._refresh_flags()
        return stream

    def _unsubscribe(self, stream: ResultStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
            self._refresh_flags()

    def _on_drop(self) -> None:
        self._dropped += 1

    def statistics(self) -> ManagerStatistics:
        """Return a snapshot of queues, outcomes, limits and retention."""
        now = self._now() if self._loop is not None else 0.0
        bucket = self._bucket
        return ManagerStatistics(
            state=self._state,
            queued=self._queued,
            scheduled=self._scheduled,
            running=self._running,
            retrying=self._retrying,
            submitted=self._seq,
            succeeded=self._seq
            - self._live_count()
            - self._n_failed
            - self._n_cancelled
            - self._n_timed_out,
            failed=self._n_failed,
            cancelled=self._n_cancelled,
            timed_out=self._n_timed_out,
            retries=self._retries,
            concurrency=self._concurrency,
            workers=len(self._workers) - self._excess,
            queue_size=None if math.isinf(self._queue_size) else int(self._queue_size),
            rate_tokens=None if bucket is None else bucket.tokens(now),
            key_tokens={k: b.tokens(now) for k, b in self._key_buckets.items()},
            key_running=dict(self._key_running),
            key_waiting={k: len(w) for k, w in self._key_waiting.items()},
            results_dropped=self._dropped,
            subscribers=len(self._streams),
            retained=len(self._finished),
            records=len(self._tasks),
        )
