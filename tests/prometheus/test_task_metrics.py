"""TaskMetrics counters and histograms from a DurableWorker (SQLite) and a TaskManager.

Runs on virtual time: durations are exact, retries and leases expire without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import taskmill as tm
from taskmill.prometheus import TaskMetrics
from taskmill.sqlite import SqliteStore

from . import metrics_tasks as tasks

pytestmark = pytest.mark.virtual_time(wall_start=1_700_000_000.0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=3.0) as opened:
        yield opened


async def run_worker(
    store: SqliteStore, metrics: TaskMetrics, ids: list[str], *, reclaim_interval: float
) -> tm.DurableWorker:
    """Run a worker with ``metrics`` until every task in ``ids`` is terminal."""
    worker = tm.DurableWorker(
        store, tasks.registry, lease=3.0, observer=metrics, reclaim_interval=reclaim_interval
    )
    running = asyncio.create_task(worker.run())
    for task_id in ids:
        await store.wait(task_id, 120)
    await worker.stop(graceful=False)
    await running
    return worker


async def test_worker_counts_every_outcome_by_queue_task_and_status(store: SqliteStore) -> None:
    """Succeeded, retried, failed, timed out, cancelled and dead attempts land in the counters."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    client = tm.DurableClient(store, tasks.registry)
    handles = [
        await client.submit(tasks.ok, 3.0),
        await client.with_options(queue="mail").submit(tasks.ok),
        await client.submit(tasks.flaky, "a"),
        await client.submit(tasks.boom),
        await client.submit(tasks.slow),
    ]
    long = await client.submit(tasks.ok, 600.0)
    dead = await store.enqueue(b"this is not an envelope", name="ok")
    worker = tm.DurableWorker(
        store, tasks.registry, queues=("default", "mail"), lease=3.0, observer=metrics
    )
    running = asyncio.create_task(worker.run())
    while await long.status() != "running":  # noqa: ASYNC110 - virtual time
        await asyncio.sleep(0.1)
    await long.cancel()
    for task_id in [h.id for h in handles] + [long.id, dead.task_id]:
        await store.wait(task_id, 120)
    await worker.stop(graceful=False)
    await running

    total = "taskmill_tasks_total"
    expected = {
        ("default", "ok", "succeeded"): 1.0,
        ("mail", "ok", "succeeded"): 1.0,
        ("default", "flaky", "retried"): 1.0,
        ("default", "flaky", "succeeded"): 1.0,
        ("default", "boom", "failed"): 1.0,
        ("default", "slow", "timed_out"): 1.0,
        ("default", "ok", "cancelled"): 1.0,
        ("default", "ok", "dead"): 1.0,
    }
    for (queue, task, status), count in expected.items():
        assert count == value(registry, total, queue=queue, task=task, status=status), (
            queue,
            task,
            status,
        )
    assert 1.0 == value(registry, "taskmill_task_retries_total", queue="default", task="flaky")
    assert 1.0 == value(registry, "taskmill_dead_letters_total", cause="payload")
    duration = "taskmill_task_duration_seconds"
    # ok(3.0) ran 3 s, the cancelled ok(600) ran until the cancel was seen; dead never ran
    assert 2.0 == value(registry, f"{duration}_count", queue="default", task="ok")
    assert 2.0 == pytest.approx(value(registry, f"{duration}_sum", queue="default", task="slow"))
    assert 1.0 == value(registry, f"{duration}_bucket", queue="default", task="slow", le="2.5")
    assert 0.0 == value(registry, f"{duration}_bucket", queue="default", task="slow", le="1.0")
    text = generate_latest(registry).decode()
    for family in ("tasks_total counter", "task_duration_seconds histogram"):
        assert f"# TYPE taskmill_{family}" in text


