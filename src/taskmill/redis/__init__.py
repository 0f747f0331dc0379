"""The distributed Redis store (``taskmill[redis]``): tasks shared by processes on many hosts.

Leases and fencing tokens timed by Redis' clock, atomic Lua scripts for every state
change, batched claims and pipelined acks, a reclaim sweep with a worker-lost counter
and dead letters, scheduled tasks in a sorted set, unique keys, results with a TTL,
completion notification over pub/sub and an epoch marker that notices a Redis that
came back empty. One hash tag per queue: a queue lives in one Redis Cluster slot.
See docs/redis.md.

``import taskmill`` never imports this package; it needs redis-py (``redis.asyncio``).
"""

from __future__ import annotations

try:
    import redis.asyncio as _redis_asyncio  # noqa: F401  (availability check)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "taskmill.redis needs redis-py; install it with pip install 'taskmill[redis]'"
    ) from exc

from ._keys import Keys as Keys
from ._limits import QueueLimits as QueueLimits
from ._store import RedisStore as RedisStore
from ._types import CancelOutcome as CancelOutcome
from ._types import Claim as Claim
from ._types import Enqueued as Enqueued
from ._types import ErrorText as ErrorText
from ._types import NewTask as NewTask
from ._types import ReclaimReport as ReclaimReport
from ._types import RedisStoreStatistics as RedisStoreStatistics
from ._types import Renewal as Renewal
from ._types import Status as Status
from ._types import TaskRecord as TaskRecord
from ._types import UniqueScope as UniqueScope

__all__ = [
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "Keys",
    "NewTask",
    "QueueLimits",
    "ReclaimReport",
    "RedisStore",
    "RedisStoreStatistics",
    "Renewal",
    "Status",
    "TaskRecord",
    "UniqueScope",
]

for _name in ("Keys", "QueueLimits", "RedisStore", "RedisStoreStatistics"):
    globals()[_name].__module__ = __name__
del _name
