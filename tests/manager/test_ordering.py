"""Priorities and scheduling: who runs first, and when."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from taskmill import ConfigurationError, NotRunning, TaskManager, TaskStatus, _clock
from taskmill.testing import wait_all_tasks_blocked


class Recorder:
    """Records (label, loop time) as tasks start."""

    def __init__(self) -> None:
        self.events: list[tuple[object, float]] = []

    async def __call__(self, label: object, seconds: float = 0.0) -> object:
        self.events.append((label, asyncio.get_running_loop().time()))
        if seconds:
            await asyncio.sleep(seconds)
        return label

    @property
    def labels(self) -> list[object]:
        return [label for label, _ in self.events]


async def _blocked(mgr: TaskManager) -> asyncio.Event:
    """Occupy the manager's only worker until the returned event is set."""
    gate = asyncio.Event()
    _ = await mgr.submit(gate.wait)
    await wait_all_tasks_blocked()
    return gate


class TestPriority:
    async def test_go_worker_sequence_pops_best_first(self) -> None:
        """go-worker v0.0.5 popped 1,10,5,90,150 as 5,10,90,150,1; ours pops 1,5,10,90,150."""
        record = Recorder()
        async with TaskManager(concurrency=1) as mgr:
            gate = await _blocked(mgr)
            for priority in (1, 10, 5, 90, 150):
                _ = await mgr.with_options(priority=priority).submit(record, priority)
            gate.set()
        assert [1, 5, 10, 90, 150] == record.labels

    async def test_fifo_within_a_priority(self) -> None:
        """Equal priorities run in submission order (go-worker broke ties by UUID)."""
        record = Recorder()
        async with TaskManager(concurrency=1) as mgr:
            gate = await _blocked(mgr)
            high = mgr.with_options(priority=-1)
            for i in range(5):
                _ = await mgr.submit(record, ("low", i))
                _ = await high.submit(record, ("high", i))
            gate.set()
        expected = [("high", i) for i in range(5)] + [("low", i) for i in range(5)]
        assert expected == record.labels

    async def test_negative_and_large_priorities(self) -> None:
        """Any int works as a priority."""
        record = Recorder()
        async with TaskManager(concurrency=1) as mgr:
            gate = await _blocked(mgr)
            for priority in (10**12, -(10**12), 0, 7, -7):
                _ = await mgr.with_options(priority=priority).submit(record, priority)
            gate.set()
        assert [-(10**12), -7, 0, 7, 10**12] == record.labels


