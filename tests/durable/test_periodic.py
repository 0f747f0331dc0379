"""Periodic durable tasks: instants, declaration, exactly once across workers, misfires.

Everything here runs on virtual time over a real SqliteStore file: the store, the
workers and the schedulers all read the virtual wall clock (``taskmill._clock``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import taskmill as tm
from taskmill import _clock
from taskmill._periodic import misfire_lateness, periodic_task_id
from taskmill.sqlite import SqliteStore

WALL0 = 1_700_000_000.0  # a multiple of 10 s: instants of every=10 fall on it
MS0 = int(WALL0 * 1000)
EVERY = 10.0
pytestmark = pytest.mark.virtual_time(wall_start=WALL0)

StartWorker = Callable[..., Awaitable[tm.DurableWorker]]


def make_registry(**options: object) -> tuple[tm.TaskRegistry, list[tuple[int, float]]]:
    """A registry with one periodic task ``tick`` that records (instant ms, wall time)."""
    registry = tm.TaskRegistry()
    runs: list[tuple[int, float]] = []
    options.setdefault("every", EVERY)

    @registry.periodic(name="tick", **options)  # type: ignore[arg-type]
    async def tick(instant: dt.datetime) -> None:
        runs.append((round(instant.timestamp() * 1000), _clock.wall_time()))

    @registry.task(name="noop")
    async def noop() -> None: ...

    return registry, runs


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


@pytest.fixture
async def workers(store: SqliteStore) -> AsyncIterator[Callable[..., Awaitable[tm.DurableWorker]]]:
    """Factory: start a worker on ``registry``; stopped at teardown (or by the test)."""
    running: list[tuple[tm.DurableWorker, asyncio.Task[None]]] = []

    async def start(registry: tm.TaskRegistry, **options: object) -> tm.DurableWorker:
        worker = tm.DurableWorker(store, registry, lease=10.0, **options)  # type: ignore[arg-type]
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in running:
        await worker.stop(graceful=False)
        await task


async def statuses(store: SqliteStore) -> dict[int, str]:
    """Instant ms -> status of every periodic task in the store."""
    found = {}
    for record in await store.list(limit=1000):
        if record.task_id.startswith("periodic:tick:"):
            found[int(record.task_id.rsplit(":", 1)[1])] = str(record.status)
    return found


# -- the schedule ------------------------------------------------------------------------------
class TestInstants:
    def test_epoch_aligned_by_default(self) -> None:
        """Instants are multiples of ``every`` since the epoch: every process agrees."""
        spec = tm.PeriodicSpec(name="t", every=60)
        assert (60_000, 0, 60_000) == (spec.every_ms, spec.offset_ms, spec.grace_ms)
        assert 120_000 == spec.at_or_before(179_999)
        assert 180_000 == spec.at_or_before(180_000)
        assert 180_000 == spec.after(179_999)
        assert 240_000 == spec.after(180_000)

    def test_start_sets_the_offset(self) -> None:
        """``start`` aligns the instants (here: 15 s past each minute)."""
        start = dt.datetime(2024, 1, 1, 0, 0, 15, tzinfo=dt.UTC)
        spec = tm.PeriodicSpec(name="t", every=60, start=start)
        assert 15_000 == spec.offset_ms
        base = int(start.timestamp() * 1000)
        assert base == spec.at_or_before(base + 59_999)
        assert base + 60_000 == spec.after(base)
        assert base - 60_000 == spec.at_or_before(base - 1)

    def test_sub_second_interval(self) -> None:
        """Half a second is exact in milliseconds."""
        spec = tm.PeriodicSpec(name="t", every=0.5, misfire_grace=0.1)
        assert (500, 100) == (spec.every_ms, spec.grace_ms)
        assert 1_500 == spec.at_or_before(1_999)

    def test_task_ids_round_trip(self) -> None:
        """``periodic:<name>:<ms>``; other ids (and misaligned instants) are not instants."""
        spec = tm.PeriodicSpec(name="reports.daily", every=10)
        assert "periodic:reports.daily:20000" == spec.task_id(20_000)
        assert "periodic:reports.daily:20000" == periodic_task_id("reports.daily", 20_000)
        assert 20_000 == spec.instant_of("periodic:reports.daily:20000")
        assert None is spec.instant_of("periodic:reports.daily:20001")  # not on the grid
        assert None is spec.instant_of("periodic:reports.other:20000")
        assert None is spec.instant_of("periodic:reports.daily:-5")
        assert None is spec.instant_of("0123abcd")

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"every": 0}, "every"),
            ({"every": -1}, "every"),
            ({"every": float("nan")}, "every"),
            ({"every": True}, "every"),
            ({"every": 1 / 3}, "whole number of milliseconds"),
            ({"every": 10, "misfire_grace": 11}, "must not exceed every"),
            ({"every": 10, "misfire_grace": 0}, "misfire_grace"),
            ({"every": 10, "start": dt.datetime(2024, 1, 1)}, "aware"),  # noqa: DTZ001
        ],
    )
    def test_bad_schedules(self, options: dict[str, object], message: str) -> None:
        """Invalid schedules raise ConfigurationError naming the problem."""
        with pytest.raises(tm.ConfigurationError, match=message):
            tm.PeriodicSpec(name="t", **options)  # type: ignore[arg-type]


class TestDeclaration:
    def test_periodic_registers_the_task_and_its_schedule(self) -> None:
        """``@registry.periodic`` registers a normal task plus its schedule."""
        registry, _ = make_registry(queue="cron", priority=-1)
        spec = registry.get("tick")
        assert ("cron", -1) == (spec.queue, spec.priority)
        schedule = registry.periodic_spec("tick")
        assert schedule is not None
        assert (10_000, "tick") == (schedule.every_ms, schedule.name)
        assert (schedule,) == registry.periodic_specs()
        assert None is registry.periodic_spec("noop")

    def test_function_must_take_the_instant(self) -> None:
        """A function that cannot take one positional argument is refused, not registered."""
        registry = tm.TaskRegistry()

        async def no_args() -> None: ...

        with pytest.raises(tm.ConfigurationError, match="scheduled instant"):
            registry.periodic(every=5, name="bad")(no_args)
        assert "bad" not in registry
        assert () == registry.periodic_specs()
        registry.periodic(every=5, name="bad")(lambda instant: None)  # the name is free again

    def test_bad_schedule_fails_at_the_decorator(self) -> None:
        """The schedule is checked before anything is registered."""
        registry = tm.TaskRegistry()
        with pytest.raises(tm.ConfigurationError, match="every"):
            registry.periodic(every=0, name="x")
        assert 0 == len(registry)

    def test_include_copies_schedules(self) -> None:
        """A registry that includes another schedules its periodic tasks too."""
        library, _ = make_registry()
        app = tm.TaskRegistry()
        app.include(library)
        assert library.periodic_specs() == app.periodic_specs()

    async def test_unencodable_instant_fails_at_worker_creation(self, store: SqliteStore) -> None:
        """A parameter annotated with a type a datetime can't be is a ConfigurationError."""
        registry = tm.TaskRegistry()

        @registry.periodic(every=5, name="wrong")
        async def wrong(instant: int) -> None: ...

        with pytest.raises(tm.ConfigurationError, match="'wrong' cannot be enqueued"):
            tm.DurableWorker(store, registry)
        assert None is tm.DurableWorker(store, registry, periodic=False).scheduler

    async def test_only_served_queues_are_scheduled(self, store: SqliteStore) -> None:
        """A worker schedules the periodic tasks of the queues it claims from."""
        registry, _ = make_registry(queue="cron")
        assert None is tm.DurableWorker(store, registry).scheduler
        worker = tm.DurableWorker(store, registry, queues=("default", "cron"))
        assert worker.scheduler is not None
        assert ("tick",) == tuple(s.name for s in worker.scheduler.specs)


