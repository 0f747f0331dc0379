"""Shared helpers for the SQLite store tests (fixtures, raw rows, invariant checks)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

# Virtual wall time at loop time 0.0 in these tests (see pytest.mark.virtual_time).
WALL0 = 1_700_000_000.0

LIVE = ("queued", "scheduled", "running", "retrying")
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "dead")


@contextmanager
def raw(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A plain autocommit connection to the store's file (to inspect or corrupt it)."""
    with closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as conn:
        yield conn


def column(path: Path | str, task_id: str, name: str) -> Any:
    """Read one column of one task straight from the file."""
    with raw(path) as conn:
        row = conn.execute(f"SELECT {name} FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else row[0]


def insert_raw(path: Path | str, **values: Any) -> None:
    """Write a row straight into the table (defaults make a valid queued task)."""
    row: dict[str, Any] = {
        "id": "raw",
        "name": "t",
        "queue": "default",
        "priority": 0,
        "status": "queued",
        "payload": b"p",
        "run_at": 0.0,
        "enqueued_at": 0.0,
    }
    row.update(values)
    names = ", ".join(row)
    marks = ", ".join("?" * len(row))
    with raw(path) as conn:
        conn.execute(f"INSERT INTO tasks ({names}) VALUES ({marks})", tuple(row.values()))


def residue(path: Path | str) -> dict[str, int]:
    """Count what I4 forbids after quiescence: live tasks, leases, live unique keys."""
    with raw(path) as conn:
        live = conn.execute(f"SELECT count(*) FROM tasks WHERE status IN {LIVE}").fetchone()[0]
        leases = conn.execute(
            "SELECT count(*) FROM tasks WHERE lease_until IS NOT NULL OR lease_boot IS NOT NULL"
        ).fetchone()[0]
        keys = conn.execute(
            f"SELECT count(*) FROM tasks WHERE unique_key IS NOT NULL AND status IN {LIVE}"
        ).fetchone()[0]
    return {"live": live, "leases": leases, "unique_keys": keys}


def integrity(path: Path | str) -> str:
    """``PRAGMA integrity_check`` of the file."""
    with raw(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
