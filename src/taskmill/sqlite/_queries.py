"""The store's read queries: records, listings, completion checks and statistics.

Reads need no write lock; a read that spans several statements runs in one
deferred transaction so it sees one consistent snapshot (WAL readers never block
the writer). Records whose results TTL has passed are invisible even before a
reclaim sweep deletes them.
"""

# SQL text is built from module constants only; every value is bound with "?".
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from . import _rows
from ._records import Status, StoreStatistics
from ._schema import COLUMNS

__all__ = [
    "Counts",
    "data_version",
    "get",
    "history",
    "list_rows",
    "rows_by_id",
    "statistics",
    "statuses",
]

_VISIBLE: Final = "(expires_at IS NULL OR expires_at > ?)"


def get(conn: sqlite3.Connection, task_id: str, wall: float) -> _rows.Row | None:
    """Return the row of ``task_id`` unless it does not exist or has expired."""
    row: _rows.Row | None = conn.execute(
        f"SELECT {COLUMNS} FROM tasks WHERE id = ? AND {_VISIBLE}", (task_id, wall)
    ).fetchone()
    return row


def history(conn: sqlite3.Connection, seq: int) -> list[tuple[int, str, str, str]]:
    """Return the failed attempts of the task with ``seq``: (attempt, type, message, traceback)."""
    rows: list[tuple[int, str, str, str]] = conn.execute(
        "SELECT attempt, type, message, traceback FROM attempt_errors"
        " WHERE task_seq = ? ORDER BY attempt",
        (seq,),
    ).fetchall()
    return rows


def list_rows(
    conn: sqlite3.Connection,
    *,
    statuses: Sequence[str],
    queue: str | None,
    limit: int,
    offset: int,
    wall: float,
) -> list[_rows.Row]:
    """Return visible rows in enqueue order, filtered by statuses (any when empty) and queue."""
    where = [_VISIBLE]
    params: list[object] = [wall]
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if queue is not None:
        where.append("queue = ?")
        params.append(queue)
    query = f"SELECT {COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY seq LIMIT ? OFFSET ?"
    return conn.execute(query, (*params, limit, offset)).fetchall()


def rows_by_id(
    conn: sqlite3.Connection, task_ids: Sequence[str], wall: float
) -> dict[str, _rows.Row]:
    """Return the visible rows of ``task_ids`` (missing ids are absent from the result)."""
    found: dict[str, _rows.Row] = {}
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT {COLUMNS} FROM tasks WHERE id IN ({marks}) AND {_VISIBLE}"
        for row in conn.execute(query, (*chunk, wall)):
            found[row[_rows.ID]] = row
    return found


def statuses(conn: sqlite3.Connection, task_ids: Sequence[str], wall: float) -> dict[str, str]:
    """Return the status of each visible task among ``task_ids``."""
    found: dict[str, str] = {}
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT id, status FROM tasks WHERE id IN ({marks}) AND {_VISIBLE}"
        found.update(conn.execute(query, (*chunk, wall)).fetchall())
    return found


def data_version(conn: sqlite3.Connection) -> int:
    """Return ``PRAGMA data_version``: it changes when *another* connection commits."""
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


@dataclass(slots=True, kw_only=True)
class Counts:
    """Raw numbers behind :class:`StoreStatistics` (one consistent snapshot)."""

    by_queue: dict[str, dict[str, int]] = field(default_factory=dict)
    expired_leases: int = 0
    oldest_due: float | None = None
    next_scheduled: float | None = None
    size_bytes: int = 0
    schema_version: int = 0

    def snapshot(
        self, *, path: str, synchronous: str, wall: float, busy_retries: int, malformed: int
    ) -> StoreStatistics:
        """Build the public :class:`StoreStatistics` (every known status counted)."""
        by_status = {status.value: 0 for status in Status}
        for per_status in self.by_queue.values():
            for status, count in per_status.items():
                by_status[status] = by_status.get(status, 0) + count
        oldest = self.oldest_due
        return StoreStatistics(
            path=path,
            schema_version=self.schema_version,
            synchronous=synchronous,
            by_status=MappingProxyType(by_status),
            by_queue=MappingProxyType(
                {queue: MappingProxyType(counts) for queue, counts in self.by_queue.items()}
            ),
            total=sum(by_status.values()),
            running=by_status[Status.RUNNING],
            expired_leases=self.expired_leases,
            dead_letters=by_status[Status.DEAD],
            oldest_due=oldest,
            lag=0.0 if oldest is None else max(0.0, wall - oldest),
            next_scheduled=self.next_scheduled,
            size_bytes=self.size_bytes,
            busy_retries=busy_retries,
            malformed=malformed,
        )


def statistics(conn: sqlite3.Connection, *, wall: float, mono: float, boot: str | None) -> Counts:
    """Count tasks by queue and status and read the schedule edges, in one snapshot."""
    counts = Counts()
    conn.execute("BEGIN")
    try:
        for status, queue, count in conn.execute(
            "SELECT status, queue, count(*) FROM tasks GROUP BY status, queue"
        ):
            counts.by_queue.setdefault(str(queue), {})[str(status)] = count
        counts.expired_leases = _scalar(
            conn,
            "SELECT count(*) FROM tasks INDEXED BY tasks_lease WHERE status = 'running'"
            " AND (lease_until <= ? OR lease_boot IS NOT ?)",
            (mono, boot),
        )
        counts.oldest_due = _oldest_due(conn, wall)
        counts.next_scheduled = _scalar(
            conn,
            "SELECT min(run_at) FROM tasks INDEXED BY tasks_due"
            " WHERE status IN ('scheduled', 'retrying') AND run_at > ?",
            (wall,),
        )
        counts.size_bytes = _scalar(conn, "PRAGMA page_count", ()) * _scalar(
            conn, "PRAGMA page_size", ()
        )
        counts.schema_version = _scalar(conn, "PRAGMA user_version", ())
    finally:
        conn.rollback()
    return counts


def _oldest_due(conn: sqlite3.Connection, wall: float) -> float | None:
    ready = _scalar(conn, "SELECT min(run_at) FROM tasks WHERE status = 'queued'", ())
    waiting = _scalar(
        conn,
        "SELECT min(run_at) FROM tasks INDEXED BY tasks_due"
        " WHERE status IN ('scheduled', 'retrying') AND run_at <= ?",
        (wall,),
    )
    candidates = [value for value in (ready, waiting) if isinstance(value, int | float)]
    return float(min(candidates)) if candidates else None


def _scalar(conn: sqlite3.Connection, query: str, params: tuple[object, ...]) -> Any:
    return conn.execute(query, params).fetchone()[0]