# -- exactly once across workers -----------------------------------------------------------------
async def test_three_workers_run_each_instant_once_on_time(
    store: SqliteStore, workers: StartWorker
) -> None:
    """Three workers on one store: every instant is created once and runs once, never early."""
    registry, runs = make_registry(misfire_grace=2.0)
    started = [await workers(registry) for _ in range(3)]
    await asyncio.sleep(10 * EVERY + 1)
    instants = [MS0 + k * 10_000 for k in range(11)]  # WALL0 (catch-up) .. WALL0 + 100 s
    assert instants == [instant for instant, _ in runs]
    for instant, ran_at in runs:
        assert instant / 1000 <= ran_at <= instant / 1000 + 0.5
    stats = [w.scheduler.statistics() for w in started if w.scheduler is not None]
    assert 12 == sum(s.created for s in stats)  # 11 run + the next one, waiting
    assert sum(s.enqueued for s in stats) > sum(s.created for s in stats)  # others: no-ops
    assert {"succeeded"} == {
        status for k, status in (await statuses(store)).items() if k < MS0 + 110_000
    }
    assert "scheduled" == (await statuses(store))[MS0 + 110_000]
    assert 0 == sum(w.statistics().misfired for w in started)


async def test_catch_up_on_first_start_and_none_outside_the_grace(
    store: SqliteStore, workers: StartWorker
) -> None:
    """Starting 3 s after an instant: caught up with the default grace, not with grace 2 s."""
    await asyncio.sleep(3.0)
    registry, runs = make_registry()
    await workers(registry)
    await asyncio.sleep(0.1)
    assert [MS0] == [instant for instant, _ in runs]

    strict, strict_runs = make_registry(misfire_grace=2.0)
    await asyncio.sleep(10.0)  # now WALL0 + 13.1: the last instant is 3.1 s old
    worker = await workers(strict, worker_id="strict")
    await asyncio.sleep(0.1)
    assert [] == strict_runs
    assert worker.scheduler is not None
    assert 0 == worker.scheduler.statistics().catch_ups


