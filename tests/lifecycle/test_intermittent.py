"""Intermittent: a reference-counted background operation (sc-bos intermittent.go)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import taskmill as tm
from taskmill.testing import wait_all_tasks_blocked


class Operation:
    """A start function that records starts and stops, optionally slow or failing."""

    def __init__(self, *, start_delay: float = 0.0, stop_delay: float = 0.0) -> None:
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self.events: list[tuple[str, float]] = []
        self.failures_left = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> tm.StopFn | None:
        await asyncio.sleep(self.start_delay)
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("cannot start")
        self.events.append(("start", self.now()))
        return self.stop

    async def stop(self) -> None:
        await asyncio.sleep(self.stop_delay)
        self.events.append(("stop", self.now()))


class TestAttach:
    async def test_first_attach_starts_last_detach_stops(self) -> None:
        """Start on the first attach, stop when the last attacher leaves."""
        op = Operation()
        it = tm.Intermittent(op.start, name="op")
        async with it.attach():
            async with it.attach():
                assert (True, 2) == (it.running, it.listeners)
            assert it.statistics().running
        assert not it.statistics().running
        assert [("start", 0.0), ("stop", 0.0)] == op.events

    async def test_stop_is_awaited(self) -> None:
        """Leaving the last attach returns only once stop() has finished."""
        op = Operation(stop_delay=3.0)
        it = tm.Intermittent(op.start)
        async with it.attach():
            pass
        assert ("stop", 3.0) == op.events[-1]
        assert 3.0 == op.now()

    async def test_attach_during_a_slow_stop_restarts_after_it(self) -> None:
        """An attacher arriving while the stop runs waits for it, then starts again."""
        op = Operation(stop_delay=3.0)
        it = tm.Intermittent(op.start)

        async def late_user() -> None:
            await asyncio.sleep(1)
            async with it.attach():
                assert it.running

        async def first_user() -> None:
            async with it.attach():
                pass

        await asyncio.gather(first_user(), late_user())
        assert [("start", 0.0), ("stop", 3.0), ("start", 3.0), ("stop", 6.0)] == op.events

    async def test_concurrent_attaches_wait_for_one_slow_start(self) -> None:
        """A second attacher waits behind the start in progress; one start only."""
        op = Operation(start_delay=5.0)
        it = tm.Intermittent(op.start)
        entered: list[float] = []

        async def user() -> None:
            async with it.attach():
                entered.append(op.now())
                await asyncio.sleep(1)

        await asyncio.gather(user(), user())
        assert [5.0, 5.0] == entered
        assert [("start", 5.0), ("stop", 6.0)] == op.events

    async def test_start_error_reaches_only_the_attacher_that_started(self) -> None:
        """The failing start's caller gets the error; the next attacher starts again."""
        op = Operation(start_delay=1.0)
        op.failures_left = 1
        it = tm.Intermittent(op.start)
        results: list[str] = []

        async def user() -> None:
            try:
                async with it.attach():
                    results.append("attached")
                    await asyncio.sleep(1)
            except ConnectionError:
                results.append("start failed")

        await asyncio.gather(user(), user())
        assert ["start failed", "attached"] == results
        stats = it.statistics()
        assert (1, 1, 1, 0) == (stats.starts, stats.start_failures, stats.stops, stats.listeners)

    async def test_restartable(self) -> None:
        """The operation can start and stop any number of times."""
        op = Operation()
        it = tm.Intermittent(op.start)
        for _ in range(3):
            async with it.attach():
                await asyncio.sleep(1)
        assert ["start", "stop"] * 3 == [kind for kind, _ in op.events]
        assert "<Intermittent 'intermittent' running=False listeners=0 starts=3>" == repr(it)

    async def test_none_and_sync_stop_functions(self) -> None:
        """start may return None (nothing to stop) or a plain function."""
        stopped: list[str] = []

        async def start_none() -> None:
            return None

        async def start_sync() -> tm.StopFn:
            return lambda: stopped.append("sync")

        for start in (start_none, start_sync):
            it = tm.Intermittent(start)
            async with it.attach():
                assert it.running
            assert not it.running
        assert ["sync"] == stopped

    async def test_cancelled_attacher_detaches(self) -> None:
        """Cancelling the task inside the block detaches and stops the operation."""
        op = Operation()
        it = tm.Intermittent(op.start)

        async def user() -> None:
            async with it.attach():
                await asyncio.Event().wait()

        task = asyncio.create_task(user())
        await wait_all_tasks_blocked()
        assert it.running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (False, 0) == (it.statistics().running, it.listeners)

    async def test_failing_stop_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A stop function that raises is logged; the operation counts as stopped."""

        async def start() -> tm.StopFn:
            def stop() -> None:
                raise OSError("stop failed")

            return stop

        it = tm.Intermittent(start, name="flaky")
        with caplog.at_level(logging.ERROR):
            async with it.attach():
                pass
        assert not it.running
        assert "stopping flaky failed" in caplog.text


class TestAttachUntil:
    async def test_until_event(self) -> None:
        """attach_until(event) keeps it running until the event is set."""
        op = Operation()
        it = tm.Intermittent(op.start)
        done = asyncio.Event()
        await it.attach_until(done)
        assert it.running
        await asyncio.sleep(4)
        done.set()
        await wait_all_tasks_blocked()
        assert [("start", 0.0), ("stop", 4.0)] == op.events

    async def test_until_future_already_done_starts_and_stops(self) -> None:
        """An attachment whose future is already done starts and promptly stops."""
        op = Operation()
        it = tm.Intermittent(op.start)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        await it.attach_until(future)
        await wait_all_tasks_blocked()
        assert ["start", "stop"] == [kind for kind, _ in op.events]

    async def test_until_failed_future_detaches(self) -> None:
        """A future that fails ends the attachment too."""
        op = Operation()
        it = tm.Intermittent(op.start)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await it.attach_until(future)
        future.set_exception(RuntimeError("gone"))
        await wait_all_tasks_blocked()
        assert not it.running

    async def test_start_error_is_raised(self) -> None:
        """attach_until raises the start error to its caller."""
        op = Operation()
        op.failures_left = 1
        it = tm.Intermittent(op.start)
        with pytest.raises(ConnectionError):
            await it.attach_until(asyncio.Event())
        assert 0 == it.listeners


class TestIdleKeepAlive:
    async def test_keep_alive_schedule(self) -> None:
        """run_for now, then again idle_for after the end of each keep-alive."""
        op = Operation()
        it = tm.Intermittent(op.start)
        task = asyncio.create_task(tm.idle_keep_alive(it, idle_for=10, run_for=2))
        await asyncio.sleep(30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [
            ("start", 0.0),
            ("stop", 2.0),
            ("start", 12.0),
            ("stop", 14.0),
            ("start", 24.0),
            ("stop", 26.0),
        ] == op.events

    async def test_start_errors_are_retried_next_time(self) -> None:
        """A failed keep-alive start is logged and tried again after idle_for."""
        op = Operation()
        op.failures_left = 1
        it = tm.Intermittent(op.start)
        task = asyncio.create_task(tm.idle_keep_alive(it, idle_for=10, run_for=2))
        await asyncio.sleep(11)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [("start", 10.0), ("stop", 11.0)] == op.events

    @pytest.mark.parametrize(("idle", "run"), [(0, 1), (1, 0), (-1, 1), (1, float("inf"))])
    async def test_invalid_durations(self, idle: float, run: float) -> None:
        """Durations must be finite and > 0."""
        with pytest.raises(tm.ConfigurationError):
            await tm.idle_keep_alive(tm.Intermittent(Operation().start), idle_for=idle, run_for=run)
