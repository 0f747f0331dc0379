"""Lifecycle[C] and the start/stop/configure capability helpers (sc-bos lifecycle.go)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import pytest

import taskmill as tm
from taskmill.testing import wait_all_tasks_blocked

S = tm.LifecycleStatus


def status(lc: tm.Lifecycle[object]) -> tm.LifecycleStatus:
    """Read the status through a call (so the type checker does not pin it)."""
    return lc.status


@dataclass
class Driver:
    """Records every apply; can be told to block or fail."""

    applied: list[object] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail_on: object = None
    background_cancelled: list[object] = field(default_factory=list)

    async def apply(self, config: object, scope: tm.ConfigScope) -> None:
        self.applied.append(config)
        scope.start_soon(self.serve, config)
        await asyncio.sleep(0)  # let the background task start
        if self.gate is not None:
            await self.gate.wait()
        if config == self.fail_on:
            raise ValueError(f"bad config {config!r}")

    async def serve(self, config: object) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.background_cancelled.append(config)
            raise


class TestSeedSuite:
    """The sc-bos lifecycle_test.go cases."""

    def test_create_is_inactive(self) -> None:
        """A new lifecycle is inactive."""
        assert S.INACTIVE is tm.Lifecycle(Driver().apply).status

    async def test_start_is_active_before_any_config(self) -> None:
        """Start makes it active at once, before any config (like sc-bos)."""
        lc = tm.Lifecycle(Driver().apply)
        await lc.start()
        assert S.ACTIVE is lc.status
        await lc.stop()

    async def test_stop_without_start_is_inactive(self) -> None:
        """Stopping a lifecycle that never started does nothing."""
        lc = tm.Lifecycle(Driver().apply)
        await lc.stop()
        assert S.INACTIVE is lc.status

    async def test_start_stop(self) -> None:
        """Start then stop: inactive again."""
        lc = tm.Lifecycle(Driver().apply)
        await lc.start()
        await lc.stop()
        assert S.INACTIVE is lc.status
        assert not lc.running

    async def test_configure_observes_loading_then_active(self) -> None:
        """configure: status goes loading while apply runs, then active."""
        driver = Driver(gate=asyncio.Event())
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        await lc.configure('{"port": 1}')
        assert await lc.wait_for_state_change(S.ACTIVE)
        assert S.LOADING is status(lc)
        driver.gate.set()  # type: ignore[union-attr]
        assert await lc.wait_for_state_change(S.LOADING)
        assert S.ACTIVE is status(lc)
        assert [{"port": 1}] == driver.applied
        await lc.stop()

    async def test_failing_apply_is_error(self) -> None:
        """An apply that raises puts the lifecycle in error, with the error kept."""
        lc = tm.Lifecycle(Driver(fail_on=7).apply)
        await lc.start()
        await lc.configure("7")
        await lc.wait_for_state_change(S.ACTIVE)
        await lc.wait_for_state_change(S.LOADING)
        assert S.ERROR is lc.status
        assert isinstance(lc.error, ValueError)
        await lc.stop()


class TestConfigure:
    async def test_configure_returns_before_the_apply(self) -> None:
        """Checklist 5: configure() queues and returns; the apply happens afterwards."""
        driver = Driver(gate=asyncio.Event())
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        await lc.configure("1")
        assert ([], S.ACTIVE) == (driver.applied, status(lc))
        await wait_all_tasks_blocked()
        assert ([1], S.LOADING) == (driver.applied, status(lc))
        await lc.stop()

    async def test_wait_returns_the_apply_error(self) -> None:
        """configure(wait=True) returns the apply error (None when it applied)."""
        lc = tm.Lifecycle(Driver(fail_on=2).apply)
        await lc.start()
        assert await lc.configure("1", wait=True) is None
        error = await lc.configure("2", wait=True)
        assert isinstance(error, ValueError)
        assert S.ERROR is lc.status
        assert await lc.configure("3", wait=True) is None
        assert (S.ACTIVE, None) == (lc.status, lc.error)
        await lc.stop()

    async def test_parse_error_is_raised_to_the_caller(self) -> None:
        """A config that does not parse is the caller's ConfigurationError; nothing queued."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        with pytest.raises(tm.ConfigurationError) as info:
            await lc.configure("{not json")
        assert isinstance(info.value.__cause__, json.JSONDecodeError)
        await wait_all_tasks_blocked()
        assert ([], S.ACTIVE) == (driver.applied, lc.status)
        await lc.stop()

    async def test_every_config_applied_in_order(self) -> None:
        """No coalescing: three quick configs are applied one after the other."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        for n in range(3):
            await lc.configure(str(n))
        await lc.configure("3", wait=True)
        assert [0, 1, 2, 3] == driver.applied
        await lc.stop()

    async def test_previous_scope_is_cancelled_before_the_next_apply(self) -> None:
        """The previous config's background work is torn down before the next apply."""
        order: list[str] = []

        async def apply(config: int, scope: tm.ConfigScope) -> None:
            order.append(f"apply {config}")

            async def serve() -> None:
                try:
                    await asyncio.Event().wait()
                finally:
                    order.append(f"stop {config}")

            scope.start_soon(serve)

        lc: tm.Lifecycle[int] = tm.Lifecycle(apply)
        await lc.start()
        await lc.configure("1", wait=True)
        await lc.configure("2", wait=True)
        await lc.stop()
        assert ["apply 1", "stop 1", "apply 2", "stop 2"] == order

    async def test_failed_reconfigure_leaves_nothing_running(self) -> None:
        """A failed apply: the previous config and the failed one's own work are torn down."""
        driver = Driver(fail_on=2)
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        await lc.configure("1", wait=True)
        await lc.configure("2", wait=True)
        assert [1, 2] == driver.background_cancelled
        await lc.stop()
        assert [1, 2] == driver.background_cancelled

    async def test_custom_parser(self) -> None:
        """parse= turns raw data into the config type."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply, parse=lambda data: str(data).upper())
        await lc.start()
        await lc.configure("abc", wait=True)
        assert ["ABC"] == driver.applied
        await lc.stop()


class TestStates:
    async def test_double_start_raises(self) -> None:
        """A second start is AlreadyStarted (sc-bos leaks a second loop)."""
        lc = tm.Lifecycle(Driver().apply)
        await lc.start()
        with pytest.raises(tm.AlreadyStarted):
            await lc.start()
        await lc.stop()

    async def test_configure_before_start_or_after_stop_raises(self) -> None:
        """configure outside start..stop is NotRunning (sc-bos blocks after 5 calls)."""
        lc = tm.Lifecycle(Driver().apply)
        with pytest.raises(tm.NotRunning):
            await lc.configure("1")
        await lc.start()
        await lc.stop()
        with pytest.raises(tm.NotRunning):
            await lc.configure("1")

    async def test_restart_after_stop(self) -> None:
        """A stopped lifecycle can start again and apply configs."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        await lc.stop()
        await lc.start()
        await lc.configure("5", wait=True)
        assert ([5], S.ACTIVE) == (driver.applied, lc.status)
        assert 2 == lc.statistics().starts
        await lc.stop()

    async def test_stop_cancels_the_apply_in_progress_and_waits(self) -> None:
        """Stop cancels a running apply; a waiting configure caller gets NotRunning."""
        driver = Driver(gate=asyncio.Event())
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        waiter = asyncio.create_task(lc.configure("1", wait=True))
        queued = asyncio.create_task(lc.configure("2", wait=True))
        await wait_all_tasks_blocked()
        assert S.LOADING is status(lc)
        await lc.stop()
        assert S.INACTIVE is status(lc)
        for task in (waiter, queued):
            with pytest.raises(tm.NotRunning):
                await task
        assert [1] == driver.applied

    async def test_stop_tears_down_the_current_scope(self) -> None:
        """Stop cancels the last config's background work and waits for it."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        await lc.configure("1", wait=True)
        await lc.stop()
        assert [1] == driver.background_cancelled

    async def test_wait_for_state_change_returns_at_once_when_different(self) -> None:
        """If the status already differs from the source, no waiting."""
        lc = tm.Lifecycle(Driver().apply)
        assert await lc.wait_for_state_change(S.ACTIVE)

    async def test_wait_for_state_change_timeout(self) -> None:
        """No change within the timeout: False, at exactly the timeout."""
        lc = tm.Lifecycle(Driver().apply)
        assert not await lc.wait_for_state_change(S.INACTIVE, timeout=2.5)
        assert 2.5 == asyncio.get_running_loop().time()

    async def test_statistics_and_repr(self) -> None:
        """statistics() counts applied and failed configs."""
        lc = tm.Lifecycle(Driver(fail_on=2).apply, name="drv")
        await lc.start()
        await lc.configure("1", wait=True)
        await lc.configure("2", wait=True)
        assert (
            tm.LifecycleStatistics(
                name="drv",
                status=S.ERROR,
                error="ValueError('bad config 2')",
                pending=0,
                applied=1,
                failed=1,
                starts=1,
            )
            == lc.statistics()
        )
        assert "<Lifecycle 'drv' status=error applied=1>" == repr(lc)
        await lc.stop()

    def test_max_pending_must_be_positive(self) -> None:
        """max_pending < 1 is a ConfigurationError."""
        with pytest.raises(tm.ConfigurationError):
            tm.Lifecycle(Driver().apply, max_pending=0)


class TestConfigScope:
    async def test_closed_scope_refuses_new_work(self) -> None:
        """start_soon after the scope was closed is NotRunning."""
        scope = tm.ConfigScope("x")
        await scope.aclose()
        assert scope.closed
        with pytest.raises(tm.NotRunning):
            scope.start_soon(asyncio.sleep, 1)

    async def test_failing_background_task_is_logged_and_counted(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A background task that raises is logged; the status is not changed."""

        async def crash() -> None:
            raise OSError("lost connection")

        async def apply(config: object, scope: tm.ConfigScope) -> None:
            scope.start_soon(crash)

        lc = tm.Lifecycle(apply)
        await lc.start()
        with caplog.at_level(logging.ERROR, logger="taskmill._lifecycle"):
            await lc.configure("1", wait=True)
            await wait_all_tasks_blocked()
        assert S.ACTIVE is lc.status
        assert "background task of lifecycle failed" in caplog.text
        await lc.stop()


