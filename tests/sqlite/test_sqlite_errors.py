"""SqliteStore under bad conditions: full disk, locks, malformed rows and payloads, corruption."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlite_support import WALL0, insert_raw, integrity, raw, residue

from taskmill import BackendError, BackendUnavailable, StorageFull
from taskmill.sqlite import NewTask, SqliteStore, Status

pytestmark = pytest.mark.virtual_time(wall_start=WALL0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


async def limit_pages(store: SqliteStore, extra: int) -> None:
    """Cap the database at its current size plus `extra` pages (a full disk, simulated)."""

    def cap(conn: sqlite3.Connection) -> None:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages + extra}")

    await store._db.run(cap)


async def fill(store: SqliteStore) -> tuple[list[str], StorageFull]:
    """Enqueue 3 KB tasks until the store is full; return the accepted ids and the error."""
    accepted: list[str] = []
    for index in range(1000):
        try:
            await store.enqueue(b"x" * 3000, name="big", task_id=f"t{index}")
        except StorageFull as exc:
            return accepted, exc
        accepted.append(f"t{index}")
    raise AssertionError("the store never filled up")


def decode(payload: bytes) -> tuple[object, str | None]:
    """What a consumer does with a payload: its value, or why it cannot be decoded."""
    try:
        return json.loads(payload, parse_constant=_refuse), None
    except (ValueError, RecursionError) as exc:
        return None, f"undecodable payload: {exc}"[:200]


class TestDiskFull:
    async def test_full_database_is_a_clear_error_with_no_partial_task(
        self, store: SqliteStore
    ) -> None:
        """Enqueue on a full database raises StorageFull and writes nothing (T20)."""
        await limit_pages(store, 10)
        accepted, error = await fill(store)
        assert isinstance(error, BackendError)
        assert "sqlite" == error.backend
        assert "full; nothing was written" in str(error)
        refused = f"t{len(accepted)}"
        assert await store.get(refused) is None
        assert len(accepted) == (await store.statistics()).total
        assert "ok" == integrity(store.path)

    async def test_full_batch_is_all_or_nothing(self, store: SqliteStore) -> None:
        """A batch that does not fit leaves no task of the batch behind."""
        await limit_pages(store, 5)
        batch = [NewTask(payload=b"y" * 3000, name="n", task_id=f"b{i}") for i in range(50)]
        with pytest.raises(StorageFull):
            await store.enqueue_many(batch)
        assert 0 == (await store.statistics()).total

    async def test_store_recovers_when_space_returns(self, store: SqliteStore) -> None:
        """After StorageFull the store keeps working once there is room (no crash loop)."""
        await limit_pages(store, 3)
        with pytest.raises(StorageFull):
            await store.enqueue_many([NewTask(payload=b"z" * 8000, name="n") for _ in range(10)])
        await limit_pages(store, 1000)
        assert (await store.enqueue(b"small", name="n")).created
        (claim,) = await store.claim(["default"], worker="w")
        assert await store.ack(claim.task_id, claim.token, None)


class TestLocks:
    def _hold_write_lock(self, path: str, seconds: float) -> threading.Thread:
        """Another connection takes the write lock and keeps it for `seconds` (real time)."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        stop = threading.Event()

        def release() -> None:
            stop.wait(seconds)
            conn.execute("ROLLBACK")
            conn.close()

        holder = threading.Thread(target=release)
        holder.start()
        return holder

    async def test_lock_past_the_budget_is_backend_unavailable(self, tmp_path: Path) -> None:
        """A lock held past busy_timeout and the retries raises BackendUnavailable."""
        async with await SqliteStore.open(tmp_path / "t.db", busy_timeout=0.02) as store:
            holder = self._hold_write_lock(store.path, 1.0)
            try:
                with pytest.raises(BackendUnavailable, match="stayed locked") as caught:
                    await store.enqueue(b"", name="a")
                assert isinstance(caught.value, ConnectionError)
                assert (await store.statistics()).busy_retries >= 1
            finally:
                await asyncio.to_thread(holder.join)
            assert (await store.enqueue(b"", name="a")).created

    async def test_short_lock_is_retried_transparently(self, tmp_path: Path) -> None:
        """A lock released within the retry budget costs a retry, not an error."""
        async with await SqliteStore.open(tmp_path / "t.db", busy_timeout=0.1) as store:
            holder = self._hold_write_lock(store.path, 0.15)
            try:
                assert (await store.enqueue(b"", name="a")).created
            finally:
                await asyncio.to_thread(holder.join)


