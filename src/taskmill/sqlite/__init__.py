"""The durable SQLite store (``taskmill[sqlite]``): tasks that survive a SIGKILL.

One SQLite file in WAL mode, shared by any number of processes on one host:
leases timed by the host's monotonic clock, a fencing token per delivery, a
reclaim sweep with a worker-lost counter and dead letters, scheduled tasks and
retries stored in the database, unique keys, results with a TTL. See
docs/sqlite.md.

``import taskmill`` never imports this package; it uses only the standard library.
"""

from __future__ import annotations

from ._records import CancelOutcome as CancelOutcome
from ._records import Claim as Claim
from ._records import Enqueued as Enqueued
from ._records import ErrorText as ErrorText
from ._records import NewTask as NewTask
from ._records import ReclaimReport as ReclaimReport
from ._records import Renewal as Renewal
from ._records import Status as Status
from ._records import StoreStatistics as StoreStatistics
from ._records import TaskRecord as TaskRecord
from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._store import SqliteStore as SqliteStore

__all__ = [
    "SCHEMA_VERSION",
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "NewTask",
    "ReclaimReport",
    "Renewal",
    "SqliteStore",
    "Status",
    "StoreStatistics",
    "TaskRecord",
]

for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value
