"""Stopping: graceful drain, immediate cancel, timeouts, and the report."""

from __future__ import annotations

import asyncio

import pytest

from taskmill import (
    ConfigurationError,
    Constant,
    Retry,
    TaskCancelled,
    TaskHandle,
    TaskManager,
    TaskStatus,
)
from taskmill.testing import wait_all_tasks_blocked


async def _loaded(mgr: TaskManager) -> dict[str, list[TaskHandle[None]]]:
    """2 running (10 s), 3 queued (1 s), 2 scheduled, 1 retrying."""

    async def flaky() -> None:
        raise ValueError

    running = [await mgr.submit(asyncio.sleep, 10) for _ in range(2)]
    await wait_all_tasks_blocked()
    queued = [await mgr.submit(asyncio.sleep, 1) for _ in range(3)]
    scheduled = [await mgr.with_options(delay=100).submit(asyncio.sleep, 1) for _ in range(2)]
    retry = Retry(max_attempts=3, backoff=Constant(100))
    retrying = [await mgr.with_options(retry=retry, priority=-1).submit(flaky)]
    await wait_all_tasks_blocked()
    return {"running": running, "queued": queued, "scheduled": scheduled, "retrying": retrying}


def _ids(handles: list[TaskHandle[None]]) -> set[str]:
    return {h.id for h in handles}


class TestGraceful:
    async def test_drains_queued_and_running_abandons_waiting(self) -> None:
        """Graceful: queued and running finish; scheduled and retrying are abandoned."""
        loop = asyncio.get_running_loop()
        mgr = TaskManager(concurrency=2)
        await mgr.start()
        tasks = await _loaded(mgr)
        report = await mgr.stop()
        assert 12.0 == loop.time()  # 10 s running, then 3 x 1 s on 2 workers
        assert report.graceful
        assert not report.timed_out
        assert _ids(tasks["running"] + tasks["queued"]) == set(report.finished)
        assert _ids(tasks["scheduled"] + tasks["retrying"]) == set(report.abandoned)
        assert () == report.cancelled
        for handle in tasks["scheduled"] + tasks["retrying"]:
            assert TaskStatus.CANCELLED == handle.status
        assert 0 == mgr.statistics().live

    async def test_timeout_falls_back_to_cancelling(self) -> None:
        """A graceful stop that runs out of time cancels and abandons the rest."""
        loop = asyncio.get_running_loop()
        mgr = TaskManager(concurrency=2)
        await mgr.start()
        tasks = await _loaded(mgr)
        report = await mgr.stop(timeout=5)
        assert 5.0 == loop.time()
        assert report.timed_out
        assert _ids(tasks["running"]) == set(report.cancelled)
        waiting = tasks["queued"] + tasks["scheduled"] + tasks["retrying"]
        assert _ids(waiting) == set(report.abandoned)
        assert () == report.finished
        with pytest.raises(TaskCancelled):
            await tasks["running"][0]

    async def test_failures_during_drain_are_not_retried(self) -> None:
        """A task failing during the drain has its retry abandoned, not run."""
        starts: list[float] = []

        async def flaky() -> None:
            starts.append(asyncio.get_running_loop().time())
            await asyncio.sleep(1)
            raise ValueError

        mgr = TaskManager(retry=Retry(max_attempts=5, backoff=Constant(0)))
        await mgr.start()
        handle = await mgr.submit(flaky)
        await wait_all_tasks_blocked()
        report = await mgr.stop()
        assert [0.0] == starts
        assert (handle.id,) == report.abandoned
        assert TaskStatus.CANCELLED == handle.status
        assert isinstance(handle.error, ValueError)

    async def test_context_manager_drains(self) -> None:
        """Leaving `async with` normally is a graceful stop."""
        async with TaskManager(concurrency=1) as mgr:
            handles = [await mgr.submit(asyncio.sleep, 1, i) for i in range(3)]
        assert [0, 1, 2] == [h.result() for h in handles]
        assert "stopped" == mgr.state

    async def test_context_manager_cancels_on_error(self) -> None:
        """Leaving `async with` with an exception is an immediate stop."""
        handles: list[TaskHandle[None]] = []

        async def crash() -> None:
            async with TaskManager(concurrency=1) as mgr:
                handles.append(await mgr.submit(asyncio.sleep, 100))
                handles.append(await mgr.submit(asyncio.sleep, 100))
                await wait_all_tasks_blocked()
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await crash()
        running, queued = handles
        assert 0.0 == asyncio.get_running_loop().time()
        assert TaskStatus.CANCELLED == running.status
        assert TaskStatus.CANCELLED == queued.status


