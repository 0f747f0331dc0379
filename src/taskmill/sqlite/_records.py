"""The values the SQLite store takes and returns: statuses, new tasks, claims, records.

Every value is a frozen, slotted, keyword-only dataclass (or an enum). Times are
float seconds: ``*_at`` fields are POSIX wall-clock instants; ``lease_until`` is on
the host's monotonic clock (see docs/sqlite.md, "Clock rules").
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
import traceback as _traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, final

from taskmill._errors import ConfigurationError

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
    "wall_seconds",
]


@final
class Status(enum.StrEnum):
    """Where a stored task is; the last five are terminal.

    The first eight mirror :class:`taskmill.TaskStatus`; ``dead`` is the
    dead-letter state (listable, requeueable, purgeable).
    """

    QUEUED = "queued"
    """Due and waiting to be claimed."""
    SCHEDULED = "scheduled"
    """Enqueued with a future ``run_at``; becomes ``queued`` once due."""
    RUNNING = "running"
    """Claimed by a worker that holds a lease and a fencing token."""
    RETRYING = "retrying"
    """An attempt failed (``nack`` with ``retry_at``); waits for its retry time."""
    SUCCEEDED = "succeeded"
    """Acknowledged with a result."""
    FAILED = "failed"
    """Its final attempt failed."""
    CANCELLED = "cancelled"
    """Cancelled before it ran, or its owner honoured a cancel request."""
    TIMED_OUT = "timed_out"
    """Its final attempt timed out."""
    DEAD = "dead"
    """Dead-lettered: its workers kept dying, its row was malformed, or a worker said so."""

    @property
    def terminal(self) -> bool:
        """Whether no further transition happens (except ``requeue_dead`` for ``dead``)."""
        return self in TERMINAL


TERMINAL: Final = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT, Status.DEAD}
)
LIVE: Final = frozenset({Status.QUEUED, Status.SCHEDULED, Status.RUNNING, Status.RETRYING})


@final
class Renewal(enum.Enum):
    """What :meth:`SqliteStore.renew` found; truthy while the lease is still held."""

    HELD = "held"
    """The lease was extended."""
    CANCEL_REQUESTED = "cancel_requested"
    """The lease was extended, and someone asked for this task to be cancelled."""
    LOST = "lost"
    """The token is stale: the task was reclaimed, finished or released. Stop working on it."""

    def __bool__(self) -> bool:
        return self is not Renewal.LOST


@final
class CancelOutcome(enum.StrEnum):
    """What :meth:`SqliteStore.cancel` did."""

    CANCELLED = "cancelled"
    """It had not started: it is now ``cancelled``."""
    REQUESTED = "requested"
    """It is running: its owner sees the request on its next renew."""
    FINISHED = "finished"
    """It was already terminal: nothing changed."""


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
class Enqueued:
    """The outcome of one enqueue.

    Attributes:
        task_id: The new task's id, or the id of the live task that holds the same
            unique key, or the given ``task_id`` when it already existed.
        created: Whether this call created the task.
    """

    task_id: str
    created: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorText:
    """A failure as text: errors are stored as strings, never reconstructed objects.

    Attributes:
        type: The error's qualified type name.
        message: ``str()`` of the error.
        traceback: Formatted traceback ("" when unknown).
    """

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> ErrorText:
        """Describe ``error`` (type, message, formatted traceback)."""
        kind = type(error)
        qualified = f"{kind.__module__}.{kind.__qualname__}"
        if kind.__module__ == "builtins":
            qualified = kind.__qualname__
        text = "".join(_traceback.format_exception(error))
        return cls(type=qualified, message=str(error), traceback=text)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """One delivery of a task to a worker.

    Attributes:
        task_id: The task's id.
        token: The fencing token of this delivery; every later write needs it.
        payload: The task's bytes.
        name: The task name.
        queue: Its queue.
        priority: Its priority.
        attempt: The attempt number (1 first; ``nack`` with ``retry_at`` adds one).
        deliveries: How many times it has been claimed, this time included.
        worker_lost: How many earlier deliveries ended with a lost worker.
        enqueued_at: When it was enqueued (POSIX seconds).
        run_at: When it was due (POSIX seconds).
        unique_key: Its unique key, if any.
        lease_until: When the lease ends, on the host's monotonic clock.
    """

    task_id: str
    token: str
    payload: bytes
    name: str
    queue: str
    priority: int
    attempt: int
    deliveries: int
    worker_lost: int
    enqueued_at: float
    run_at: float
    unique_key: str | None
    lease_until: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord:
    """A snapshot of one stored task.

    Attributes:
        task_id: Its id.
        name: The task name.
        queue: Its queue.
        priority: Its priority.
        status: Its status.
        payload: Its bytes.
        attempt: The current (or final) attempt number.
        deliveries: How many times it was claimed.
        worker_lost: How many deliveries ended with a lost worker.
        enqueued_at: When it was enqueued (POSIX seconds).
        run_at: When it is (or was) due (POSIX seconds).
        started_at: When it was last claimed, if ever.
        finished_at: When it reached its terminal status, if it has.
        expires_at: When its terminal record expires (results TTL), if ever.
        unique_key: Its unique key (held only while it is live).
        worker: The worker that claimed it last, if any.
        cancel_requested: Whether a cancel was requested while it ran.
        result: The stored result bytes (``succeeded`` only).
        error: The last error, for ``retrying``, ``failed`` and ``timed_out`` tasks.
        dead_reason: Why it was dead-lettered (``dead`` only).
    """

    task_id: str
    name: str
    queue: str
    priority: int
    status: Status
    payload: bytes
    attempt: int
    deliveries: int
    worker_lost: int
    enqueued_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    unique_key: str | None
    worker: str | None
    cancel_requested: bool
    result: bytes | None
    error: ErrorText | None
    dead_reason: str | None

    @property
    def terminal(self) -> bool:
        """Whether the task reached a terminal status."""
        return self.status.terminal


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReclaimReport:
    """What one :meth:`SqliteStore.reclaim` sweep did.

    Attributes:
        requeued: Ids whose lease had expired and that went back to ``queued``.
        dead_lettered: Ids dead-lettered because their worker was lost too often.
        cancelled: Ids that had a cancel request and whose worker was lost.
        expired: Terminal records deleted because their results TTL passed.
        more: Whether a batch limit was hit (another sweep has work at once).
    """

    requeued: tuple[str, ...] = ()
    dead_lettered: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    expired: int = 0
    more: bool = False


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
