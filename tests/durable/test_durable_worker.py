"""DurableClient + DurableWorker over a SqliteStore, on virtual time."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import durable_tasks as tasks
import pytest

import taskmill as tm
from taskmill.sqlite import SqliteStore, Status

WALL0 = 1_700_000_000.0
pytestmark = pytest.mark.virtual_time(wall_start=WALL0)

StartWorker = Callable[..., Awaitable[tm.DurableWorker]]


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    tasks.calls.clear()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


@pytest.fixture
def client(store: SqliteStore) -> tm.DurableClient:
    return tm.DurableClient(store, tasks.registry)


@pytest.fixture
async def start_worker(store: SqliteStore) -> AsyncIterator[StartWorker]:
    """Factory: start a worker in the background; all are stopped at teardown."""
    running: list[tuple[tm.DurableWorker, asyncio.Task[None]]] = []

    async def start(**options: object) -> tm.DurableWorker:
        options.setdefault("lease", 10.0)
        worker = tm.DurableWorker(store, tasks.registry, **options)  # type: ignore[arg-type]
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in running:
        await worker.stop(graceful=False)
        await task


def row(store: SqliteStore, task_id: str, column: str) -> object:
    with closing(sqlite3.connect(store.path)) as conn:
        found = conn.execute(f"SELECT {column} FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if found is None else found[0]


class TestSubmitAndRun:
    async def test_result_of_async_task(
        self, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """A submitted task runs on the worker and its result comes back decoded."""
        await start_worker()
        handle = await client.submit(tasks.add, 2, 3)
        assert 5 == await handle.result(timeout=5)
        assert "succeeded" == await handle.status()

    async def test_result_of_sync_task_in_thread(
        self, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """A sync task runs in the worker's thread pool."""
        await start_worker()
        handle = await client.submit("add_sync", 20, 22)
        assert 42 == await handle.result(timeout=5)

    async def test_batch_claims_and_group_acks(
        self, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """Tasks queued before the worker starts are claimed in a batch and acked together."""
        handles = [await client.submit(tasks.add, i, i) for i in range(8)]
        worker = await start_worker(concurrency=8)
        assert [2 * i for i in range(8)] == [await h.result(timeout=5) for h in handles]
        stats = worker.statistics()
        assert (8, 8) == (stats.claimed, stats.succeeded)
        assert stats.ack_batches < 8

    async def test_unregistered_callable_fails_at_submit(self, client: tm.DurableClient) -> None:
        """Submitting a callable that is not registered raises UnknownTask at once."""

        async def stranger() -> None: ...

        with pytest.raises(tm.UnknownTask):
            await client.submit(stranger)

    async def test_unserializable_argument_fails_at_submit(
        self, client: tm.DurableClient, store: SqliteStore
    ) -> None:
        """An argument that cannot be serialized raises PayloadError naming it; nothing queued."""
        with pytest.raises(tm.PayloadError) as caught:
            await client.submit(tasks.add, 1, object())  # type: ignore[call-overload]
        assert "1" == caught.value.argument
        assert [] == await store.list()

    async def test_with_options_delay_and_priority(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """with_options(delay=...) schedules the task; it runs no earlier than that."""
        handle = await client.with_options(delay=30.0, priority=3).submit(tasks.add, 1, 1)
        record = await store.get(handle.id)
        assert record is not None
        assert (Status.SCHEDULED, 3, WALL0 + 30.0) == (
            record.status,
            record.priority,
            record.run_at,
        )
        await start_worker()
        assert 2 == await handle.result(timeout=60)
        assert asyncio.get_running_loop().time() >= 30.0

    async def test_with_options_rejects_unknown_and_naive(self, client: tm.DurableClient) -> None:
        """Unknown options and naive datetimes raise ConfigurationError at the call."""
        import datetime as dt

        with pytest.raises(tm.ConfigurationError):
            client.with_options(colour="red")
        with pytest.raises(tm.ConfigurationError):
            client.with_options(at=dt.datetime(2030, 1, 1))  # noqa: DTZ001 - the point


class TestFailures:
    async def test_retries_at_exact_backoff_times(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """A failing task is retried after its Constant(5) backoff, attempts counted."""
        await start_worker()
        handle = await client.submit(tasks.flaky, 2)
        assert "ok" == await handle.result(timeout=60)
        times = [t for name, t in tasks.calls if name == "flaky"]
        assert 3 == len(times)
        # Due exactly 5 s after the failure; picked up within the idle poll (max 0.5 s).
        assert 3 == row(store, handle.id, "attempt")
        assert WALL0 + times[1] + 5.0 == pytest.approx(row(store, handle.id, "run_at"), abs=1e-6)
        for before, after in itertools.pairwise(times):
            assert 5.0 <= after - before <= 5.5

    async def test_final_failure_raises_task_failed(
        self, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """After max_attempts the awaiter gets TaskFailed with the error text."""
        await start_worker()
        handle = await client.submit(tasks.always_fails)
        with pytest.raises(tm.TaskFailed) as caught:
            await handle.result(timeout=60)
        assert ("RuntimeError", "boom") == (caught.value.error_type, caught.value.message)
        assert "failed" == await handle.status()

    async def test_timeout_ends_timed_out(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """A task over its per-attempt timeout ends timed_out after exactly that long."""
        await start_worker()
        handle = await client.submit(tasks.slow_with_timeout)
        with pytest.raises(tm.TaskFailed) as caught:
            await handle.result(timeout=60)
        assert "TaskTimeout" in caught.value.error_type
        record = await store.get(handle.id)
        assert record is not None
        assert Status.TIMED_OUT == record.status
        assert record.started_at is not None
        assert record.finished_at is not None
        assert 2.0 == pytest.approx(record.finished_at - record.started_at)

    @pytest.mark.parametrize("name", ["interrupts", "exits", "cancels_itself", "bad_result"])
    async def test_base_exceptions_fail_only_the_task(
        self, name: str, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """KeyboardInterrupt, SystemExit, a task's own CancelledError or a bad result:
        that task fails, the worker keeps working."""
        worker = await start_worker()
        bad = await client.submit(name)
        with pytest.raises(tm.TaskFailed):
            await bad.result(timeout=5)
        good = await client.submit(tasks.add, 1, 2)
        assert 3 == await good.result(timeout=5)
        assert "running" == worker.statistics().state

    async def test_malformed_payload_is_dead_lettered(
        self, store: SqliteStore, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """A payload the codec refuses becomes a dead letter with the reason."""
        queued = await store.enqueue(b"\x80garbage", name="add")
        await start_worker()
        with pytest.raises(tm.TaskFailed) as caught:
            await client.handle(queued.task_id).result(timeout=5)
        assert "DeadLetter" == caught.value.error_type
        record = await store.get(queued.task_id)
        assert record is not None
        assert record.dead_reason
        assert Status.DEAD == record.status

    async def test_unknown_task_name_is_dead_lettered(
        self, store: SqliteStore, client: tm.DurableClient, start_worker: StartWorker
    ) -> None:
        """A well-formed payload naming a task this worker does not know is dead-lettered."""
        other = tm.TaskRegistry()
        other.register(tasks.add, name="os.system")
        foreign = tm.DurableClient(store, other)
        handle = await foreign.submit("os.system", 1, 2)
        await start_worker()
        with pytest.raises(tm.TaskFailed):
            await handle.result(timeout=5)
        record = await store.get(handle.id)
        assert record is not None
        assert "unknown task 'os.system'" in (record.dead_reason or "")


class TestCancelAndLeases:
    async def test_cancel_queued(self, client: tm.DurableClient) -> None:
        """Cancelling a queued task ends it at once; the awaiter gets TaskCancelled."""
        handle = await client.submit(tasks.add, 1, 1)
        assert "cancelled" == await handle.cancel()
        with pytest.raises(tm.TaskCancelled):
            await handle.result(timeout=1)

    async def test_cancel_running(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """A running task is cancelled at the next renewal (lease / 3) and ends cancelled."""
        worker = await start_worker()
        handle = await client.submit(tasks.sleeper, 1000.0)
        await asyncio.sleep(1.0)
        assert "requested" == await handle.cancel()
        with pytest.raises(tm.TaskCancelled):
            await handle.result(timeout=60)
        assert 1.0 < asyncio.get_running_loop().time() <= 1.0 + 10.0 / 3 + 0.1
        assert 1 == worker.statistics().cancelled

    async def test_renewal_keeps_long_task_past_three_leases(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """A task running 3.5 leases is renewed, never reclaimed, and runs once."""
        worker = await start_worker(reclaim_interval=0.5)
        handle = await client.submit(tasks.sleeper, 35.0)
        assert 35.0 == await handle.result(timeout=60)
        assert 0 == row(store, handle.id, "worker_lost")
        assert 1 == row(store, handle.id, "deliveries")
        assert worker.statistics().renewals >= 10

    async def test_lost_lease_abandons_the_attempt(
        self, client: tm.DurableClient, store: SqliteStore, start_worker: StartWorker
    ) -> None:
        """When the store says the lease is lost, the local copy is cancelled, nothing acked."""
        worker = await start_worker()
        handle = await client.submit(tasks.sleeper, 1000.0)
        await asyncio.sleep(1.0)
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute("UPDATE tasks SET token = 'stolen' WHERE id = ?", (handle.id,))
        await asyncio.sleep(10.0 / 3)
        assert 1 == worker.statistics().lost
        assert 0 == worker.statistics().running
        assert "running" == await handle.status()


class TestStop:
    async def test_graceful_stop_waits_for_short_tasks(
        self, client: tm.DurableClient, store: SqliteStore
    ) -> None:
        """stop() lets a task that ends within grace finish and ack."""
        worker = tm.DurableWorker(store, tasks.registry, grace=10.0)
        running = asyncio.create_task(worker.run())
        handle = await client.submit(tasks.sleeper, 4.0)
        await asyncio.sleep(1.0)
        await worker.stop()
        await running
        assert "succeeded" == await handle.status()
        assert "stopped" == worker.statistics().state

    async def test_graceful_stop_releases_after_grace(
        self, client: tm.DurableClient, store: SqliteStore
    ) -> None:
        """A task still running at the end of grace is cancelled and released, same attempt."""
        worker = tm.DurableWorker(store, tasks.registry, grace=5.0)
        running = asyncio.create_task(worker.run())
        handle = await client.submit(tasks.sleeper, 1000.0)
        await asyncio.sleep(1.0)
        stopped_at = asyncio.get_running_loop().time()
        await worker.stop()
        await running
        assert 5.0 == pytest.approx(asyncio.get_running_loop().time() - stopped_at, abs=0.1)
        assert ("queued", 1) == (await handle.status(), row(store, handle.id, "attempt"))
        assert None is row(store, handle.id, "lease_until")
        assert 1 == worker.statistics().released

    async def test_immediate_stop_and_cancelled_run_release(
        self, client: tm.DurableClient, store: SqliteStore
    ) -> None:
        """stop(graceful=False) and cancelling run() both release held tasks at once."""
        for stop in ("immediate", "cancel"):
            worker = tm.DurableWorker(store, tasks.registry, grace=100.0)
            running = asyncio.create_task(worker.run())
            handle = await client.submit(tasks.sleeper, 1000.0)
            await asyncio.sleep(1.0)
            before = asyncio.get_running_loop().time()
            if stop == "immediate":
                await worker.stop(graceful=False)
                await running
            else:
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
            assert asyncio.get_running_loop().time() - before < 1.0
            assert "queued" == await handle.status()
            await handle.cancel()

    async def test_run_twice_raises(self, store: SqliteStore) -> None:
        """A worker runs once."""
        worker = tm.DurableWorker(store, tasks.registry)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.1)
        with pytest.raises(tm.AlreadyStarted):
            await worker.run()
        await worker.stop()
        await running

    @pytest.mark.parametrize(
        "options",
        [{"concurrency": 0}, {"queues": "default"}, {"lease": 0}, {"grace": -1.0}, {"queues": ()}],
    )
    async def test_bad_options(self, store: SqliteStore, options: dict[str, object]) -> None:
        """Invalid options raise ConfigurationError at construction."""
        with pytest.raises(tm.ConfigurationError):
            tm.DurableWorker(store, tasks.registry, **options)  # type: ignore[arg-type]
