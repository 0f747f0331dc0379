"""The values that cross the :class:`taskmill.abc.Backend` boundary.

A backend stores tasks as *records* and hands them to workers as *claims*: one
delivery, with a lease and a fencing token. Field names match the durable stores
(``taskmill.sqlite``, ``taskmill.redis``) so one adapter serves all of them; their
own dataclasses conform structurally. Times: ``*_at`` and ``run_at`` are POSIX
wall-clock seconds; ``lease_until`` is on the backend's lease clock (the host's
monotonic clock for memory and SQLite, Redis' own clock for Redis).

Payloads are opaque to backends: ``bytes`` (a serialized envelope naming a
registered task) for durable backends, any Python object for the memory backend.
"""

from __future__ import annotations

import enum
import traceback as _traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

__all__ = [
    "HISTORY_LIMIT",
    "HISTORY_TRACEBACK",
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AttemptError",
    "BackendStatistics",
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "FailStatus",
    "NewTask",
    "ReclaimReport",
    "RecordStatus",
    "Renewal",
    "TaskRecord",
]


@final
class RecordStatus(enum.StrEnum):
    """A stored task's status: :class:`~taskmill.TaskStatus` plus ``dead`` (a dead letter)."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        """Whether no further transition happens (``requeue_dead`` aside)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: Final = frozenset(
    {
        RecordStatus.SUCCEEDED,
        RecordStatus.FAILED,
        RecordStatus.CANCELLED,
        RecordStatus.TIMED_OUT,
        RecordStatus.DEAD,
    }
)
LIVE_STATUSES: Final = frozenset(
    {RecordStatus.QUEUED, RecordStatus.SCHEDULED, RecordStatus.RUNNING, RecordStatus.RETRYING}
)

FailStatus = Literal["failed", "timed_out", "cancelled"]
"""The terminal status a ``nack`` without ``retry_at`` records."""


@final
class Renewal(enum.Enum):
    """What ``renew`` found; truthy while the lease is still held."""

    HELD = "held"
    """The lease was extended."""
    CANCEL_REQUESTED = "cancel_requested"
    """The lease was extended, and a cancel was requested: stop and report it."""
    LOST = "lost"
    """The token is stale (reclaimed, finished or released): stop working on it."""

    def __bool__(self) -> bool:
        return self is not Renewal.LOST