class TestCapabilities:
    async def test_stop_component_sync_and_async(self) -> None:
        """stop_component calls stop(), awaiting it when it is async."""
        calls: list[str] = []

        class SyncStop:
            def stop(self) -> None:
                calls.append("sync")

        class AsyncStop:
            async def stop(self) -> None:
                calls.append("async")

        await tm.stop_component(SyncStop())
        await tm.stop_component(AsyncStop())
        assert ["sync", "async"] == calls
        assert tm.is_stoppable(SyncStop())
        assert isinstance(AsyncStop(), tm.Stoppable)

    async def test_cannot_be_stopped(self) -> None:
        """No stop(): CannotBeStopped (sc-bos ErrCannotBeStopped)."""
        assert not tm.is_stoppable(object())
        with pytest.raises(tm.CannotBeStopped):
            await tm.stop_component(object())

    async def test_configure_component(self) -> None:
        """configure_component passes the raw data; a Lifecycle is configurable."""
        driver = Driver()
        lc = tm.Lifecycle(driver.apply)
        await lc.start()
        assert tm.is_configurable(lc)
        assert isinstance(lc, tm.Configurable)
        assert await tm.configure_component(lc, "[1]") is None
        await lc.configure("2", wait=True)
        assert [[1], 2] == driver.applied
        await lc.stop()

    async def test_cannot_be_configured(self) -> None:
        """No configure(): CannotBeConfigured (sc-bos ErrCannotBeConfigured)."""
        assert not tm.is_configurable(object())
        with pytest.raises(tm.CannotBeConfigured):
            await tm.configure_component(object(), b"{}")

    def test_startable_protocol(self) -> None:
        """Startable is a runtime-checkable protocol."""

        class Starts:
            async def start(self) -> None:
                return None

        assert isinstance(Starts(), tm.Startable)
        assert not isinstance(object(), tm.Startable)