class TestImmediate:
    async def test_cancels_running_and_abandons_the_rest(self) -> None:
        """Immediate: running tasks are cancelled, everything else abandoned."""
        mgr = TaskManager(concurrency=2)
        await mgr.start()
        tasks = await _loaded(mgr)
        report = await mgr.stop(graceful=False)
        assert 0.0 == asyncio.get_running_loop().time()
        assert not report.graceful
        assert _ids(tasks["running"]) == set(report.cancelled)
        waiting = tasks["queued"] + tasks["scheduled"] + tasks["retrying"]
        assert _ids(waiting) == set(report.abandoned)
        stats = mgr.statistics()
        assert (0, 8) == (stats.live, stats.cancelled)

    async def test_task_ignoring_cancellation_is_recorded_after_a_grace(self) -> None:
        """A task that refuses to stop is recorded cancelled after 1 s; stop returns."""
        release = asyncio.Event()

        async def stubborn() -> None:
            while not release.is_set():
                try:
                    await asyncio.sleep(100)
                except asyncio.CancelledError:
                    continue

        mgr = TaskManager()
        await mgr.start()
        handle = await mgr.submit(stubborn)
        await wait_all_tasks_blocked()
        try:
            report = await mgr.stop(graceful=False)
        finally:
            release.set()
        assert 2.0 == asyncio.get_running_loop().time()  # 1 s grace + 1 s for its worker
        assert (handle.id,) == report.cancelled
        assert TaskStatus.CANCELLED == handle.status


class TestIdempotence:
    async def test_start_and_stop_are_idempotent(self) -> None:
        """marionette: Start twice and Stop twice are harmless; stop repeats its report."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.start()
        first = await mgr.stop()
        second = await mgr.stop(graceful=False)
        assert first is second
        assert "stopped" == mgr.state

    async def test_concurrent_stops_share_one_report(self) -> None:
        """Two stop() calls at once both return the same report."""
        mgr = TaskManager()
        await mgr.start()
        _ = await mgr.submit(asyncio.sleep, 3)
        first, second = await asyncio.gather(mgr.stop(), mgr.stop())
        assert first is second
        assert 3.0 == asyncio.get_running_loop().time()

    async def test_stop_before_start(self) -> None:
        """Stopping a manager that never started is an empty report."""
        report = await TaskManager().stop()
        assert () == report.finished + report.cancelled + report.abandoned

    async def test_stop_timeout_must_be_valid(self) -> None:
        """A negative timeout is refused."""
        mgr = TaskManager()
        with pytest.raises(ConfigurationError):
            await mgr.stop(timeout=-1)

    async def test_cancelled_stop_still_finishes_everything(self) -> None:
        """If stop() itself is cancelled, no task is left unfinished."""
        mgr = TaskManager(concurrency=1)
        await mgr.start()
        running = await mgr.submit(asyncio.sleep, 100)
        queued = await mgr.submit(asyncio.sleep, 100)
        await wait_all_tasks_blocked()
        stopper = asyncio.create_task(mgr.stop())
        await wait_all_tasks_blocked()
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper
        await wait_all_tasks_blocked()
        assert TaskStatus.CANCELLED == queued.status
        assert TaskStatus.CANCELLED == running.status
        assert "stopped" == mgr.state
        report = await mgr.stop()
        assert queued.id in report.abandoned

    async def test_no_tasks_leak(self) -> None:
        """After stop, the manager's workers and scheduler are gone."""
        mgr = TaskManager(concurrency=8)
        await mgr.start()
        _ = await mgr.submit(asyncio.sleep, 1)
        await mgr.stop()
        assert [] == [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