class TestMalformedRows:
    @pytest.mark.parametrize(
        ("values", "reason"),
        [
            ({"payload": "text, not bytes"}, "payload is text 'text, not bytes', expected a blob"),
            ({"name": b"bytes"}, "name is blob b'bytes', expected a non-empty text"),
            ({"name": ""}, "name is text '', expected a non-empty text"),
            ({"priority": "high"}, "priority is text 'high', expected an integer"),
            ({"priority": 1.5}, "priority is real 1.5, expected an integer"),
            ({"attempt": 0}, "attempt is integer 0, expected an integer >= 1"),
            ({"deliveries": "x"}, "deliveries is text 'x', expected an integer >= 0"),
            ({"worker_lost": -1}, "worker_lost is integer -1, expected an integer >= 0"),
            ({"enqueued_at": "yesterday"}, "enqueued_at is text 'yesterday'"),
            ({"unique_key": b"\x00"}, "unique_key is blob b'\\x00', expected NULL or text"),
        ],
    )
    async def test_bad_row_is_dead_lettered_with_reason(
        self, store: SqliteStore, values: dict[str, object], reason: str
    ) -> None:
        """A garbage row is dead-lettered with a reason; the good task behind it is claimed."""
        insert_raw(store.path, id="bad", **values)
        good = await store.enqueue(b"ok", name="good")
        claims = await store.claim(["default"], worker="w", limit=10)
        assert [good.task_id] == [claim.task_id for claim in claims]
        dead = await store.get("bad")
        assert dead is not None
        assert Status.DEAD == dead.status
        assert dead.dead_reason is not None
        assert dead.dead_reason.startswith("malformed row: " + reason)
        assert 1 == (await store.statistics()).malformed
        assert ["bad"] == [r.task_id for r in await store.dead_letters()]

    async def test_null_columns_are_refused_by_the_schema(self, store: SqliteStore) -> None:
        """NOT NULL columns keep NULL garbage out of the file in the first place."""
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            insert_raw(store.path, id="null", payload=None)

    async def test_unknown_status_row_is_never_claimed(self, store: SqliteStore) -> None:
        """A row in a foreign status is left alone; get() reports it as a backend error."""
        insert_raw(store.path, id="weird", status="paused")
        assert [] == await store.claim(["default"], worker="w")
        with pytest.raises(BackendError, match="unknown status"):
            await store.get("weird")

    async def test_ten_thousand_malformed_rows_and_payloads(self, store: SqliteStore) -> None:
        """5k bad rows + 5k bad payloads: no crash, each dead-lettered with a reason (T10)."""
        with raw(store.path) as conn:
            conn.executemany(
                "INSERT INTO tasks (id, name, queue, priority, status, payload, run_at,"
                " enqueued_at) VALUES (?, 't', 'default', ?, 'queued', ?, 0, 0)",
                [(f"row{i}", "NaN" if i % 2 else 0, "text") for i in range(5_000)],
            )
        garbage = [b"\x80\x04\x95pickle", b"{not json", b"[1, NaN]", b"\xff\xfe", b"[" * 5000]
        batch = [NewTask(payload=garbage[i % 5], name="t") for i in range(5_000)]
        await store.enqueue_many(batch)
        good = await store.enqueue(b'{"ok": true}', name="t", priority=1)
        ran = []
        while claims := await store.claim(["default"], worker="w", limit=100):
            for claim in claims:
                value, reason = decode(claim.payload)
                if reason is None:
                    ran.append(value)
                    assert await store.ack(claim.task_id, claim.token, None)
                else:
                    assert await store.dead_letter(claim.task_id, claim.token, reason)
        stats = await store.statistics()
        assert ([{"ok": True}], 10_000, 1) == (
            ran,
            stats.dead_letters,
            stats.by_status["succeeded"],
        )
        assert 5_000 == stats.malformed
        letters = await store.list(status="dead", limit=20_000)
        assert all(letter.dead_reason for letter in letters)
        assert good.task_id not in {letter.task_id for letter in letters}
        assert {"live": 0, "leases": 0, "unique_keys": 0} == residue(store.path)


def _refuse(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


class TestCorruption:
    async def test_not_a_database_is_a_backend_error(self, tmp_path: Path) -> None:
        """A file that is not SQLite raises BackendError at open (driver error chained)."""
        path = tmp_path / "garbage.db"
        path.write_bytes(b"this is not a database" * 100)
        with pytest.raises(BackendError, match="not a database") as caught:
            await SqliteStore.open(path)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)

    async def test_foreign_tasks_table_is_a_backend_error(self, tmp_path: Path) -> None:
        """A database with someone else's `tasks` table is refused, not mangled."""
        path = tmp_path / "other.db"
        with raw(path) as conn:
            conn.execute("CREATE TABLE tasks (x)")
        with pytest.raises(BackendError, match="already exists"):
            await SqliteStore.open(path)