@final
class CancelOutcome(enum.StrEnum):
    """What ``cancel`` did."""

    CANCELLED = "cancelled"
    """It had not started: it is now ``cancelled``."""
    REQUESTED = "requested"
    """It is running: its owner sees the request on its next renew."""
    FINISHED = "finished"
    """It was already terminal: nothing changed."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorText:
    """A failure as text: stored errors are strings, never reconstructed objects.

    Attributes:
        type: The error's qualified type name.
        message: ``str()`` of the error.
        traceback: The formatted traceback ("" when unknown).
    """

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> ErrorText:
        """Describe ``error`` (type, message, formatted traceback)."""
        kind = type(error)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        text = "".join(_traceback.format_exception(error))
        return cls(type=name, message=str(error), traceback=text)


HISTORY_LIMIT: Final = 10
"""Failed attempts a durable store keeps per task (the latest ones)."""
HISTORY_TRACEBACK: Final = 2000
"""Characters of each traceback kept in the attempt history (the end of it)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptError:
    """One failed attempt in a task's history.

    Attributes:
        attempt: The attempt number (1 for the first run).
        error: Its error; the traceback is cut to its last :data:`HISTORY_TRACEBACK`
            characters (the record's ``error`` keeps the latest one whole).
    """

    attempt: int
    error: ErrorText


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """One task to enqueue (what ``enqueue_many`` takes; ``enqueue`` takes the same fields).

    Attributes:
        payload: Opaque to the backend.
        name: The task name (a registered name for durable backends).
        queue: The queue it waits in.
        priority: Lower runs first; FIFO within a priority.
        run_at: When it becomes due (POSIX seconds); ``None`` = now.
        unique_key: At most one live task holds a key at a time.
        task_id: Its id; ``None`` generates one. An existing id is not enqueued twice.
    """

    payload: Any
    name: str
    queue: str = "default"
    priority: int = 0
    run_at: float | None = None
    unique_key: str | None = None
    task_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Enqueued:
    """The outcome of one enqueue.

    Attributes:
        task_id: The new task's id, or the live task holding the same unique key,
            or the given ``task_id`` when it already existed.
        created: Whether this call created the task.
    """

    task_id: str
    created: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """One delivery of a task to a worker (see the module doc for the clocks).

    Attributes:
        task_id: The task's id.
        token: This delivery's fencing token; every later write needs it.
        payload: The task's payload.
        name: The task name.
        queue: Its queue.
        priority: Its priority.
        attempt: The attempt number (1 first; a ``nack`` with ``retry_at`` adds one).
        deliveries: How many times it was claimed, this one included.
        worker_lost: How many earlier deliveries ended with a lost worker.
        enqueued_at: When it was enqueued.
        run_at: When it was due.
        unique_key: Its unique key, if any.
        lease_until: When the lease ends (lease clock).
    """

    task_id: str
    token: str
    payload: Any
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
        payload: Its payload.
        attempt: The current (or final) attempt number.
        deliveries: How many times it was claimed.
        worker_lost: How many deliveries ended with a lost worker.
        enqueued_at: When it was enqueued.
        run_at: When it is (or was) due.
        started_at: When it was last claimed, if ever.
        finished_at: When it reached its terminal status, if it has.
        expires_at: When its terminal record expires (results TTL), if ever.
        unique_key: Its unique key (held only while it is live).
        worker: The worker that claimed it last, if any.
        cancel_requested: Whether a cancel was requested while it ran.
        result: The stored result (``succeeded`` only).
        error: The last error (``retrying``, ``failed``, ``timed_out``).
        dead_reason: Why it was dead-lettered (``dead`` only).
        history: Its failed attempts, oldest first, the latest included (at most
            :data:`HISTORY_LIMIT`, the latest ones). Durable stores fill it in ``get``;
            listings may leave it empty.
    """

    task_id: str
    name: str
    queue: str
    priority: int
    status: RecordStatus
    payload: Any
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
    result: Any
    error: ErrorText | None
    dead_reason: str | None
    history: tuple[AttemptError, ...] = ()

    @property
    def terminal(self) -> bool:
        """Whether the task reached a terminal status."""
        return self.status in TERMINAL_STATUSES


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReclaimReport:
    """What one ``reclaim`` sweep did.

    Attributes:
        requeued: Ids whose lease had expired and that went back to ``queued``.
        dead_lettered: Ids dead-lettered because their worker was lost too often.
        cancelled: Ids with a cancel request whose worker was lost (now ``cancelled``).
        expired: Terminal records deleted because their results TTL passed.
        more: Whether the batch limit was hit (another sweep has work at once).
    """

    requeued: tuple[str, ...] = ()
    dead_lettered: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    expired: int = 0
    more: bool = False


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BackendStatistics:
    """A snapshot of a backend (the memory backend's; durable ones add their own fields).

    Attributes:
        by_status: Task count per status (every status, zeros included).
        by_queue: Per queue, task count per status (non-zero counts only).
        total: All stored tasks.
        running: Tasks currently claimed.
        expired_leases: Running tasks whose lease ended (the next reclaim takes them).
        dead_letters: Dead-lettered tasks.
        next_scheduled: The earliest ``run_at`` among tasks not yet due.
    """

    by_status: Mapping[str, int] = field(default_factory=dict)
    by_queue: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    total: int = 0
    running: int = 0
    expired_leases: int = 0
    dead_letters: int = 0
    next_scheduled: float | None = None
