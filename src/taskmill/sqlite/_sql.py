"""The store's write transactions: plain synchronous functions over one connection.

Each function is one ``BEGIN IMMEDIATE`` transaction (so it takes the write lock up
front and never has to upgrade a read snapshot) and is safe to re-run from the top
after ``database is locked``. Time is passed in, never read here: ``wall`` is POSIX
seconds, ``mono`` the host's monotonic clock. Every write by a worker is fenced:
it matches ``id``, ``token`` *and* ``status = 'running'``, so a stale worker's
write changes nothing.
"""

# SQL text is built from module constants only; every value is bound with "?".
# ruff: noqa: S608

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from taskmill._errors import StateError

from . import _rows
from ._records import CancelOutcome, Claim, Enqueued, ErrorText, NewTask, ReclaimReport, Renewal
from ._schema import COLUMNS

__all__ = [
    "ack_cancelled",
    "ack_many",
    "cancel",
    "claim",
    "dead_letter",
    "enqueue_many",
    "nack",
    "purge_dead",
    "purge_results",
    "reclaim",
    "release",
    "renew",
    "requeue_dead",
    "write",
]

PROMOTE_BATCH: Final = 5000  # due scheduled/retrying tasks made ready per claim
MALFORMED_BATCH: Final = 1000  # malformed rows dead-lettered per claim, at most
EXPIRE_BATCH: Final = 1000  # expired terminal records deleted per reclaim sweep
PURGE_BATCH: Final = 10000  # rows deleted per purge transaction

_LIVE = "('queued', 'scheduled', 'running', 'retrying')"
_DONE = "('succeeded', 'failed', 'cancelled', 'timed_out')"  # terminal, results TTL applies
_FREE = "lease_until = NULL, lease_boot = NULL"

_INSERT = (
    "INSERT INTO tasks (id, name, queue, priority, status, payload, run_at, unique_key,"
    " enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TAKE = (
    "UPDATE tasks SET status = 'running', token = ?, worker = ?, lease_until = ?,"
    " lease_boot = ?, deliveries = deliveries + 1, started_at = ? WHERE seq = ?"
)
_ACK = (
    f"UPDATE tasks SET status = 'succeeded', result = ?, finished_at = ?, expires_at = ?, {_FREE}"
    " WHERE id = ? AND token = ? AND status = 'running'"
)
_END = f"UPDATE tasks SET status = ?, finished_at = ?, expires_at = ?, {_FREE} WHERE seq = ?"
_BURY = (
    f"UPDATE tasks SET status = 'dead', dead_reason = ?, finished_at = ?, expires_at = NULL,"
    f" {_FREE} WHERE seq = ?"
)
_SET_ERROR = "UPDATE tasks SET error_type = ?, error_message = ?, error_traceback = ? WHERE seq = ?"


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


# -- producers ------------------------------------------------------------------------
def enqueue_many(
    conn: sqlite3.Connection, tasks: Sequence[NewTask], ids: Sequence[str], wall: float
) -> list[Enqueued]:
    """Insert ``tasks`` in one transaction (``ids`` are the generated ids to use)."""
    with write(conn):
        return [
            _enqueue(conn, task, task_id, wall) for task, task_id in zip(tasks, ids, strict=True)
        ]


def _enqueue(conn: sqlite3.Connection, task: NewTask, task_id: str, wall: float) -> Enqueued:
    if (
        task.task_id is not None
        and conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task.task_id,)).fetchone()
    ):
        return Enqueued(task_id=task.task_id, created=False)
    if task.unique_key is not None:
        holder = conn.execute(
            f"SELECT id FROM tasks WHERE unique_key = ? AND status IN {_LIVE}", (task.unique_key,)
        ).fetchone()
        if holder is not None:
            return Enqueued(task_id=holder[0], created=False)
    due = task.due
    run_at = wall if due is None else due
    status = "scheduled" if run_at > wall else "queued"
    values = (task_id, task.name, task.queue, task.priority, status, task.payload, run_at)
    conn.execute(_INSERT, (*values, task.unique_key, wall))
    return Enqueued(task_id=task_id, created=True)


# -- claiming -------------------------------------------------------------------------
def claim(
    conn: sqlite3.Connection,
    queues: Sequence[str],
    *,
    worker: str,
    limit: int,
    wall: float,
    lease_until: float,
    boot: str | None,
) -> tuple[list[Claim], int]:
    """Claim up to ``limit`` due tasks (priority, then FIFO); return them and the malformed count.

    Malformed ready rows are dead-lettered with a reason and skipped.
    """
    with write(conn):
        _promote(conn, wall)
        claims: list[Claim] = []
        malformed = 0
        while len(claims) < limit and malformed < MALFORMED_BATCH:
            rows = _ready(conn, queues, limit - len(claims))
            if not rows:
                break
            good = []
            for row in rows:
                reason = _rows.problem(row)
                if reason is None:
                    good.append(row)
                else:
                    conn.execute(_BURY, (reason, wall, row[_rows.SEQ]))
                    malformed += 1
            good.sort(key=lambda row: (row[_rows.PRIORITY], row[_rows.SEQ]))
            taken = good[: limit - len(claims)]
            claims.extend(
                _take(conn, taken, worker=worker, wall=wall, lease_until=lease_until, boot=boot)
            )
        return claims, malformed


