"""The values the SQLite store takes and returns: statuses, new tasks, claims, records.

Every value is a frozen, slotted, keyword-only dataclass (or an enum). Times are
float seconds: ``*_at`` fields are POSIX wall-clock instants; ``lease_until`` is on
the host's monotonic clock (see docs/sqlite.md, "Clock rules").
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import final

from taskmill._backend import LIVE_STATUSES as LIVE
from taskmill._backend import TERMINAL_STATUSES as TERMINAL
from taskmill._backend import (
    CancelOutcome,
    Claim,
    Enqueued,
    ErrorText,
    ReclaimReport,
    Renewal,
    TaskRecord,
)
from taskmill._backend import NewTask as ProtocolNewTask
from taskmill._backend import RecordStatus as Status
from taskmill._errors import ConfigurationError

# The value types are taskmill.abc's own (one set for every backend); NewTask is the
# store's richer variant that also takes an aware datetime for ``run_at``.

__all__ = [
    "LIVE",
    "TERMINAL",
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "NewTask",
    "ReclaimReport",
    "Renewal",
    "Status",
    "StoreStatistics",
    "TaskRecord",
    "as_new_task",
    "wall_seconds",
]


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


def _name(value: object, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """One task to enqueue (what :meth:`SqliteStore.enqueue_many` takes).

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
        _name(self.name, "name")
        _name(self.queue, "queue")
        _name(self.unique_key, "unique_key", optional=True)
        _name(self.task_id, "task_id", optional=True)
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


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStatistics:
    """A snapshot of a store and its database.

    Attributes:
        path: The database file.
        schema_version: ``PRAGMA user_version`` of the database.
        synchronous: The ``PRAGMA synchronous`` mode of this store's connection.
        by_status: Task count per status (every status present, zeros included).
        by_queue: Per queue, task count per status (only non-zero counts).
        total: All stored tasks.
        running: Tasks currently claimed.
        expired_leases: Running tasks whose lease ended (the next reclaim takes them).
        dead_letters: Dead-lettered tasks.
        oldest_due: The earliest ``run_at`` among due, unclaimed tasks (POSIX seconds).
        lag: Seconds since ``oldest_due`` (0.0 when nothing is due).
        next_scheduled: The earliest ``run_at`` among not-yet-due tasks.
        size_bytes: Database size (page count times page size, WAL excluded).
        busy_retries: Transactions this store retried after ``database is locked``.
        malformed: Malformed rows this store dead-lettered while claiming.
    """

    path: str
    schema_version: int
    synchronous: str
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_queue: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    total: int = 0
    running: int = 0
    expired_leases: int = 0
    dead_letters: int = 0
    oldest_due: float | None = None
    lag: float = 0.0
    next_scheduled: float | None = None
    size_bytes: int = 0
    busy_retries: int = 0
    malformed: int = 0


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
