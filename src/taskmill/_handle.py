"""Task statuses, the :class:`TaskHandle` a submit returns, and :class:`TaskInfo` snapshots.

In memory the handle *is* the task's record: the manager updates it in place
(the manager and the handle are friends and share private attributes), so a
submit allocates one object, and awaiting a finished handle allocates nothing.
Timestamps are kept as event-loop clock floats and converted to aware UTC
datetimes only when read.
"""

# The handle is the manager's record; the two are friends.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import traceback
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, final

from ._errors import StateError, TaskCancelled, TaskFailed

if TYPE_CHECKING:
    from ._runner import Attempt, Runner
    from ._taskoptions import Resolved

__all__ = ["TaskHandle", "TaskInfo", "TaskStatus"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@final
class TaskStatus(enum.StrEnum):
    """Where a task is in its life; the last four are terminal (final).

    ``go-worker`` and ``marionette`` names map onto these (see docs/manager.md).
    """

    QUEUED = "queued"
    """Accepted and waiting for a worker (or for a rate/concurrency key)."""
    SCHEDULED = "scheduled"
    """Waiting for its ``delay``/``at`` time; takes no queue slot and no worker."""
    RUNNING = "running"
    """An attempt is executing."""
    RETRYING = "retrying"
    """An attempt failed; waiting out the backoff (no worker slot is held)."""
    SUCCEEDED = "succeeded"
    """Returned a value."""
    FAILED = "failed"
    """Raised, and no retry is left (or the error was not retryable)."""
    CANCELLED = "cancelled"
    """Cancelled by a user, or abandoned/cancelled by ``stop()``."""
    TIMED_OUT = "timed_out"
    """The final attempt ran past its per-attempt timeout."""

    @property
    def terminal(self) -> bool:
        """Whether this status is final."""
        return self in _TERMINAL


_TERMINAL: Final = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT}
)

NO_KWARGS: Final[Mapping[str, Any]] = MappingProxyType({})

# ``TaskHandle._flags`` bits: the rare states the success path must not miss.
CANCEL: Final = 1  # cancel() was called while it ran
CANCEL_WORKER: Final = 2  # ... and its worker's asyncio.Task was cancelled (to uncancel)
HAS_RUNNER: Final = 4  # an attempt failed: a retry Runner exists
HAS_WAITERS: Final = 8  # someone awaits the handle
KEY_RESERVED: Final = 16  # a per-key rate token is reserved for the next attempt
ANY_CANCEL: Final = CANCEL | CANCEL_WORKER
SLOW_END: Final = ANY_CANCEL | HAS_RUNNER  # an attempt's end needs the general path

# Where a QUEUED record sits (``TaskHandle._where``; unset means the ready queue).
IN_READY: Final = 0
IN_KEY_WAIT: Final = 1
IN_TIMERS: Final = 2


class Owner(Protocol):
    """What a handle needs from its manager (reached through its options; internal)."""

    def _cancel_handle(self, handle: TaskHandle[Any]) -> bool: ...

    def _datetime(self, loop_time: float) -> _dt.datetime: ...

    def _format_id(self, seq: int) -> str: ...


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """A snapshot of one task (what middleware, events and listings receive).

    Attributes:
        id: The task id.
        name: The task name.
        description: Its description ("" when none).
        priority: Its priority (lower runs first).
        status: Its status when the snapshot was taken.
        attempts: Attempts started so far (the current one included when running).
        submitted_at: When it was accepted (aware UTC).
        started_at: When its latest attempt started, if any.
        finished_at: When it reached its terminal status, if it has.
        scheduled_for: When it is (or was) due, for delayed, scheduled and retrying tasks.
        unique_key: Its unique key, if any.
        error: The latest error (the final one once failed), if any.
    """

    id: str
    name: str
    description: str
    priority: int
    status: TaskStatus
    attempts: int
    submitted_at: _dt.datetime
    started_at: _dt.datetime | None
    finished_at: _dt.datetime | None
    scheduled_for: _dt.datetime | None
    unique_key: str | None
    error: BaseException | None


