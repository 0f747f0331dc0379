"""Tasks for the scheduled-tasks-across-kills test (``taskmill worker sched_tasks:registry``).

Each run writes ``(tag, kind, wall time, pid)`` to the oracle SQLite file named by
``$TASKMILL_ORACLE``, apart from the store: ``kind`` is ``ok`` for an effect and
``fail`` for a failed first attempt.
"""

from __future__ import annotations

import os
import sqlite3
import time

import taskmill as tm

registry = tm.TaskRegistry()


def _write(tag: str, kind: str) -> None:
    conn = sqlite3.connect(os.environ["TASKMILL_ORACLE"], timeout=30, isolation_level=None)
    try:
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", (tag, kind, time.time(), os.getpid()))
    finally:
        conn.close()


def _failed_before(tag: str) -> bool:
    conn = sqlite3.connect(os.environ["TASKMILL_ORACLE"], timeout=30)
    try:
        query = "SELECT 1 FROM runs WHERE tag = ? AND kind = 'fail'"
        return conn.execute(query, (tag,)).fetchone() is not None
    finally:
        conn.close()


@registry.task(name="stamp")
def stamp(tag: str) -> None:
    _write(tag, "ok")


@registry.task(name="fail_once", retry=tm.Retry(max_attempts=3, backoff=tm.Constant(2.0)))
def fail_once(tag: str) -> None:
    if not _failed_before(tag):
        _write(tag, "fail")
        raise RuntimeError("first attempt fails")
    _write(tag, "ok")