def _promote(conn: sqlite3.Connection, wall: float) -> None:
    conn.execute(
        "UPDATE tasks SET status = 'queued' WHERE seq IN (SELECT seq FROM tasks INDEXED BY"
        " tasks_due WHERE status IN ('scheduled', 'retrying') AND run_at <= ?"
        " ORDER BY run_at LIMIT ?)",
        (wall, PROMOTE_BATCH),
    )


def _ready(conn: sqlite3.Connection, queues: Sequence[str], count: int) -> list[_rows.Row]:
    query = (
        f"SELECT {COLUMNS} FROM tasks INDEXED BY tasks_ready WHERE status = 'queued'"
        " AND queue = ? ORDER BY priority, seq LIMIT ?"
    )
    rows: list[_rows.Row] = []
    for queue in queues:
        rows.extend(conn.execute(query, (queue, count)).fetchall())
    return rows


def _take(
    conn: sqlite3.Connection,
    rows: Sequence[_rows.Row],
    *,
    worker: str,
    wall: float,
    lease_until: float,
    boot: str | None,
) -> list[Claim]:
    tokens = [secrets.token_hex(8) for _ in rows]
    conn.executemany(
        _TAKE,
        [
            (token, worker, lease_until, boot, wall, row[_rows.SEQ])
            for token, row in zip(tokens, rows, strict=True)
        ],
    )
    return [_rows.claim(row, token, lease_until) for token, row in zip(tokens, rows, strict=True)]


# -- the owner's writes (fenced by token) ----------------------------------------------
def renew(
    conn: sqlite3.Connection, task_id: str, token: str, lease_until: float, boot: str | None
) -> Renewal:
    """Extend the lease if ``token`` still owns the task."""
    with write(conn):
        row = conn.execute(
            "UPDATE tasks SET lease_until = ?, lease_boot = ?"
            " WHERE id = ? AND token = ? AND status = 'running' RETURNING cancel_requested",
            (lease_until, boot, task_id, token),
        ).fetchone()
    if row is None:
        return Renewal.LOST
    return Renewal.CANCEL_REQUESTED if row[0] else Renewal.HELD


def ack_many(
    conn: sqlite3.Connection,
    acks: Sequence[tuple[str, str, bytes | None]],
    wall: float,
    expires: float | None,
) -> list[bool]:
    """Mark each owned task ``succeeded`` with its result; one transaction for all."""
    with write(conn):
        return [
            conn.execute(_ACK, (result, wall, expires, task_id, token)).rowcount == 1
            for task_id, token, result in acks
        ]


def _owned(conn: sqlite3.Connection, task_id: str, token: str) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT seq, cancel_requested FROM tasks WHERE id = ? AND token = ? AND status = 'running'",
        (task_id, token),
    ).fetchone()
    return None if row is None else (row[0], bool(row[1]))


def _end(
    conn: sqlite3.Connection, seq: int, status: str, wall: float, expires: float | None
) -> None:
    conn.execute(_END, (status, wall, expires, seq))


def _set_error(conn: sqlite3.Connection, seq: int, error: ErrorText) -> None:
    conn.execute(_SET_ERROR, (error.type, error.message, error.traceback, seq))


def nack(
    conn: sqlite3.Connection,
    task_id: str,
    token: str,
    *,
    error: ErrorText,
    retry_at: float | None,
    status: str,
    wall: float,
    expires: float | None,
) -> bool:
    """Record a failed attempt: retry at ``retry_at`` or end with ``status``.

    A pending cancel request wins: the task ends ``cancelled`` instead.
    """
    with write(conn):
        owned = _owned(conn, task_id, token)
        if owned is None:
            return False
        seq, cancel_requested = owned
        _set_error(conn, seq, error)
        if cancel_requested:
            _end(conn, seq, "cancelled", wall, expires)
        elif retry_at is None:
            _end(conn, seq, status, wall, expires)
        else:
            again = "retrying" if retry_at > wall else "queued"
            conn.execute(
                f"UPDATE tasks SET status = ?, run_at = ?, attempt = attempt + 1, {_FREE}"
                " WHERE seq = ?",
                (again, retry_at, seq),
            )
        return True


def release(
    conn: sqlite3.Connection, task_id: str, token: str, wall: float, expires: float | None
) -> bool:
    """Give an owned task back, due now, with no penalty (or end it if cancel was asked)."""
    with write(conn):
        owned = _owned(conn, task_id, token)
        if owned is None:
            return False
        seq, cancel_requested = owned
        if cancel_requested:
            _end(conn, seq, "cancelled", wall, expires)
        else:
            conn.execute(f"UPDATE tasks SET status = 'queued', {_FREE} WHERE seq = ?", (seq,))
        return True


