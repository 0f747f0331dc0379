"""The App container: components, job groups, workers, readiness, signals, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable

import pytest

import taskmill as tm
from taskmill.testing import wait_all_tasks_blocked


def now() -> float:
    return asyncio.get_running_loop().time()


class Component:
    """Records its start and stop (with the time) into a shared log."""

    def __init__(self, name: str, log: list[str], *, stop_delay: float = 0.0) -> None:
        self.name = name
        self.log = log
        self.stop_delay = stop_delay

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        await asyncio.sleep(self.stop_delay)
        self.log.append(f"stop {self.name}")


async def forever() -> None:
    await asyncio.Event().wait()


async def run_until_shutdown(app: tm.App, at: float, error: BaseException | None = None) -> None:
    """Run the app and request a shutdown at virtual time ``at``."""
    asyncio.get_running_loop().call_at(at, app.shutdown, error)
    await app.run(handle_signals=False)


class TestComponents:
    async def test_start_in_order_stop_in_reverse(self) -> None:
        """Components and hooks start in registration order and stop in reverse."""
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log))
        app.on_start(lambda: log.append("start hook"))

        @app.on_stop
        def flush() -> None:
            log.append("stop hook")

        app.component(Component("cache", log))
        await app.start()
        assert tm.AppState.RUNNING is app.statistics().state
        await app.stop()
        assert [
            "start db",
            "start hook",
            "start cache",
            "stop cache",
            "stop hook",
            "stop db",
        ] == log
        assert tm.AppState.STOPPED is app.state

    async def test_failing_start_stops_the_started_ones_in_reverse(self) -> None:
        """A start that fails stops what already started (reverse) and raises."""
        log: list[str] = []

        class Broken:
            async def start(self) -> None:
                raise ConnectionError("no database")

            async def stop(self) -> None:
                log.append("stop broken")  # never started: never stopped

        app = tm.App()
        app.component(Component("a", log))
        app.component(Component("b", log))
        app.component(Broken())
        app.component(Component("c", log))
        with pytest.raises(ConnectionError):
            await app.start()
        assert ["start a", "start b", "stop b", "stop a"] == log
        assert tm.AppState.STOPPED is app.state

    def test_component_needs_start_or_stop(self) -> None:
        """An object with neither start() nor stop() is a ConfigurationError."""
        with pytest.raises(tm.ConfigurationError):
            tm.App().component(object())

    async def test_sync_component_methods(self) -> None:
        """start()/stop() may be plain functions."""
        log: list[str] = []

        class Sync:
            def start(self) -> None:
                log.append("start")

            def stop(self) -> None:
                log.append("stop")

        app = tm.App()
        assert isinstance(app.component(Sync()), Sync)
        await app.start()
        await app.stop()
        assert ["start", "stop"] == log

    async def test_registration_after_start_is_refused(self) -> None:
        """Components, groups and workers are registered before start()."""
        app = tm.App()
        await app.start()
        with pytest.raises(tm.AlreadyStarted):
            app.component(Component("late", []))
        with pytest.raises(tm.AlreadyStarted):
            app.job_group("late")
        with pytest.raises(tm.AlreadyStarted):
            await app.start()
        await app.stop()

    def test_stop_timeout_must_be_positive(self) -> None:
        """stop_timeout <= 0 or NaN is a ConfigurationError."""
        for bad in (0.0, -1.0, float("nan")):
            with pytest.raises(tm.ConfigurationError):
                tm.App(stop_timeout=bad)

    async def test_stop_before_start_and_twice(self) -> None:
        """stop() before start() or twice is harmless."""
        app = tm.App()
        await app.stop()
        await app.stop()
        assert tm.AppState.STOPPED is app.state


class TestJobGroups:
    async def test_groups_start_after_components_and_stop_before_them(self) -> None:
        """A job group is started after the components and stopped before them."""
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log))
        jobs = app.job_group("indexer")

        async def job() -> None:
            log.append("job runs")
            try:
                await forever()
            finally:
                log.append("job stopped")

        jobs.add(tm.one_shot("index", job))
        await app.start()
        await wait_all_tasks_blocked()
        await app.stop()
        assert ["start db", "job runs", "job stopped", "stop db"] == log

    async def test_fatal_job_carries_its_error_out_of_run(self) -> None:
        """A shutdown_on_failure one-shot that finally fails makes run() raise its error."""
        boom = RuntimeError("migration failed")

        async def migrate() -> None:
            await asyncio.sleep(3)
            raise boom

        app = tm.App()
        app.job_group("setup").add(tm.one_shot("migrate", migrate, shutdown_on_failure=True))
        with pytest.raises(RuntimeError) as info:
            await app.run(handle_signals=False)
        assert boom is info.value
        assert (3.0, tm.AppState.STOPPED) == (now(), app.state)
        assert repr(boom) == app.statistics().error

    async def test_health_tree_has_a_scope_per_group(self) -> None:
        """app.health is the root; each job group reports under its own scope."""
        app = tm.App("shop")
        app.job_group("indexer").add(tm.one_shot("index", forever))
        await app.start()
        await wait_all_tasks_blocked()
        snapshot = app.health.snapshot()
        assert "shop" == snapshot.name
        group_node = snapshot.find("indexer")
        assert group_node is not None
        assert (tm.HealthLevel.OK, "running") == (group_node.level, group_node.message)
        assert tm.HealthLevel.OK is app.health.level
        await app.stop()
        assert tm.HealthLevel.STOPPED is app.health.snapshot().level


class TestWorkers:
    async def test_worker_exit_shuts_the_app_down(self) -> None:
        """A worker returning while the app runs is a fatal WorkerExitedPrematurely."""

        async def quits() -> None:
            await asyncio.sleep(2)

        app = tm.App()
        app.add_worker(forever)
        app.add_worker(quits, name="quitter")
        with pytest.raises(ExceptionGroup) as info:
            await app.run(handle_signals=False)
        [error] = info.value.exceptions
        assert isinstance(error, tm.WorkerExitedPrematurely)
        assert ("quitter", 2.0) == (error.worker, now())

    async def test_supervised_worker_keeps_the_app_running(self) -> None:
        """With restart=, a failing worker is restarted instead of stopping the app."""
        starts: list[float] = []

        async def flaky() -> None:
            starts.append(now())
            raise OSError("flaky")

        policy = tm.RestartPolicy(backoff=tm.Constant(5.0), healthy_after=60)
        app = tm.App()
        app.add_worker(flaky, name="flaky", restart=policy)
        await run_until_shutdown(app, 12.0)
        assert [0.0, 5.0, 10.0] == starts

    async def test_start_waits_for_ready_workers(self) -> None:
        """start() returns once every ready=True worker called ready.started()."""
        marks: list[str] = []

        async def server(ready: tm.Ready) -> None:
            await asyncio.sleep(3)  # binding a socket, say
            ready.started()
            ready.started()  # idempotent
            marks.append("serving")
            await forever()

        app = tm.App()
        app.add_worker(server, ready=True, name="http")
        app.add_worker(forever)
        await app.start()
        assert (3.0, ["serving"]) == (now(), marks)
        stats = app.statistics()
        assert (2, 1, 1) == (stats.workers, stats.ready, stats.awaiting_ready)
        await app.stop()

    async def test_worker_failing_before_ready_fails_start(self) -> None:
        """A ready worker that fails before signalling makes start() raise; all stopped."""
        log: list[str] = []

        async def broken(ready: tm.Ready) -> None:
            await asyncio.sleep(1)
            raise OSError("port in use")

        app = tm.App()
        app.component(Component("db", log))
        app.add_worker(broken, ready=True)
        with pytest.raises(ExceptionGroup) as info:
            await app.start()
        assert ["port in use"] == [str(e) for e in info.value.exceptions]
        assert ["start db", "stop db"] == log

    async def test_provided_workers_run_with_the_app(self) -> None:
        """Components registered with provide() have their workers run by the app."""
        seen: list[str] = []

        class Fetcher:
            async def fetch(self) -> None:
                seen.append(tm.current_subsystem())
                await forever()

            def workers(self) -> Iterable[tm.WorkerLike]:
                return [self.fetch]

        app = tm.App()
        app.provide(Fetcher)
        await app.start()
        await wait_all_tasks_blocked()
        await app.stop()
        assert ["/test_app/Fetcher"] == seen

    async def test_worker_error_during_stop_is_reported(self) -> None:
        """A worker failing on the way out makes stop() raise the error in a group."""

        async def bad_cleanup() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                raise OSError("cleanup failed") from None

        app = tm.App()
        app.add_worker(bad_cleanup)
        await app.start()
        await wait_all_tasks_blocked()
        with pytest.raises(ExceptionGroup) as info:
            await app.stop()
        [group] = info.value.exceptions
        assert isinstance(group, ExceptionGroup)
        assert ["cleanup failed"] == [str(e) for e in group.exceptions]


class TestRunAndSignals:
    async def test_run_until_shutdown(self) -> None:
        """run() returns after shutdown() and a clean stop."""
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log))
        await run_until_shutdown(app, 5.0)
        assert (["start db", "stop db"], 5.0) == (log, now())

    async def test_run_after_an_explicit_start(self) -> None:
        """run() after start() does not start twice; run() after stop() is refused."""
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log))
        await app.start()
        await run_until_shutdown(app, 1.0)
        assert ["start db", "stop db"] == log
        with pytest.raises(tm.AlreadyStarted):
            await app.run(handle_signals=False)

    async def test_first_signal_stops_gracefully(self) -> None:
        """SIGTERM: graceful stop, waiting for slow stops within stop_timeout."""
        log: list[str] = []
        app = tm.App(stop_timeout=30)
        app.component(Component("slow", log, stop_delay=10))
        loop = asyncio.get_running_loop()
        loop.call_at(1.0, app.handle_signal, signal.SIGTERM)
        await app.run(handle_signals=False)
        assert (["start slow", "stop slow"], 11.0) == (log, now())
        assert 1 == app.statistics().signals

    async def test_second_signal_stops_at_once(self) -> None:
        """A second signal ends the stop now; what did not stop is a StopTimeout."""
        log: list[str] = []
        app = tm.App(stop_timeout=30)
        app.component(Component("slow", log, stop_delay=10))
        loop = asyncio.get_running_loop()
        loop.call_at(1.0, app.handle_signal, signal.SIGTERM)
        loop.call_at(2.0, app.handle_signal, signal.SIGINT)
        with pytest.raises(ExceptionGroup) as info:
            await app.run(handle_signals=False)
        [timeout] = info.value.exceptions
        assert isinstance(timeout, tm.StopTimeout)
        assert (("Component",), 2.0) == (timeout.pending, now())
        assert ["start slow"] == log

    async def test_stop_timeout_is_reported(self) -> None:
        """A stop step that outlives stop_timeout is named in a StopTimeout."""
        log: list[str] = []
        app = tm.App(stop_timeout=5)
        app.component(Component("stuck", log, stop_delay=100), name="stuck")
        app.component(Component("fast", log, stop_delay=1), name="fast")
        await app.start()
        with pytest.raises(ExceptionGroup) as info:
            await app.stop()
        [timeout] = info.value.exceptions
        assert isinstance(timeout, tm.StopTimeout)
        assert (("stuck",), 5.0) == (timeout.pending, now())
        assert ["start stuck", "start fast", "stop fast"] == log

    async def test_stop_timeout_is_one_budget_for_everything(self) -> None:
        """Steps after the budget ran out are still called but cancelled at once."""
        log: list[str] = []
        app = tm.App(stop_timeout=5)
        app.component(Component("last", log, stop_delay=1), name="last")
        app.on_stop(lambda: log.append("sync hook runs"))
        app.component(Component("stuck", log, stop_delay=100), name="stuck")
        await app.start()
        with pytest.raises(ExceptionGroup) as info:
            await app.stop()
        [timeout] = info.value.exceptions
        assert isinstance(timeout, tm.StopTimeout)
        assert (("stuck", "last"), 5.0) == (timeout.pending, now())
        assert ["start last", "start stuck", "sync hook runs"] == log

    async def test_stuck_job_is_named_in_the_stop_timeout(self) -> None:
        """A job that ignores cancellation is named (group/job) when the budget runs out."""

        async def stubborn() -> None:
            ignored = 0
            while True:  # ignores the stop and the timeout; gives in at teardown
                try:
                    await asyncio.sleep(100)
                except asyncio.CancelledError:
                    ignored += 1
                    if ignored > 2:
                        raise

        log: list[str] = []
        app = tm.App(stop_timeout=5)
        app.component(Component("db", log), name="db")
        app.job_group("indexer").add(tm.one_shot("stubborn", stubborn))
        await app.start()
        await wait_all_tasks_blocked()
        with pytest.raises(ExceptionGroup) as info:
            await app.stop()
        [timeout] = info.value.exceptions
        assert isinstance(timeout, tm.StopTimeout)
        # The budget was spent on the job: db's stop was called but cut short at once.
        assert (("job group indexer/stubborn", "db"), 5.0) == (timeout.pending, now())
        assert ["start db"] == log

    async def test_component_timeout_error_is_an_error_not_pending(self) -> None:
        """A stop hook raising its own TimeoutError is reported as that error."""
        app = tm.App()

        @app.on_stop
        async def flaky_close() -> None:
            raise TimeoutError("socket close timed out")

        await app.start()
        with pytest.raises(ExceptionGroup) as info:
            await app.stop()
        [error] = info.value.exceptions
        assert not isinstance(error, tm.StopTimeout)
        assert "socket close timed out" == str(error)

    async def test_fatal_error_wins_over_stop_errors(self) -> None:
        """When a shutdown carries an error, run() raises it; stop errors are logged."""
        boom = ValueError("fatal")
        app = tm.App(stop_timeout=1)
        app.component(Component("stuck", [], stop_delay=100))
        with pytest.raises(ValueError, match="fatal"):
            await run_until_shutdown(app, 3.0, boom)

    async def test_cancelling_run_stops_gracefully(self) -> None:
        """Cancelling the task running the app stops it, then propagates."""
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log, stop_delay=2))
        task = asyncio.create_task(app.run(handle_signals=False))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (["start db", "stop db"], 3.0) == (log, now())

    @pytest.mark.real_time
    async def test_real_sigterm(self) -> None:
        """A real SIGTERM stops the app gracefully; the previous handler comes back."""
        before = signal.getsignal(signal.SIGTERM)
        log: list[str] = []
        app = tm.App()
        app.component(Component("db", log))

        loop = asyncio.get_running_loop()

        @app.on_start
        def send_sigterm_once_running() -> None:
            # Runs at the next loop iteration: after start() and the handlers' install.
            loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)

        async with asyncio.timeout(10):
            await app.run()
        assert ["start db", "stop db"] == log
        assert 1 == app.statistics().signals
        assert before == signal.getsignal(signal.SIGTERM)


class TestObservability:
    async def test_statistics_and_repr(self) -> None:
        """statistics() describes the app; repr shows its state."""
        app = tm.App("svc")
        app.component(Component("db", []))
        app.job_group("jobs")
        app.add_worker(forever)
        await app.start()
        stats = app.statistics()
        assert ("svc", tm.AppState.RUNNING, 1, 1, False, None) == (
            stats.name,
            stats.state,
            stats.components,
            stats.workers,
            stats.shutdown_requested,
            stats.error,
        )
        assert ("jobs",) == tuple(g.name for g in stats.job_groups)
        assert "<App 'svc' state=running components=1 job_groups=1 workers=1>" == repr(app)
        await app.stop()
