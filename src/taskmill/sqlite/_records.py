"""The values the SQLite store takes and returns: statuses, new tasks, claims, records.

Every value is a frozen, slotted, keyword-only dataclass (or an enum). Times are
float seconds: ``*_at`` fields are POSIX wall-clock instants; ``lease_until`` is on
the host's monotonic clock (see docs/sqlite.md, "Clock rules").
"""

from __future__ import annotations

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
from taskmill._backend import RecordStatus as Status
from taskmill._storecheck import NewTask, as_new_task, wall_seconds

# The value types are taskmill.abc's own (one set for every backend); NewTask is the
# stores' richer variant that also takes an aware datetime for ``run_at``.

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
