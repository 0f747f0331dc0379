r"""Every exception taskmill raises, in one tree.

::

    TaskmillError
    ├── ConfigurationError (ValueError)      bad parameters, at the call that passed them
    ├── WouldBlock                           a *_nowait call would have had to wait
    │   └── QueueFull                        a queue stayed at its bound (.queue, .bound)
    ├── StateError (RuntimeError)            the object is in the wrong state for the call
    │   ├── NotRunning                       not started yet, or already stopped
    │   └── AlreadyStarted                   started twice
    ├── TagExists (KeyError)                 a group already has a task with that tag
    ├── TaskNotFound (LookupError)           no task with that id
    ├── CannotBeStopped (TypeError)          the object has no stop()
    ├── CannotBeConfigured (TypeError)       the object has no configure()
    ├── WorkerExitedPrematurely              a worker returned while its siblings ran
    ├── StopTimeout (TimeoutError)           a stop did not finish within its timeout
    ├── RetryDirective                       raised *by a task* to steer its own retries
    │   ├── StopRetrying                     give up now with the wrapped error
    │   ├── RetryNow                         retry at once and reset the backoff
    │   └── ResetBackoff                     retry after the initial delay again
    ├── TaskTimeout (TimeoutError)           one attempt ran past its per-attempt timeout
    ├── RetriesExhausted                     every allowed attempt failed (or the deadline hit)
    ├── TaskFailed                           a managed task ended failed or timed out
    ├── TaskCancelled                        a managed task was cancelled (seen by awaiters)
    ├── UnknownTask (LookupError)            no task registered under that name / for that callable
    ├── BackendError                         a durable backend failed an operation (.backend)
    │   ├── StorageFull                      database or disk full; the operation wrote nothing
    │   └── BackendUnavailable (ConnectionError)  cannot open / reach / lock the storage in time
    └── PayloadError (ValueError)            a payload cannot be encoded or decoded (.reason)
        ├── PayloadTooLarge                  over a PayloadLimits bound (.size, .limit)
        └── SignatureError                   unsigned, forged or unknown-key payload refused

Cancellation of the *current* task is never part of this tree: it stays
:class:`asyncio.CancelledError`, is never wrapped, never swallowed and never counted
as a failure. Groups of failures are :class:`ExceptionGroup` s.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from ._retry import Attempt

__all__ = [
    "AlreadyStarted",
    "BackendError",
    "BackendUnavailable",
    "CannotBeConfigured",
    "CannotBeStopped",
    "ConfigurationError",
    "Next",
    "NotRunning",
    "PayloadError",
    "PayloadTooLarge",
    "QueueFull",
    "ResetBackoff",
    "RetriesExhausted",
    "RetryDirective",
    "RetryNow",
    "SignatureError",
    "StateError",
    "StopRetrying",
    "StopTimeout",
    "StorageFull",
    "TagExists",
    "TaskCancelled",
    "TaskFailed",
    "TaskNotFound",
    "TaskTimeout",
    "TaskmillError",
    "UnknownTask",
    "WorkerExitedPrematurely",
    "WouldBlock",
]


class TaskmillError(Exception):
    """The root of every exception taskmill raises."""


class ConfigurationError(TaskmillError, ValueError):
    """A parameter is invalid; raised by the call (or constructor) that received it."""


class WouldBlock(TaskmillError):
    """A ``*_nowait`` operation could not complete without waiting."""


class QueueFull(WouldBlock):
    """A durable queue stayed at its configured bound; nothing was stored.

    Attributes:
        queue: The queue.
        bound: Its bound on queued tasks.
        queued: How many were queued when the submit gave up.
    """

    def __init__(self, queue: str, bound: int, queued: int) -> None:
        super().__init__(f"queue {queue!r} is full: {queued} queued, bound {bound}")
        self.queue = queue
        self.bound = bound
        self.queued = queued


class StateError(TaskmillError, RuntimeError):
    """The object is not in a state that allows this call."""


class NotRunning(StateError):
    """The object has not been started, or has been stopped."""


class AlreadyStarted(StateError):
    """The object was already started and cannot be started again."""


class TagExists(TaskmillError, KeyError):
    """A group already holds a task with this tag (the original is left untouched).

    Attributes:
        tag: The duplicate tag.
    """

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag

    def __str__(self) -> str:
        return f"a task tagged {self.tag!r} already exists in this group"


class TaskNotFound(TaskmillError, LookupError):
    """No task with this id is known (it never existed or its record was pruned).

    Attributes:
        task_id: The id that was looked up.
    """

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"no task with id {self.task_id!r}"


class CannotBeStopped(TaskmillError, TypeError):
    """The object does not support being stopped."""


class CannotBeConfigured(TaskmillError, TypeError):
    """The object does not support being configured."""


class WorkerExitedPrematurely(TaskmillError):
    """A worker returned normally while it was supposed to run until cancelled.

    Attributes:
        worker: A description (usually the name) of the worker.
    """

    def __init__(self, worker: str = "worker") -> None:
        super().__init__(worker)
        self.worker = worker

    def __str__(self) -> str:
        return f"{self.worker} exited prematurely"


class StopTimeout(TaskmillError, TimeoutError):
    """Stopping did not finish within its timeout; what was still running is named.

    Attributes:
        timeout: The timeout in seconds.
        pending: Names of whatever had not stopped in time.
    """

    def __init__(self, timeout: float, pending: Sequence[str] = ()) -> None:
        super().__init__(timeout, tuple(pending))
        self.timeout = timeout
        self.pending = tuple(pending)

    def __str__(self) -> str:
        names = ", ".join(self.pending) if self.pending else "unknown"
        return f"stop did not finish within {self.timeout:g}s; still running: {names}"


@final
class Next(enum.IntEnum):
    """What a failed attempt asks the retry loop to do next (sc-bos ``task.Next``).

    Consulted only when an attempt fails; ignored on success.
    """

    NORMAL = 0
    """Retry after the next backoff delay (the default for any failure)."""
    STOP_NOW = 1
    """Do not retry; fail with this error now."""
    RETRY_NOW = 2
    """Retry immediately and reset the backoff to its start."""
    RESET_BACKOFF = 3
    """Retry after the initial delay, as if this were the first failure."""


class RetryDirective(TaskmillError):
    """Raised by a task to tell its retry loop what to do with ``error``.

    Use a subclass: ``raise StopRetrying(exc)``, ``raise RetryNow(exc)`` or
    ``raise ResetBackoff(exc)``. The wrapped error becomes ``__cause__`` and is what
    callers see; the directive itself never escapes the retry loop.

    Attributes:
        error: The failure being reported.
        next: The directive.
    """

    next: Next = Next.NORMAL

    def __init__(self, error: BaseException | str) -> None:
        if isinstance(error, str):
            error = TaskmillError(error)
        super().__init__(error)
        self.error = error
        self.__cause__ = error

    def __str__(self) -> str:
        return f"{self.next.name}: {self.error!r}"


class StopRetrying(RetryDirective):
    """Give up now: no further attempts; the wrapped error is raised as-is."""

    next = Next.STOP_NOW


class RetryNow(RetryDirective):
    """Retry immediately (no delay) and reset the backoff to its start."""

    next = Next.RETRY_NOW


class ResetBackoff(RetryDirective):
    """Retry after the initial backoff delay, restarting the backoff sequence."""

    next = Next.RESET_BACKOFF


class TaskTimeout(TaskmillError, TimeoutError):
    """One attempt ran past its per-attempt timeout (retryable by default).

    Attributes:
        timeout: The per-attempt timeout in seconds.
        attempt: The 1-based attempt number that timed out (0 when unknown).
    """

    def __init__(self, timeout: float, attempt: int = 0) -> None:
        super().__init__(timeout, attempt)
        self.timeout = timeout
        self.attempt = attempt

    def __str__(self) -> str:
        which = f"attempt {self.attempt}" if self.attempt else "attempt"
        return f"{which} timed out after {self.timeout:g}s"


class RetriesExhausted(TaskmillError):
    """Every allowed attempt failed, or the total deadline ran out.

    ``__cause__`` is the last attempt's error.

    Attributes:
        attempts: One :class:`~taskmill.Attempt` per attempt, in order.
        reason: ``"attempts"`` (``max_attempts`` reached) or ``"deadline"``.
        total_duration: Seconds from the first attempt's start to giving up.
    """

    def __init__(
        self, attempts: Sequence[Attempt], *, reason: str = "attempts", total_duration: float = 0.0
    ) -> None:
        super().__init__(len(attempts), reason)
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.reason = reason
        self.total_duration = total_duration
        if self.attempts and self.attempts[-1].error is not None:
            self.__cause__ = self.attempts[-1].error

    @property
    def last_error(self) -> BaseException | None:
        """The error of the final attempt."""
        return self.attempts[-1].error if self.attempts else None

    @property
    def errors(self) -> tuple[BaseException, ...]:
        """Every attempt's error, in order."""
        return tuple(a.error for a in self.attempts if a.error is not None)

    def __str__(self) -> str:
        count = len(self.attempts)
        noun = "attempt" if count == 1 else "attempts"
        why = " (deadline reached)" if self.reason == "deadline" else ""
        return f"gave up after {count} {noun}{why}: {self.last_error!r}"

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly summary for structured logs."""
        return {
            "error": str(self),
            "reason": self.reason,
            "attempts": len(self.attempts),
            "total_duration": self.total_duration,
            "history": [a.as_dict() for a in self.attempts],
        }


class TaskFailed(TaskmillError):
    """A managed task ended ``failed`` or ``timed_out``; raised by awaiting its handle.

    In memory ``__cause__`` is the original exception; from a durable backend only
    its text survives (``error_type``, ``message``, ``traceback``).

    Attributes:
        task_id: The task's id.
        name: The task's name.
        error_type: Qualified type name of the final error.
        message: ``str()`` of the final error.
        traceback: Formatted traceback text of the final error ("" when unknown).
        attempts: The attempt history, when known.
    """

    def __init__(
        self,
        task_id: str,
        name: str,
        *,
        error_type: str,
        message: str,
        traceback: str = "",
        attempts: Sequence[Attempt] = (),
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(task_id, name, error_type, message)
        self.task_id = task_id
        self.name = name
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return f"task {self.name!r} ({self.task_id}) failed: {self.error_type}: {self.message}"


class TaskCancelled(TaskmillError):
    """Awaiting a handle whose task was cancelled.

    This is not :class:`asyncio.CancelledError`: the *awaiting* task was not
    cancelled, the task it waited for was.

    Attributes:
        task_id: The task's id.
        name: The task's name.
    """

    def __init__(self, task_id: str, name: str) -> None:
        super().__init__(task_id, name)
        self.task_id = task_id
        self.name = name

    def __str__(self) -> str:
        return f"task {self.name!r} ({self.task_id}) was cancelled"


class UnknownTask(TaskmillError, LookupError):
    """No task is registered under this name, or for this callable.

    Nothing is ever imported to find a task: only names registered in a
    :class:`~taskmill.TaskRegistry` exist.

    Attributes:
        name: The name looked up (for a callable: the name it would get by default).
        hint: How to fix it ("" when there is nothing to add).
    """

    def __init__(self, name: str, *, hint: str = "") -> None:
        super().__init__(name)
        self.name = name
        self.hint = hint

    def __str__(self) -> str:
        text = f"no task registered as {self.name!r}"
        return f"{text}; {self.hint}" if self.hint else text


class PayloadError(TaskmillError, ValueError):
    """A payload, result or stored error could not be encoded or decoded.

    ``reason`` is a complete, bounded sentence fit to be stored as a dead-letter
    reason (it names the task and the argument when they are known).

    Attributes:
        reason: What is wrong, e.g. ``"argument 'when' of task 'mail.send': ..."``.
        task: The task name, when known.
        argument: The argument (``"0"`` for the first positional one, or the
            keyword name), when the problem is one argument.
    """

    def __init__(
        self, reason: str, *, task: str | None = None, argument: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task = task
        self.argument = argument

    def __str__(self) -> str:
        return self.reason


class PayloadTooLarge(PayloadError):
    """An encoded payload or result is bigger than its configured limit.

    Attributes:
        size: The size in bytes.
        limit: The limit in bytes.
    """

    def __init__(self, what: str, size: int, limit: int, *, task: str | None = None) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes", task=task)
        self.size = size
        self.limit = limit


class SignatureError(PayloadError):
    """A payload is unsigned, forged, tampered with, or signed with an unknown key id."""


class BackendError(TaskmillError):
    """A durable backend (SQLite, Redis) could not carry out an operation.

    The message says what failed; ``__cause__`` is the driver's own exception.

    Attributes:
        backend: Which backend failed (``"sqlite"``, ``"redis"``, or ``""``).
    """

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class StorageFull(BackendError):
    """The database or the disk under it is full; the failed operation wrote nothing."""


class BackendUnavailable(BackendError, ConnectionError):
    """The backend cannot be opened or reached, or stayed locked past its retry budget."""