async def test_reclaim_sweeps_are_counted(tmp_path: Path) -> None:
    """Expired leases of a lost worker are counted when this worker's sweep takes them back."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    async with await SqliteStore.open(tmp_path / "r.db", lease=3.0, max_worker_lost=2) as store:
        client = tm.DurableClient(store, tasks.registry)
        handle = await client.submit(tasks.ok)
        [ghost] = await store.claim(["default"], worker="ghost", lease=1.0)
        assert handle.id == ghost.task_id
        await asyncio.sleep(2.0)  # the ghost's lease ran out; nobody renewed it
        await run_worker(store, metrics, [handle.id], reclaim_interval=0.5)
        assert "succeeded" == await handle.status()
    assert 1.0 == value(registry, "taskmill_lease_reclaims_total", outcome="requeued")
    assert value(registry, "taskmill_lease_reclaims_total", outcome="dead_lettered") is None


async def test_a_task_lost_too_often_is_a_worker_lost_dead_letter(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    async with await SqliteStore.open(tmp_path / "d.db", lease=3.0, max_worker_lost=1) as store:
        handle = await tm.DurableClient(store, tasks.registry).submit(tasks.ok)
        await store.claim(["default"], worker="ghost", lease=1.0)
        await asyncio.sleep(2.0)
        await run_worker(store, metrics, [handle.id], reclaim_interval=0.5)
        assert "dead" == await handle.status()
    assert 1.0 == value(registry, "taskmill_lease_reclaims_total", outcome="dead_lettered")
    assert 1.0 == value(registry, "taskmill_dead_letters_total", cause="worker_lost")


async def test_manager_attempts_are_counted_and_timed() -> None:
    """instrument(): counts per status with the manager's queue label, durations per attempt."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    failures = 0

    async def flaky() -> str:
        nonlocal failures
        await asyncio.sleep(1.0)
        failures += 1
        if failures == 1:
            raise ValueError("once")
        return "ok"

    async def boom() -> None:
        raise RuntimeError("never")

    async def forever() -> None:
        await asyncio.sleep(3600)

    retry = tm.Retry(max_attempts=2, backoff=tm.Constant(1.0))
    async with tm.TaskManager(concurrency=4) as mgr:
        undo = metrics.instrument(mgr, queue="inproc")
        good = await mgr.with_options(retry=retry, name="flaky").submit(flaky)
        bad = await mgr.with_options(name="boom").submit(boom)
        stuck = await mgr.with_options(name="forever").submit(forever)
        assert "ok" == await good
        with pytest.raises(tm.TaskFailed):
            await bad
        await asyncio.sleep(1.0)
        await metrics.refresh()
        assert 1.0 == value(registry, "taskmill_tasks_running", queue="inproc")
        stuck.cancel()
        with pytest.raises(tm.TaskCancelled):
            await stuck
        undo()
        late = await mgr.with_options(name="flaky").submit(boom)  # not counted any more
        with pytest.raises(tm.TaskFailed):
            await late

    total = "taskmill_tasks_total"
    assert 1.0 == value(registry, total, queue="inproc", task="flaky", status="retried")
    assert 1.0 == value(registry, total, queue="inproc", task="flaky", status="succeeded")
    assert 1.0 == value(registry, total, queue="inproc", task="boom", status="failed")
    assert 1.0 == value(registry, total, queue="inproc", task="forever", status="cancelled")
    assert 1.0 == value(registry, "taskmill_task_retries_total", queue="inproc", task="flaky")
    duration = "taskmill_task_duration_seconds"
    assert 2.0 == value(registry, f"{duration}_count", queue="inproc", task="flaky")
    assert 2.0 == pytest.approx(value(registry, f"{duration}_sum", queue="inproc", task="flaky"))
    assert value(registry, "taskmill_tasks_running", queue="inproc") is None  # source removed


async def test_a_second_store_or_manager_label_is_refused(store: SqliteStore) -> None:
    metrics = TaskMetrics(CollectorRegistry())
    metrics.watch_store(store)
    with pytest.raises(tm.ConfigurationError, match="one store"):
        metrics.watch_store(store)
    async with tm.TaskManager() as mgr:
        metrics.instrument(mgr)
        with pytest.raises(tm.ConfigurationError, match="already instrumented"):
            metrics.instrument(mgr)


def test_bad_scrape_timeout_is_refused() -> None:
    with pytest.raises(tm.ConfigurationError, match="scrape_timeout"):
        TaskMetrics(CollectorRegistry(), scrape_timeout=0)


def test_unregister_frees_the_names() -> None:
    """After unregister() a new TaskMetrics can use the same registry (a restarted worker)."""
    registry = CollectorRegistry()
    TaskMetrics(registry).unregister()
    assert "TaskMetrics(namespace='taskmill')" == repr(TaskMetrics(registry))
