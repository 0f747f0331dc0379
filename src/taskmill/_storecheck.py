"""What the durable stores (``taskmill.sqlite``, ``taskmill.redis``) share.

The argument checks of their public calls (each raises
:class:`~taskmill.ConfigurationError` naming the argument, at the call that passed
it), the store-side :class:`NewTask` (which also takes an aware datetime for
``run_at``), and :class:`StoreFacade`: the calls whose checks and contract are the
same for every store. What differs (how a store writes) stays in the stores.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import math
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, final

from ._backend import ErrorText, RecordStatus, TaskRecord
from ._backend import NewTask as ProtocolNewTask
from ._errors import ConfigurationError, StateError, TaskNotFound

__all__ = [
    "Failure",
    "NewTask",
    "StoreFacade",
    "as_new_task",
    "check_purge",
    "check_result",
    "count",
    "queue_names",
    "seconds",
    "status_items",
    "text",
    "wall_seconds",
]

Failure = Literal["failed", "timed_out"]
"""The statuses a failed attempt without a retry ends in."""
_FAILED: frozenset[str] = frozenset({"failed", "timed_out"})


def seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as finite float seconds, > 0 (or >= 0 with ``allow_zero``)."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (allow_zero and value == 0))
    ):
        return float(value)
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigurationError(f"{what} must be a finite number of seconds {bound}: {value!r}")


def count(value: object, what: str, minimum: int) -> int:
    """Return ``value`` when it is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def text(value: object, what: str) -> str:
    """Return ``value`` when it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _queue_name(name: object) -> str:
    return text(name, "queue name")


def queue_names(
    queues: Sequence[str], check: Callable[[object], str] = _queue_name
) -> tuple[str, ...]:
    """Return the distinct queue names of a claim, in order (a single string is one name).

    Args:
        queues: The names the caller passed.
        check: Validates (and returns) one name; the default wants a non-empty string.
    """
    names = (queues,) if isinstance(queues, str) else tuple(queues)
    if not names:
        raise ConfigurationError("claim needs at least one queue name")
    return tuple(dict.fromkeys(check(name) for name in names))


def status_items(
    status: RecordStatus | str | Iterable[RecordStatus | str] | None,
) -> builtins.list[RecordStatus] | None:
    """Return the statuses a listing asks for (``None``: any status)."""
    if status is None:
        return None
    items = [status] if isinstance(status, str) else builtins.list(status)
    try:
        return [RecordStatus(item) for item in items]
    except ValueError as exc:
        raise ConfigurationError(f"unknown status in {status!r}") from exc


def check_result(result: object) -> None:
    """Refuse results that are not bytes or ``None``."""
    if result is not None and not isinstance(result, bytes):
        raise ConfigurationError(f"result must be bytes or None, got {type(result)}")


def check_purge(task_ids: Sequence[str], *, everything: bool) -> None:
    """Refuse a ``purge_dead`` call with both or neither of ids and ``everything``."""
    if bool(task_ids) == everything:
        raise ConfigurationError("purge_dead takes task ids, or everything=True (not both)")


def wall_seconds(when: object, what: str) -> float:
    """Return POSIX seconds for ``when`` (aware datetime or finite float seconds).

    Raises:
        ConfigurationError: for naive datetimes and non-finite or non-numeric values.
    """
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ConfigurationError(f"{what} must be an aware datetime, got naive {when!r}")
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ConfigurationError(f"{what} must be POSIX seconds or an aware datetime: {when!r}")
    return float(when)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """One task to enqueue (what a store's ``enqueue_many`` takes).

    Attributes:
        payload: Opaque bytes (the store never looks inside).
        name: The registered task name.
        queue: The queue it waits in.
        priority: Lower runs first; FIFO (enqueue order) within a priority.
        run_at: When it becomes due: POSIX seconds or an aware datetime; ``None`` = now.
        unique_key: At most one live (non-terminal) task holds a key at a time.
        task_id: Its id; ``None`` generates one. Enqueueing an existing id is a no-op
            that returns ``created=False`` (ids double as idempotency keys).

    Raises:
        ConfigurationError: at construction, for any invalid field.
    """

    payload: bytes
    name: str
    queue: str = "default"
    priority: int = 0
    run_at: float | _dt.datetime | None = None
    unique_key: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes):
            raise ConfigurationError(f"payload must be bytes, got {type(self.payload).__name__}")
        text(self.name, "name")
        text(self.queue, "queue")
        if self.unique_key is not None:
            text(self.unique_key, "unique_key")
        if self.task_id is not None:
            text(self.task_id, "task_id")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ConfigurationError(f"priority must be an int, got {self.priority!r}")
        if not -(2**63) <= self.priority < 2**63:
            raise ConfigurationError(f"priority must fit in 64 bits, got {self.priority!r}")
        if self.run_at is not None:
            object.__setattr__(self, "run_at", wall_seconds(self.run_at, "run_at"))

    @property
    def due(self) -> float | None:
        """``run_at`` as POSIX seconds (``None`` = now)."""
        return None if self.run_at is None else wall_seconds(self.run_at, "run_at")


def as_new_task(task: object) -> NewTask:
    """Accept the store's NewTask or the protocol's (validated on conversion)."""
    if isinstance(task, NewTask):
        return task
    if isinstance(task, ProtocolNewTask):
        return NewTask(
            payload=task.payload,
            name=task.name,
            queue=task.queue,
            priority=task.priority,
            run_at=task.run_at,
            unique_key=task.unique_key,
            task_id=task.task_id,
        )
    raise ConfigurationError(f"enqueue_many takes NewTask items, got {task!r}")


class StoreFacade:
    """The store calls whose checks and contract every durable store shares.

    A store implements the abstract methods; :meth:`nack` validates its arguments
    here and hands a failed attempt to the store's ``_record_failure``.
    """

    __slots__ = ()

    @abstractmethod
    async def close(self) -> None:
        """Close the store."""

    @abstractmethod
    async def get(self, task_id: str) -> TaskRecord | None:
        """Return the task's record, or ``None``."""

    @abstractmethod
    async def list(
        self,
        *,
        status: RecordStatus | str | Iterable[RecordStatus | str] | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records, optionally by status(es) and queue."""

    @abstractmethod
    async def ack_cancelled(self, task_id: str, token: str) -> bool:
        """Finish a claim as ``cancelled``."""

    @abstractmethod
    async def _record_failure(
        self,
        task_id: str,
        token: str,
        *,
        error: ErrorText,
        due: float | None,
        status: Failure,
    ) -> bool:
        """Store a checked failed attempt (``due``: POSIX seconds of the retry, or none)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def nack(
        self,
        task_id: str,
        token: str,
        *,
        error: ErrorText,
        retry_at: float | _dt.datetime | None = None,
        status: Literal["failed", "timed_out", "cancelled"] = "failed",
    ) -> bool:
        """Record a failed attempt; ``False`` if the token is stale.

        With ``retry_at`` the task waits (``retrying``) until then and its attempt
        number goes up by one; without it the task ends with ``status``. A pending
        cancel request ends it ``cancelled`` instead; ``status="cancelled"`` is
        :meth:`ack_cancelled` (the protocol's spelling).
        """
        if not isinstance(error, ErrorText):
            raise ConfigurationError(f"error must be an ErrorText, got {error!r}")
        if status == "cancelled" and retry_at is None:
            return await self.ack_cancelled(task_id, token)
        if status not in _FAILED:
            raise ConfigurationError(f"status must be 'failed' or 'timed_out', got {status!r}")
        due = None if retry_at is None else wall_seconds(retry_at, "retry_at")
        fail: Failure = "timed_out" if status == "timed_out" else "failed"
        return await self._record_failure(task_id, token, error=error, due=due, status=fail)

    async def result(self, task_id: str) -> TaskRecord:
        """Return the terminal record of a finished task, without waiting.

        Raises:
            TaskNotFound: when no such task exists.
            StateError: when it has not finished yet.
        """
        record = await self.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        if not record.terminal:
            raise StateError(f"task {task_id} has not finished (status: {record.status})")
        return record
