"""SqliteStore results: wait/result across stores, results TTL, listings, dead letters, stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlite_support import WALL0, column, insert_raw

from taskmill import ConfigurationError, NotRunning, StateError, TaskNotFound
from taskmill.sqlite import SCHEMA_VERSION, Claim, ErrorText, SqliteStore, Status

pytestmark = pytest.mark.virtual_time(wall_start=WALL0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


async def one(store: SqliteStore, name: str = "a", **kwargs: object) -> Claim:
    await store.enqueue(b"p", name=name, **kwargs)  # type: ignore[arg-type]
    (claim,) = await store.claim(["default"], worker="w")
    return claim


async def lose_worker(store: SqliteStore, times: int) -> str:
    """Make a task whose worker is lost `times` times (dead after 3)."""
    task_id = (await store.enqueue(b"", name="poison")).task_id
    for _ in range(times):
        await store.claim(["default"], worker="w")
        await asyncio.sleep(10)
        await store.reclaim()
    return task_id


class TestResult:
    async def test_result_of_a_finished_task(self, store: SqliteStore) -> None:
        """result() returns the terminal record."""
        claim = await one(store)
        await store.ack(claim.task_id, claim.token, b"42")
        assert b"42" == (await store.result(claim.task_id)).result

    async def test_result_of_an_unfinished_task_raises(self, store: SqliteStore) -> None:
        """result() does not wait: StateError while it runs, TaskNotFound if unknown."""
        claim = await one(store)
        with pytest.raises(StateError, match="has not finished"):
            await store.result(claim.task_id)
        with pytest.raises(TaskNotFound):
            await store.result("nope")


class TestWait:
    async def test_wait_returns_at_the_ack_in_this_store(self, store: SqliteStore) -> None:
        """A local ack wakes the waiter at once (same virtual instant)."""
        claim = await one(store)
        waiter = asyncio.create_task(store.wait(claim.task_id))
        await asyncio.sleep(7)
        assert not waiter.done()
        await store.ack(claim.task_id, claim.token, b"r")
        done = await waiter
        assert (Status.SUCCEEDED, b"r", 7.0) == (
            done.status,
            done.result,
            asyncio.get_running_loop().time(),
        )

    async def test_wait_sees_another_connection_commit(self, tmp_path: Path) -> None:
        """A completion committed by another store (process) is seen within max_poll_interval."""
        path = tmp_path / "shared.db"
        async with (
            await SqliteStore.open(path, max_poll_interval=0.5) as producer,
            await SqliteStore.open(path) as worker,
        ):
            queued = await producer.enqueue(b"", name="a")
            waiter = asyncio.create_task(producer.wait(queued.task_id))
            (claim,) = await worker.claim(["default"], worker="w")
            await asyncio.sleep(100)
            assert not waiter.done()
            await worker.ack(claim.task_id, claim.token, b"done")
            acked_at = asyncio.get_running_loop().time()
            record = await waiter
            waited = asyncio.get_running_loop().time() - acked_at
        assert b"done" == record.result
        assert 0 <= waited <= 0.5

    async def test_idle_polls_back_off(self, tmp_path: Path) -> None:
        """While nothing changes, the poller sleeps longer and longer (no busy polling)."""
        path = tmp_path / "shared.db"
        async with await SqliteStore.open(path, max_poll_interval=1.0) as store:
            queued = await store.enqueue(b"", name="a")
            waiter = asyncio.create_task(store.wait(queued.task_id))
            await asyncio.sleep(60)
            checks = store._completions.checks
            waiter.cancel()
        # One initial full check; afterwards only PRAGMA data_version, about once a second.
        assert 1 == checks

    async def test_wait_timeout(self, store: SqliteStore) -> None:
        """With a timeout, TimeoutError at exactly that time."""
        claim = await one(store)
        with pytest.raises(TimeoutError):
            await store.wait(claim.task_id, timeout=3)
        assert 3.0 == asyncio.get_running_loop().time()
        assert 0 == store._completions.waiting

    async def test_wait_for_a_finished_task_returns_at_once(self, store: SqliteStore) -> None:
        """A task that already finished is returned without sleeping."""
        claim = await one(store)
        await store.nack(claim.task_id, claim.token, error=ErrorText(type="E", message="m"))
        assert Status.FAILED == (await store.wait(claim.task_id, timeout=0)).status

    async def test_wait_unknown_raises(self, store: SqliteStore) -> None:
        """Waiting for an unknown id raises TaskNotFound."""
        with pytest.raises(TaskNotFound):
            await store.wait("nope")

    async def test_many_waiters_one_poller(self, store: SqliteStore) -> None:
        """Several waiters on several tasks are all served; cancelled waiters leave cleanly."""
        claims = [await one(store, name=f"t{index}") for index in range(3)]
        waiters = [asyncio.create_task(store.wait(c.task_id)) for c in claims]
        extra = asyncio.create_task(store.wait(claims[0].task_id))
        doomed = asyncio.create_task(store.wait(claims[2].task_id))
        await asyncio.sleep(1)
        doomed.cancel()
        await store.ack_many([(c.task_id, c.token, None) for c in claims])
        records = await asyncio.gather(*waiters, extra)
        assert all(r.status is Status.SUCCEEDED for r in records)
        assert 0 == store._completions.waiting

    async def test_close_fails_pending_waiters(self, tmp_path: Path) -> None:
        """Closing the store wakes its waiters with NotRunning."""
        store = await SqliteStore.open(tmp_path / "t.db")
        claim = await one(store)
        waiter = asyncio.create_task(store.wait(claim.task_id))
        await asyncio.sleep(1)
        await store.close()
        with pytest.raises(NotRunning):
            await waiter


class TestResultsTTL:
    async def test_terminal_records_expire(self, tmp_path: Path) -> None:
        """With results_ttl, a finished record is gone ttl seconds after it finished."""
        async with await SqliteStore.open(tmp_path / "t.db", results_ttl=60) as store:
            claim = await one(store)
            await store.ack(claim.task_id, claim.token, b"r")
            assert WALL0 + 60 == (await store.result(claim.task_id)).expires_at
            await asyncio.sleep(59.9)
            assert await store.get(claim.task_id) is not None
            await asyncio.sleep(0.1)
            assert await store.get(claim.task_id) is None
            assert 1 == column(store.path, claim.task_id, "1")
            assert 1 == (await store.reclaim()).expired
            assert column(store.path, claim.task_id, "1") is None

    async def test_live_tasks_and_dead_letters_do_not_expire(self, tmp_path: Path) -> None:
        """The TTL applies to finished results only: live tasks and dead letters stay."""
        async with await SqliteStore.open(tmp_path / "t.db", results_ttl=1, lease=1) as store:
            queued = await store.enqueue(b"", name="waiting", queue="other")
            dead = await lose_worker(store, 3)
            await asyncio.sleep(3600)
            await store.reclaim()
            assert await store.get(queued.task_id) is not None
            assert await store.get(dead) is not None

    async def test_purge_results(self, store: SqliteStore) -> None:
        """purge_results deletes finished records older than the cutoff (not dead letters)."""
        old = await one(store, name="old")
        await store.ack(old.task_id, old.token, None)
        dead = await lose_worker(store, 3)
        await asyncio.sleep(100)
        new = await one(store, name="new")
        await store.ack(new.task_id, new.token, None)
        assert 1 == await store.purge_results(older_than=50)
        assert await store.get(old.task_id) is None
        assert await store.get(new.task_id) is not None
        assert await store.get(dead) is not None
        with pytest.raises(ConfigurationError):
            await store.purge_results(older_than=-1)


class TestListing:
    async def test_list_filters_and_pages(self, store: SqliteStore) -> None:
        """list() filters by status(es) and queue, pages with limit/offset, in enqueue order."""
        for index in range(4):
            await store.enqueue(b"", name=f"q{index}")
        await store.enqueue(b"", name="other", queue="b")
        (claim,) = await store.claim(["default"], worker="w")
        names = [r.name for r in await store.list(limit=2, offset=1)]
        assert ["q1", "q2"] == names
        assert ["q0"] == [r.name for r in await store.list(status="running")]
        queued = await store.list(status=[Status.QUEUED, "running"], queue="default")
        assert ["q0", "q1", "q2", "q3"] == [r.name for r in queued]
        assert ["other"] == [r.name for r in await store.list(queue="b")]
        assert claim.task_id == (await store.list(status=Status.RUNNING))[0].task_id

    async def test_list_rejects_unknown_status(self, store: SqliteStore) -> None:
        """Unknown statuses and bad paging are ConfigurationErrors."""
        with pytest.raises(ConfigurationError, match="unknown status"):
            await store.list(status="done")
        with pytest.raises(ConfigurationError, match="offset"):
            await store.list(offset=-1)


class TestDeadLetters:
    async def test_list_requeue_purge(self, store: SqliteStore) -> None:
        """Dead letters are listed with reasons, requeued (loss count reset) and purged."""
        first = await lose_worker(store, 3)
        second = await lose_worker(store, 3)
        letters = await store.dead_letters()
        assert [first, second] == [r.task_id for r in letters]
        assert {"worker lost 3 times"} == {r.dead_reason for r in letters}
        assert await store.requeue_dead(first)
        back = await store.get(first)
        assert back is not None
        assert (Status.QUEUED, 0, None) == (back.status, back.worker_lost, back.dead_reason)
        assert not await store.requeue_dead(first)
        assert 1 == await store.purge_dead(second)
        assert await store.get(second) is None
        assert 0 == await store.purge_dead("not-dead", first)
        assert [] == await store.dead_letters()

    async def test_purge_everything(self, store: SqliteStore) -> None:
        """purge_dead(everything=True) deletes all dead letters, nothing else."""
        for _ in range(2):
            await lose_worker(store, 3)
        alive = await store.enqueue(b"", name="alive")
        assert 2 == await store.purge_dead(everything=True)
        assert await store.get(alive.task_id) is not None

    async def test_purge_dead_needs_a_target(self, store: SqliteStore) -> None:
        """purge_dead() with no ids and no everything=True is refused (no accidents)."""
        with pytest.raises(ConfigurationError):
            await store.purge_dead()
        with pytest.raises(ConfigurationError):
            await store.purge_dead("a", everything=True)

    async def test_requeue_refused_when_key_is_taken(self, store: SqliteStore) -> None:
        """A dead letter cannot come back while a live task holds its unique key."""
        claim = await one(store, unique_key="k")
        await store.dead_letter(claim.task_id, claim.token, "bad")
        await store.enqueue(b"", name="a", unique_key="k")
        with pytest.raises(StateError, match="unique key"):
            await store.requeue_dead(claim.task_id)
        assert Status.DEAD == (await store.result(claim.task_id)).status


class TestStatistics:
    async def test_counts_by_status_and_queue(self, store: SqliteStore) -> None:
        """Counts per status (zeros included) and per queue, totals and leases."""
        await store.enqueue(b"", name="a")
        await store.enqueue(b"", name="b", queue="other")
        await store.enqueue(b"", name="c", run_at=WALL0 + 999)
        claim = await one(store, name="d")
        await asyncio.sleep(10)
        stats = await store.statistics()
        assert 4 == stats.total
        assert (2, 1, 1, 1, 0) == (
            stats.by_status["queued"],
            stats.by_status["scheduled"],
            stats.running,
            stats.expired_leases,
            stats.by_status["dead"],
        )
        assert {"default": {"queued": 1, "scheduled": 1, "running": 1}, "other": {"queued": 1}} == {
            q: dict(c) for q, c in stats.by_queue.items()
        }
        assert (SCHEMA_VERSION, "normal", 0, 0) == (
            stats.schema_version,
            stats.synchronous,
            stats.busy_retries,
            stats.malformed,
        )
        assert stats.size_bytes > 0
        assert claim.task_id

    async def test_unknown_statuses_are_counted_not_hidden(self, store: SqliteStore) -> None:
        """A row with a foreign status shows up in the counts under that status."""
        insert_raw(store.path, id="weird", status="paused")
        stats = await store.statistics()
        assert 1 == stats.by_status["paused"]
        assert 1 == stats.total