class TestScheduling:
    async def test_delay_runs_at_exact_virtual_time(self) -> None:
        """A delayed task starts exactly `delay` seconds after submission."""
        record = Recorder()
        async with TaskManager() as mgr:
            handle = await mgr.with_options(delay=2.5).submit(record, "x")
            assert TaskStatus.SCHEDULED == handle.status
            assert handle.scheduled_for is not None
            await handle
        assert [("x", 2.5)] == record.events
        assert handle.started_at == handle.scheduled_for

    async def test_at_uses_wall_time(self) -> None:
        """`at` is an aware wall-clock time, converted to the loop clock."""
        record = Recorder()
        async with TaskManager() as mgr:
            when = _clock.now() + dt.timedelta(hours=3)
            await (await mgr.with_options(at=when).submit(record, "later")).wait()
        assert ["later"] == record.labels
        assert 3 * 3600.0 == pytest.approx(record.events[0][1], abs=1e-6)

    async def test_at_in_another_timezone(self) -> None:
        """Any aware timezone works."""
        record = Recorder()
        tz = dt.timezone(dt.timedelta(hours=-5))
        async with TaskManager() as mgr:
            when = (_clock.now() + dt.timedelta(seconds=90)).astimezone(tz)
            await (await mgr.with_options(at=when).submit(record, "x")).wait()
        assert 90.0 == pytest.approx(record.events[0][1], abs=1e-6)

    async def test_naive_datetime_is_rejected(self) -> None:
        """marionette rejected zero times; we reject naive ones (ambiguous)."""
        async with TaskManager() as mgr:
            with pytest.raises(ConfigurationError):
                mgr.with_options(at=dt.datetime(2030, 1, 1))  # noqa: DTZ001  # under test

    async def test_past_times_run_as_soon_as_possible(self) -> None:
        """A time in the past is due at once (not rejected)."""
        record = Recorder()
        async with TaskManager() as mgr:
            await asyncio.sleep(5)
            past = _clock.now() - dt.timedelta(days=1)
            await (await mgr.with_options(at=past).submit(record, "x")).wait()
        assert [("x", 5.0)] == record.events

    async def test_equal_times_run_fifo_and_in_time_order(self) -> None:
        """marionette: equal timestamps keep insertion order; earlier times first."""
        record = Recorder()
        async with TaskManager(concurrency=1) as mgr:
            at = _clock.now() + dt.timedelta(seconds=10)
            for i in range(5):
                _ = await mgr.with_options(at=at).submit(record, ("ten", i))
            _ = await mgr.with_options(delay=3).submit(record, "three")
            _ = await mgr.with_options(delay=20).submit(record, "twenty")
            await mgr.join()
        expected = ["three", *[("ten", i) for i in range(5)], "twenty"]
        assert expected == record.labels
        assert [3.0, 10.0, 10.0, 10.0, 10.0, 10.0, 20.0] == [t for _, t in record.events]

    async def test_earlier_insert_wakes_the_sleeper(self) -> None:
        """A new earlier task is not delayed behind a later head."""
        record = Recorder()
        async with TaskManager() as mgr:
            late = await mgr.with_options(delay=100).submit(record, "late")
            await wait_all_tasks_blocked()
            early = await mgr.with_options(delay=1).submit(record, "early")
            await early
            assert TaskStatus.SCHEDULED == late.status
            await late
        assert [("early", 1.0), ("late", 100.0)] == record.events

    async def test_due_tasks_wait_for_room_without_spinning(self) -> None:
        """marionette spun while its output was full; ours waits for a free slot."""
        record = Recorder()
        loop = asyncio.get_running_loop()
        async with TaskManager(concurrency=1, queue_size=1) as mgr:
            _ = await mgr.submit(record, "busy", 10)  # runs 0..10
            await wait_all_tasks_blocked()
            _ = await mgr.submit(record, "queued", 0)  # fills the queue
            scheduled = [await mgr.with_options(delay=1).submit(record, i) for i in range(3)]
            # On virtual time the clock only moves when the loop is idle: a sleeper
            # spinning on due-but-blocked tasks would keep it busy forever.
            await asyncio.sleep(5)
            assert 5.0 == loop.time()
            assert 3 == mgr.statistics().scheduled  # due, but no room yet
            await asyncio.gather(*scheduled)
        assert ["busy", "queued", 0, 1, 2] == record.labels
        assert [0.0, 10.0, 10.0, 10.0, 10.0] == [t for _, t in record.events]

    async def test_many_scheduled_tasks_run_in_time_order(self) -> None:
        """1,000 tasks at shuffled times start in time order, each exactly on time."""
        import random

        rng = random.Random(4)
        delays = [rng.randrange(0, 500) / 10 for _ in range(1000)]
        record = Recorder()
        async with TaskManager(concurrency=1000) as mgr:
            for i, delay in enumerate(delays):
                _ = await mgr.with_options(delay=delay).submit(record, i)
            await mgr.join()
        assert sorted(range(1000), key=lambda i: (delays[i], i)) == record.labels
        assert all(t == delays[i] for i, t in record.events if isinstance(i, int))


class TestSubmitAtAndAfter:
    async def test_submit_after_and_at_run_on_time(self) -> None:
        """Per-task times without a submitter per task (marionette Delay / Schedule)."""
        record = Recorder()
        async with TaskManager() as mgr:
            after = await mgr.submit_after(2.5, record, "after")
            at = await mgr.submit_at(_clock.now() + dt.timedelta(seconds=1), record, "at")
            past = await mgr.submit_at(_clock.now() - dt.timedelta(days=1), record, "past")
            assert TaskStatus.SCHEDULED == after.status
            await asyncio.gather(after, at, past)
        assert ["past", "at", "after"] == record.labels
        assert [0.0, 1.0, 2.5] == pytest.approx([t for _, t in record.events], abs=1e-6)

    async def test_submitter_options_still_apply(self) -> None:
        """submit_after on a TaskSubmitter keeps its options (priority, name)."""
        record = Recorder()
        async with TaskManager(concurrency=1) as mgr:
            low = mgr.with_options(priority=5, name="low")
            high = mgr.with_options(priority=-5)
            handles = [
                await low.submit_after(1, record, "low"),
                await high.submit_after(1, record, "high"),
            ]
            await asyncio.gather(*handles)
            assert "low" == handles[0].name
        assert ["high", "low"] == record.labels

    async def test_bad_times_and_not_running(self) -> None:
        """Negative or non-finite delays, naive datetimes and a stopped manager are refused."""
        mgr = TaskManager()
        with pytest.raises(NotRunning):
            _ = await mgr.submit_after(1, asyncio.sleep, 0)
        await mgr.start()
        for delay in (-1, float("inf"), float("nan"), True):
            with pytest.raises(ConfigurationError):
                _ = await mgr.submit_after(delay, asyncio.sleep, 0)
        with pytest.raises(ConfigurationError):
            _ = await mgr.submit_at(dt.datetime(2030, 1, 1), asyncio.sleep, 0)  # noqa: DTZ001
        await mgr.stop()
        with pytest.raises(NotRunning):
            _ = await mgr.submit_at(_clock.now(), asyncio.sleep, 0)
