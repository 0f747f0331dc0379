"""The attempt history of the SQLite store: every failed attempt's error, bounded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskmill import _clock
from taskmill.abc import AttemptError
from taskmill.sqlite import SCHEMA_VERSION, ErrorText, SqliteStore


def error(n: int, traceback: str = "tb") -> ErrorText:
    return ErrorText(type="ValueError", message=f"boom {n}", traceback=traceback)


async def fail(store: SqliteStore, task_id: str, n: int, *, final: bool = False) -> None:
    (claim,) = await store.claim(["default"], worker="w")
    assert claim.task_id == task_id
    retry_at = None if final else _clock.wall_time()
    assert await store.nack(
        claim.task_id, claim.token, error=error(n, "x" * 5000 + f"end{n}"), retry_at=retry_at
    )


async def test_every_failed_attempt_is_kept_in_order(tmp_path: Path) -> None:
    """get() returns each failed attempt (the latest whole in .error, history cut to 2,000)."""
    async with await SqliteStore.open(tmp_path / "t.db") as store:
        task = await store.enqueue(b"p", name="t")
        assert () == (await store.get(task.task_id)).history  # type: ignore[union-attr]
        for n in (1, 2):
            await fail(store, task.task_id, n)
        await fail(store, task.task_id, 3, final=True)
        record = await store.get(task.task_id)
        assert record is not None
        assert [1, 2, 3] == [h.attempt for h in record.history]
        assert ["boom 1", "boom 2", "boom 3"] == [h.error.message for h in record.history]
        assert all(len(h.error.traceback) == 2000 for h in record.history)
        assert record.history[-1].error.traceback.endswith("end3")
        assert record.error is not None
        assert len(record.error.traceback) == 5004
        assert isinstance(record.history[0], AttemptError)


async def test_history_is_bounded_and_purged_with_the_task(tmp_path: Path) -> None:
    """Only the latest ten attempts are kept; purging the task deletes its history."""
    path = tmp_path / "t.db"
    async with await SqliteStore.open(path) as store:
        task = await store.enqueue(b"p", name="t")
        for n in range(1, 13):
            await fail(store, task.task_id, n, final=n == 12)
        record = await store.get(task.task_id)
        assert record is not None
        assert list(range(3, 13)) == [h.attempt for h in record.history]
        assert 1 == await store.purge_results(0)
    with sqlite3.connect(path) as conn:
        assert (0,) == conn.execute("SELECT count(*) FROM attempt_errors").fetchone()


async def test_a_version_1_database_is_upgraded(tmp_path: Path) -> None:
    """A file made before the history existed gets the table and keeps its tasks."""
    path = tmp_path / "old.db"
    async with await SqliteStore.open(path) as store:
        task = await store.enqueue(b"p", name="t")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER attempt_errors_add")
        conn.execute("DROP TRIGGER attempt_errors_drop")
        conn.execute("DROP TABLE attempt_errors")
        conn.execute("PRAGMA user_version = 1")
    async with await SqliteStore.open(path) as store:
        assert SCHEMA_VERSION == (await store.statistics()).schema_version
        await fail(store, task.task_id, 1, final=True)
        record = await store.get(task.task_id)
        assert record is not None
        assert [1] == [h.attempt for h in record.history]