def callable_name(fn: Callable[..., Any]) -> str:
    """Return a readable name for ``fn`` (qualified name, or its repr)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    func = getattr(fn, "func", None)  # functools.partial
    return callable_name(func) if callable(func) else repr(fn)


@final
class TaskHandle(Generic[T_co]):
    """A submitted task: its id, status, timestamps and attempts; await it for the result.

    ``await handle`` returns the task's value, or raises :class:`~taskmill.TaskFailed`
    (failed or timed out; ``__cause__`` is the original exception and ``attempts``
    the history) or :class:`~taskmill.TaskCancelled`. Cancelling the *awaiting*
    task never cancels the task itself; call :meth:`cancel` for that.

    Handles are created by the manager, never directly.
    """

    # Slots, but only the fields every task needs are set here (measured: creating
    # a handle is the biggest cost of a submit). The others (_worker, _started,
    # _finished, _when, _value, _error, _where, _runner, _waiters) are written when
    # first needed and read through getattr() defaults; _flags says which of the
    # rare states apply, so the success path checks one int.
    __slots__ = (
        "_args",
        "_attempts",
        "_error",
        "_finished",
        "_flags",
        "_fn",
        "_is_async",
        "_kwargs",
        "_opts",
        "_runner",
        "_seq",
        "_started",
        "_status",
        "_submitted",
        "_value",
        "_waiters",
        "_when",
        "_where",
        "_worker",
    )

    _worker: asyncio.Task[Any]
    _started: float
    _finished: float
    _when: float
    _value: Any
    _error: BaseException | None
    _where: int
    _runner: Runner
    _waiters: list[asyncio.Future[None]]

    def __init__(  # noqa: PLR0917  # the engine's hot path inlines this: keep them in step
        self,
        seq: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        opts: Resolved,
        submitted: float,
        is_async: bool,  # noqa: FBT001
    ) -> None:
        self._seq = seq
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._opts = opts
        self._submitted = submitted
        self._is_async = is_async
        self._status = TaskStatus.QUEUED
        self._attempts = 0
        self._flags = 0

    @property
    def _owner(self) -> Owner:
        return self._opts.owner

    # -- identity and state ------------------------------------------------------
    @property
    def id(self) -> str:
        """The task id (unique, short, sortable by submission within a manager)."""
        return self._owner._format_id(self._seq)

    @property
    def name(self) -> str:
        """The task name (option ``name``, else the callable's qualified name)."""
        return self._opts.name or callable_name(self._fn)

    @property
    def description(self) -> str:
        """The task description ("" when none was given)."""
        return self._opts.description

    @property
    def priority(self) -> int:
        """The priority: lower runs first."""
        return self._opts.priority

    @property
    def unique_key(self) -> str | None:
        """The unique key the task was submitted with, if any."""
        return self._opts.unique_key

    @property
    def status(self) -> TaskStatus:
        """The current status."""
        return self._status

    @property
    def attempts(self) -> int:
        """Attempts started so far."""
        return self._attempts

    def done(self) -> bool:
        """Return whether the task reached a terminal status."""
        return self._status in _TERMINAL

    # -- timestamps ----------------------------------------------------------------
    @property
    def submitted_at(self) -> _dt.datetime:
        """When the task was accepted (aware UTC)."""
        return self._owner._datetime(self._submitted)

    @property
    def started_at(self) -> _dt.datetime | None:
        """When the latest attempt started (aware UTC), or ``None``."""
        started: float | None = getattr(self, "_started", None)
        return None if started is None else self._owner._datetime(started)

    @property
    def finished_at(self) -> _dt.datetime | None:
        """When the task reached its terminal status (aware UTC), or ``None``."""
        finished: float | None = getattr(self, "_finished", None)
        return None if finished is None else self._owner._datetime(finished)

    @property
    def scheduled_for(self) -> _dt.datetime | None:
        """When a delayed, scheduled or retrying task is due (aware UTC), or ``None``."""
        when: float | None = getattr(self, "_when", None)
        return None if when is None else self._owner._datetime(when)

    def loop_times(self) -> tuple[float, float | None, float | None]:
        """Return ``(submitted, started, finished)`` on the event loop's clock."""
        return (
            self._submitted,
            getattr(self, "_started", None),
            getattr(self, "_finished", None),
        )

    # -- outcome --------------------------------------------------------------------
    @property
    def error(self) -> BaseException | None:
        """The latest error (the original exception; the final one once failed)."""
        error: BaseException | None = getattr(self, "_error", None)
        return error

    @property
    def history(self) -> tuple[Attempt, ...]:
        """The recorded attempts (empty until an attempt fails; then every attempt)."""
        return self._runner.history if self._flags & HAS_RUNNER else ()

    def result(self) -> T_co:
        """Return the value of a finished task without waiting.

        Raises:
            TaskFailed: The task failed or timed out.
            TaskCancelled: The task was cancelled.
            StateError: The task has not finished yet.
        """
        status = self._status
        if status is TaskStatus.SUCCEEDED:
            value: T_co = self._value
            return value
        if status is TaskStatus.CANCELLED:
            raise TaskCancelled(self.id, self.name)
        if status is TaskStatus.FAILED or status is TaskStatus.TIMED_OUT:
            raise self._failure()
        raise StateError(f"task {self.id} has not finished (status: {status})")

    def _failure(self) -> TaskFailed:
        error = self.error
        assert error is not None
        return TaskFailed(
            self.id,
            self.name,
            error_type=type(error).__qualname__,
            message=str(error),
            traceback="".join(traceback.format_exception(error)),
            attempts=self.history,
            cause=error,
        )

    def __await__(self) -> Generator[Any, None, T_co]:
        if self._status not in _TERMINAL:
            yield from self._wait().__await__()
        return self.result()

    async def wait(self) -> TaskStatus:
        """Wait until the task is finished and return its terminal status (never raises)."""
        if self._status not in _TERMINAL:
            await self._wait()
        return self._status

    async def _wait(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._flags & HAS_WAITERS:
            self._waiters.append(future)
        else:
            self._waiters = [future]
            self._flags |= HAS_WAITERS
        try:
            await future
        finally:
            if not future.done() or future.cancelled():
                self._drop_waiter(future)

    def _drop_waiter(self, future: asyncio.Future[None]) -> None:
        if self._flags & HAS_WAITERS and future in self._waiters:
            self._waiters.remove(future)

    def _wake(self) -> None:
        """Resolve every waiter (called once, at the terminal transition)."""
        if self._flags & HAS_WAITERS:
            self._flags &= ~HAS_WAITERS
            waiters, self._waiters = self._waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    # -- control ----------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel the task.

        A queued, scheduled or retrying task finishes as cancelled at once; a
        running one is cancelled and ends cancelled when its code stops.

        Returns:
            ``False`` if it had already finished (or a cancel is already under way).
        """
        return self._owner._cancel_handle(self)

    def info(self) -> TaskInfo:
        """Return a :class:`TaskInfo` snapshot of the task."""
        return TaskInfo(
            id=self.id,
            name=self.name,
            description=self.description,
            priority=self.priority,
            status=self._status,
            attempts=self._attempts,
            submitted_at=self.submitted_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            scheduled_for=self.scheduled_for,
            unique_key=self.unique_key,
            error=self.error,
        )

    def __repr__(self) -> str:
        return (
            f"<TaskHandle {self.id} {self.name!r} status={self._status.value} "
            f"attempts={self._attempts} priority={self.priority}>"
        )