async def test_outage_of_ten_intervals_runs_one_catch_up(
    store: SqliteStore, workers: StartWorker
) -> None:
    """All workers down for 10 intervals: the stale pre-enqueued instant is skipped
    (misfired, ``cancelled``), the latest missed instant runs once, the others never exist."""
    registry, runs = make_registry(misfire_grace=5.0)
    first = await workers(registry)
    await asyncio.sleep(2 * EVERY + 1)  # runs WALL0, +10, +20; +30 is enqueued ahead
    await first.stop()
    assert [MS0, MS0 + 10_000, MS0 + 20_000] == [i for i, _ in runs]

    await asyncio.sleep(10 * EVERY + 2)  # now WALL0 + 123: down since +21
    second = await workers(registry)
    await asyncio.sleep(0.5)
    assert [MS0 + 120_000] == [i for i, _ in runs[3:]]  # the one catch-up
    found = await statuses(store)
    assert "cancelled" == found[MS0 + 30_000]  # stale, first delivery 93 s late: skipped
    assert 1 == second.statistics().misfired
    assert set(found) == {MS0 + k * 10_000 for k in (0, 1, 2, 3, 12, 13)}
    await asyncio.sleep(EVERY)
    assert MS0 + 130_000 == runs[-1][0]
    assert 5 == len(runs)


async def test_late_first_delivery_is_skipped_but_retries_and_manual_runs_are_not(
    store: SqliteStore,
) -> None:
    """The misfire rule only concerns an instant's first delivery."""
    spec = tm.PeriodicSpec(name="tick", every=EVERY, misfire_grace=2.0)
    instant = MS0 - 10_000  # 10 s ago
    task_id = spec.task_id(instant)
    assert 10.0 == misfire_lateness(spec, task_id, attempt=1, deliveries=1)
    assert None is misfire_lateness(spec, task_id, attempt=2, deliveries=2)
    assert None is misfire_lateness(spec, task_id, attempt=1, deliveries=2)
    assert None is misfire_lateness(spec, "manual-id", attempt=1, deliveries=1)
    recent = spec.task_id(MS0)
    assert None is misfire_lateness(spec, recent, attempt=1, deliveries=1)


async def test_submitted_by_hand_runs_whatever_its_age(
    store: SqliteStore, workers: StartWorker
) -> None:
    """``client.submit`` of a periodic task with an old instant is an ordinary task."""
    registry, runs = make_registry()
    client = tm.DurableClient(store, registry)
    old = dt.datetime.fromtimestamp(WALL0 - 3600, dt.UTC)
    handle = await client.with_options(delay=30.0).submit("tick", old)
    await workers(registry, periodic=False)
    await handle.result(timeout=60)
    assert [int((WALL0 - 3600) * 1000)] == [i for i, _ in runs]


async def test_enqueue_failures_are_retried(store: SqliteStore, workers: StartWorker) -> None:
    """A store error while scheduling is logged and retried; scheduling resumes."""
    registry, runs = make_registry()
    real = store.enqueue_many
    failures = 0

    async def flaky(tasks: object) -> object:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise tm.BackendUnavailable("store down")
        return await real(tasks)  # type: ignore[arg-type]

    store.enqueue_many = flaky  # type: ignore[method-assign,assignment]
    worker = await workers(registry)
    await asyncio.sleep(EVERY + 1)
    assert [MS0, MS0 + 10_000] == [i for i, _ in runs]
    assert worker.scheduler is not None
    assert 3 == worker.scheduler.statistics().failures