def ack_cancelled(
    conn: sqlite3.Connection, task_id: str, token: str, wall: float, expires: float | None
) -> bool:
    """End an owned task as ``cancelled`` (its owner stopped it)."""
    with write(conn):
        owned = _owned(conn, task_id, token)
        if owned is not None:
            _end(conn, owned[0], "cancelled", wall, expires)
        return owned is not None


def dead_letter(
    conn: sqlite3.Connection, task_id: str, token: str, reason: str, wall: float
) -> bool:
    """Dead-letter an owned task with ``reason``."""
    with write(conn):
        owned = _owned(conn, task_id, token)
        if owned is not None:
            conn.execute(_BURY, (reason, wall, owned[0]))
        return owned is not None


# -- anyone's writes -------------------------------------------------------------------
def cancel(
    conn: sqlite3.Connection, task_id: str, wall: float, expires: float | None
) -> CancelOutcome | None:
    """Cancel a task that has not started, or flag a running one; ``None`` if unknown."""
    with write(conn):
        row = conn.execute("SELECT seq, status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        seq, status = row
        if status in ("queued", "scheduled", "retrying"):
            _end(conn, seq, "cancelled", wall, expires)
            return CancelOutcome.CANCELLED
        if status == "running":
            conn.execute("UPDATE tasks SET cancel_requested = 1 WHERE seq = ?", (seq,))
            return CancelOutcome.REQUESTED
        return CancelOutcome.FINISHED


def reclaim(
    conn: sqlite3.Connection,
    *,
    mono: float,
    boot: str | None,
    wall: float,
    max_worker_lost: int,
    limit: int,
    expires: float | None,
) -> ReclaimReport:
    """Take back expired leases (and leases of an earlier boot); delete expired results."""
    requeued: list[str] = []
    dead: list[str] = []
    cancelled: list[str] = []
    with write(conn):
        rows = conn.execute(
            "SELECT seq, id, worker_lost, cancel_requested FROM tasks INDEXED BY tasks_lease"
            " WHERE status = 'running' AND (lease_until <= ? OR lease_boot IS NOT ?)"
            " ORDER BY lease_until LIMIT ?",
            (mono, boot, limit + 1),
        ).fetchall()
        for seq, task_id, worker_lost, cancel_requested in rows[:limit]:
            lost = (worker_lost if type(worker_lost) is int else max_worker_lost) + 1
            conn.execute("UPDATE tasks SET worker_lost = ? WHERE seq = ?", (lost, seq))
            if cancel_requested:
                _end(conn, seq, "cancelled", wall, expires)
                cancelled.append(task_id)
            elif lost >= max_worker_lost:
                conn.execute(_BURY, (f"worker lost {lost} times", wall, seq))
                dead.append(task_id)
            else:
                conn.execute(f"UPDATE tasks SET status = 'queued', {_FREE} WHERE seq = ?", (seq,))
                requeued.append(task_id)
        expired = conn.execute(
            "DELETE FROM tasks WHERE seq IN"
            " (SELECT seq FROM tasks INDEXED BY tasks_expiry WHERE expires_at <= ? LIMIT ?)",
            (wall, EXPIRE_BATCH),
        ).rowcount
    return ReclaimReport(
        requeued=tuple(requeued),
        dead_lettered=tuple(dead),
        cancelled=tuple(cancelled),
        expired=expired,
        more=len(rows) > limit or expired >= EXPIRE_BATCH,
    )


def requeue_dead(conn: sqlite3.Connection, task_id: str, wall: float) -> bool:
    """Put a dead letter back in its queue, due now, with its worker-lost count reset.

    Raises:
        StateError: when a live task now holds the dead task's unique key.
    """
    try:
        with write(conn):
            return (
                conn.execute(
                    "UPDATE tasks SET status = 'queued', run_at = ?, worker_lost = 0,"
                    " dead_reason = NULL, finished_at = NULL, expires_at = NULL,"
                    f" cancel_requested = 0, {_FREE} WHERE id = ? AND status = 'dead'",
                    (wall, task_id),
                ).rowcount
                == 1
            )
    except sqlite3.IntegrityError as exc:
        raise StateError(f"cannot requeue {task_id!r}: a live task holds its unique key") from exc


def purge_dead(conn: sqlite3.Connection, task_ids: Sequence[str] | None) -> int:
    """Delete the given dead letters (all of them for ``None``); return how many."""
    if task_ids is None:
        return _purge(conn, "status = 'dead'", ())
    count = 0
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        with write(conn):
            count += conn.execute(
                f"DELETE FROM tasks WHERE status = 'dead' AND id IN ({marks})", chunk
            ).rowcount
    return count


def purge_results(conn: sqlite3.Connection, cutoff: float) -> int:
    """Delete terminal records (dead letters excepted) that finished at or before ``cutoff``."""
    return _purge(conn, f"finished_at <= ? AND status IN {_DONE}", (cutoff,))


def _purge(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> int:
    total = 0
    while True:
        with write(conn):
            count = conn.execute(
                f"DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE {where} LIMIT ?)",
                (*params, PURGE_BATCH),
            ).rowcount
        total += count
        if count < PURGE_BATCH:
            return total
