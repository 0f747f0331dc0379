"""The database schema (versioned with ``PRAGMA user_version``) and connection setup.

One table holds every task for its whole life; partial indexes keep each hot
query small:

* ``tasks_ready``  — claim order among due tasks: ``(queue, priority, seq)``;
* ``tasks_due``    — the schedule: ``run_at`` of ``scheduled`` / ``retrying`` tasks;
* ``tasks_lease``  — lease expiry of ``running`` tasks;
* ``tasks_unique`` — a *unique* index on the keys of live tasks only, so a key is
  released by the very UPDATE that makes its task terminal;
* ``tasks_status`` — listings and counts by status;
* ``tasks_expiry`` — results TTL (only rows with a TTL are in it).

Failed attempts are kept in ``attempt_errors`` (schema version 2) by triggers: an
error written to a task adds a row (traceback cut to its end, the latest
``HISTORY_LIMIT`` kept), and deleting a task deletes its rows, so no code path that
fails or purges tasks can forget them.

``purge_results`` scans in ``seq`` order instead of keeping one more index on
every finished row: old records come first, so each batch stops early.
"""

from __future__ import annotations

import sqlite3
from typing import Final, Literal

from taskmill._backend import HISTORY_LIMIT, HISTORY_TRACEBACK
from taskmill._errors import BackendError

__all__ = ["COLUMNS", "SCHEMA_VERSION", "Synchronous", "connect", "prepare"]

Synchronous = Literal["full", "normal", "off"]

SCHEMA_VERSION: Final = 2

# Every column, in the order record/claim decoding expects.
COLUMNS: Final = (
    "seq, id, name, queue, priority, status, payload, run_at, unique_key, attempt, "
    "deliveries, worker_lost, worker, cancel_requested, enqueued_at, started_at, "
    "finished_at, expires_at, result, error_type, error_message, error_traceback, dead_reason"
)

_LIVE = "('queued', 'scheduled', 'running', 'retrying')"

_DDL: Final = (
    """
    CREATE TABLE tasks (
        seq              INTEGER PRIMARY KEY,
        id               TEXT    NOT NULL UNIQUE,
        name             TEXT    NOT NULL,
        queue            TEXT    NOT NULL,
        priority         INTEGER NOT NULL DEFAULT 0,
        status           TEXT    NOT NULL,
        payload          BLOB    NOT NULL,
        run_at           REAL    NOT NULL,
        unique_key       TEXT,
        attempt          INTEGER NOT NULL DEFAULT 1,
        deliveries       INTEGER NOT NULL DEFAULT 0,
        worker_lost      INTEGER NOT NULL DEFAULT 0,
        token            TEXT,
        worker           TEXT,
        lease_boot       TEXT,
        lease_until      REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        enqueued_at      REAL    NOT NULL,
        started_at       REAL,
        finished_at      REAL,
        expires_at       REAL,
        result           BLOB,
        error_type       TEXT,
        error_message    TEXT,
        error_traceback  TEXT,
        dead_reason      TEXT
    )
    """,
    "CREATE INDEX tasks_ready ON tasks (queue, priority, seq) WHERE status = 'queued'",
    "CREATE INDEX tasks_due ON tasks (run_at) WHERE status IN ('scheduled', 'retrying')",
    "CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'running'",
    (
        "CREATE UNIQUE INDEX tasks_unique ON tasks (unique_key)"
        f" WHERE unique_key IS NOT NULL AND status IN {_LIVE}"
    ),
    "CREATE INDEX tasks_status ON tasks (status, queue)",
    "CREATE INDEX tasks_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL",
)


# Version 2: the attempt history.
_DDL_2: Final = (
    """
    CREATE TABLE attempt_errors (
        task_seq   INTEGER NOT NULL,
        attempt    INTEGER NOT NULL,
        type       TEXT    NOT NULL,
        message    TEXT    NOT NULL,
        traceback  TEXT    NOT NULL,
        PRIMARY KEY (task_seq, attempt)
    ) WITHOUT ROWID
    """,
    f"""
    CREATE TRIGGER attempt_errors_add AFTER UPDATE OF error_type ON tasks
    WHEN NEW.error_type IS NOT NULL
    BEGIN
        INSERT OR REPLACE INTO attempt_errors VALUES (
            NEW.seq, NEW.attempt, NEW.error_type, coalesce(NEW.error_message, ''),
            substr(coalesce(NEW.error_traceback, ''), -{HISTORY_TRACEBACK})
        );
        DELETE FROM attempt_errors
        WHERE task_seq = NEW.seq AND attempt <= NEW.attempt - {HISTORY_LIMIT};
    END
    """,  # noqa: S608 - two integer constants, no input
    """
    CREATE TRIGGER attempt_errors_drop AFTER DELETE ON tasks
    BEGIN
        DELETE FROM attempt_errors WHERE task_seq = OLD.seq;
    END
    """,
)


def connect(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit)."""
    return sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=True)


def prepare(conn: sqlite3.Connection, synchronous: Synchronous) -> int:
    """Switch to WAL, set pragmas, create or check the schema; return its version.

    Raises:
        BackendError: when the file holds a newer schema than this taskmill knows.
    """
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _create(conn)
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")
    return version


def _create(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version < SCHEMA_VERSION:
        for statement in (*(_DDL if version == 0 else ()), *_DDL_2):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise BackendError(
            f"database schema version {version} is newer than this taskmill supports "
            f"({SCHEMA_VERSION}); upgrade taskmill",
            backend="sqlite",
        )
    return int(version)
