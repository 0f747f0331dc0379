"""The fault tests' oracle: a SQLite file *apart from* the store, written by every process.

Producers record each submit before they try it (``intent``) and after the store
accepted it (``acked``); consumers record ``started``, ``effect`` and (once the ack
was accepted) ``done`` for every delivery they run; whoever kills a process
records its pid in ``kills``. Every
record is its own committed transaction, so it survives the SIGKILL that follows.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS submitted (task_id TEXT, phase TEXT, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS started (task_id TEXT, delivery INTEGER, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS effects (task_id TEXT, delivery INTEGER, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS kills (pid INTEGER, why TEXT)",
    "CREATE TABLE IF NOT EXISTS done (task_id TEXT, delivery INTEGER, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS alive (pid INTEGER)",
)


class Oracle:
    """Append-only records in their own file."""

    def __init__(self, path: Path | str) -> None:
        # check_same_thread=False: kill hooks record from the store's thread (one at a time).
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        for statement in SCHEMA:
            self.conn.execute(statement)
        self.pid = os.getpid()

    def close(self) -> None:
        self.conn.close()

    def submitted(self, task_ids: Iterable[str], phase: str) -> None:
        rows = [(task_id, phase, self.pid) for task_id in task_ids]
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO submitted VALUES (?, ?, ?)", rows)
        self.conn.execute("COMMIT")

    def started(self, task_id: str, delivery: int) -> None:
        self.conn.execute("INSERT INTO started VALUES (?, ?, ?)", (task_id, delivery, self.pid))

    def effect(self, task_id: str, delivery: int) -> None:
        self.conn.execute("INSERT INTO effects VALUES (?, ?, ?)", (task_id, delivery, self.pid))

    def alive(self) -> None:
        """This process has opened the store and starts working now."""
        self.conn.execute("INSERT INTO alive VALUES (?)", (self.pid,))

    def is_alive(self, pid: int) -> bool:
        return self.conn.execute("SELECT 1 FROM alive WHERE pid = ?", (pid,)).fetchone() is not None

    def done(self, task_id: str, delivery: int) -> None:
        """The store accepted this delivery's ack."""
        self.conn.execute("INSERT INTO done VALUES (?, ?, ?)", (task_id, delivery, self.pid))

    def killed(self, pid: int, why: str) -> None:
        self.conn.execute("INSERT INTO kills VALUES (?, ?)", (pid, why))

    def ids(self, query: str) -> set[str]:
        return {row[0] for row in self.conn.execute(query)}
