"""The values the Redis store takes and returns.

They are the SQLite store's values (one adapter serves both stores; shared through
:mod:`taskmill._backend` and :mod:`taskmill._storecheck`), plus what only
Redis has: unique-key scopes and the store's statistics. Times are POSIX seconds on
*Redis'* clock (``TIME``): ``Claim.lease_until`` included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, final

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
from taskmill._storecheck import NewTask, wall_seconds

__all__ = [
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "NewTask",
    "ReclaimReport",
    "RedisStoreStatistics",
    "Renewal",
    "Status",
    "TaskRecord",
    "UniqueScope",
    "wall_seconds",
]

UniqueScope = Literal["queued", "running", "done"]
"""How long a unique key is held.

``"queued"``: until the task is first claimed (or ends). ``"running"`` (default): until
the task reaches a terminal status. ``"done"``: through the terminal status, then for
``unique_ttl`` more seconds (an idempotency key: the same submit returns the same task,
finished or not, until the key expires).
"""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RedisStoreStatistics:
    """A snapshot of a Redis store (every known queue, one script call per queue).

    Attributes:
        url: The server (password removed).
        prefix: The key prefix.
        queues: The known queue names.
        by_status: Task count per status (every status present, zeros included).
        by_queue: Per queue, task count per status (only non-zero counts).
        total: Stored records.
        running: Tasks currently claimed.
        expired_leases: Running tasks whose lease ended (the next reclaim takes them).
        dead_letters: Dead-lettered tasks.
        oldest_due: When the oldest ready task became due (POSIX seconds).
        lag: Seconds since ``oldest_due`` on Redis' clock (0.0 when nothing waits).
        next_scheduled: The earliest due time among scheduled and retrying tasks.
        malformed: Malformed records dead-lettered by claims (counted in Redis).
        epoch_losses: Times this store found Redis' data gone (epoch marker missing).
    """

    url: str
    prefix: str
    queues: tuple[str, ...] = ()
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_queue: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    total: int = 0
    running: int = 0
    expired_leases: int = 0
    dead_letters: int = 0
    oldest_due: float | None = None
    lag: float = 0.0
    next_scheduled: float | None = None
    malformed: int = 0
    epoch_losses: int = 0
