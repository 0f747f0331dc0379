"""supervise() / DeclarativeWorker: rebuy Retry, with the busy-loop and cancel bugs fixed."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

import taskmill as tm
from taskmill.testing import wait_all_tasks_blocked

NO_JITTER = tm.RestartPolicy(backoff=tm.Exponential(1.0, max=8.0), min_delay=0.1, healthy_after=5.0)


class Flaky:
    """A worker that records each run's start and behaves per run number."""

    def __init__(self, durations: dict[int, float] | None = None, *, fail: bool = True) -> None:
        self.starts: list[float] = []
        self.durations = durations or {}
        self.fail = fail

    async def run(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.durations.get(len(self.starts), 0.0))
        if self.fail:
            raise RuntimeError(f"run {len(self.starts)} failed")


async def run_for(worker: tm.Worker, seconds: float) -> None:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class TestRestarts:
    async def test_restarts_with_exact_backoff(self) -> None:
        """Each failure waits the next backoff delay: 1, 2, 4, 8, 8 s."""
        worker = Flaky()
        await run_for(tm.supervise(worker, NO_JITTER), 24)
        assert [0.0, 1.0, 3.0, 7.0, 15.0, 23.0] == worker.starts

    async def test_backoff_resets_after_a_healthy_run(self) -> None:
        """A run lasting >= healthy_after resets the backoff; the restart waits min_delay."""
        worker = Flaky({3: 10.0})
        await run_for(tm.supervise(worker, NO_JITTER), 15)
        assert [0.0, 1.0, 3.0, 13.1, 14.1] == pytest.approx(worker.starts, abs=1e-9)

    async def test_clean_return_is_restarted_too(self) -> None:
        """A worker that returns is restarted like one that fails (short runs back off)."""
        worker = Flaky(fail=False)
        supervised = tm.supervise(worker, NO_JITTER)
        await run_for(supervised, 8)
        assert [0.0, 1.0, 3.0, 7.0] == worker.starts
        stats = supervised.statistics()
        assert (4, 0, 4, 4) == (stats.runs, stats.failures, stats.returns, stats.streak)

    async def test_instant_returner_cannot_busy_loop(self) -> None:
        """rebuy busy-loops an instantly returning worker; ours backs off to the cap."""
        worker = Flaky(fail=False)
        policy = tm.RestartPolicy(backoff=tm.Exponential(1.0, max=60.0))
        await run_for(tm.supervise(worker, policy), 3600)
        # 0, 1, 3, 7, 15, 31, then every 60 s from 63 to 3543.
        assert 65 == len(worker.starts)
        assert [3483.0, 3543.0] == worker.starts[-2:]

    async def test_min_delay_bounds_even_healthy_instant_runs(self) -> None:
        """With every run counted healthy, min_delay still spaces the restarts."""
        worker = Flaky(fail=False)
        policy = tm.RestartPolicy(backoff=tm.Constant(0.0), min_delay=1.0, healthy_after=0.0)
        await run_for(tm.supervise(worker, policy), 3600.5)
        assert 3601 == len(worker.starts)

    async def test_default_policy_is_bounded(self) -> None:
        """The default policy (jittered) still runs an instant returner only ~70 times an hour."""
        worker = Flaky(fail=False)
        policy = tm.RestartPolicy(rng=random.Random(7))
        await run_for(tm.supervise(worker), 3600)
        assert 60 <= len(worker.starts) <= 130
        assert policy.min_delay == tm.RestartPolicy().min_delay

    async def test_jitter_uses_the_seeded_rng(self) -> None:
        """The same seed gives the same restart times."""
        runs: list[list[float]] = []
        for _ in range(2):
            worker = Flaky()
            jittered = tm.RestartPolicy(
                backoff=tm.Exponential(1.0, max=60.0, jitter="full"), rng=random.Random(3)
            )
            await run_for(tm.supervise(worker, jittered), 100)
            runs.append([t - worker.starts[0] for t in worker.starts])
        assert runs[0] == pytest.approx(runs[1], abs=1e-9)
        assert len(runs[0]) > 5


class TestCancellation:
    async def test_cancel_during_the_wait_never_runs_again(self) -> None:
        """rebuy runs once more with a cancelled ctx; we never start a run after cancel."""
        worker = Flaky()
        supervised = tm.supervise(worker, NO_JITTER)
        task = asyncio.create_task(supervised.run())
        await wait_all_tasks_blocked()
        assert "waiting" == supervised.statistics().state
        assert 1.0 == supervised.statistics().next_run_at
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(100)
        assert [0.0] == worker.starts
        assert "stopped" == supervised.statistics().state

    async def test_cancel_during_a_run_propagates(self) -> None:
        """Cancellation during a run is not a failure and is not restarted."""
        worker = Flaky({1: 50.0})
        supervised = tm.supervise(worker, NO_JITTER)
        await run_for(supervised, 10)
        await asyncio.sleep(100)
        stats = supervised.statistics()
        assert (1, 0, 0) == (stats.runs, stats.failures, stats.returns)

    async def test_worker_swallowing_cancel_is_not_restarted(self) -> None:
        """A worker that swallows the CancelledError and returns is not run again."""
        starts: list[float] = []

        async def stubborn() -> None:
            starts.append(asyncio.get_running_loop().time())
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return

        task = asyncio.create_task(tm.supervise(stubborn, NO_JITTER).run())
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [0.0] == starts


class TestLoggingAndStats:
    async def test_logs_worker_failed_n_times(self, caplog: pytest.LogCaptureFixture) -> None:
        """Each failure logs 'worker <name> failed N times' with the error."""
        caplog.set_level(logging.WARNING, logger="taskmill._supervise")
        await run_for(tm.supervise(Flaky(), NO_JITTER, name="fetcher"), 3.5)
        messages = [r.getMessage() for r in caplog.records]
        assert messages[0].startswith("worker fetcher failed 1 times")
        assert messages[2].startswith("worker fetcher failed 3 times")
        assert isinstance(caplog.records[0].exc_info[1], RuntimeError)  # type: ignore[index]

    async def test_statistics_and_repr(self) -> None:
        """statistics() reports runs, failures, the streak and the last error."""
        supervised = tm.supervise(Flaky(), NO_JITTER, name="w")
        assert "idle" == supervised.statistics().state
        await run_for(supervised, 3.5)
        stats = supervised.statistics()
        assert (
            tm.SupervisorStatistics(
                name="w",
                state="stopped",
                runs=3,
                failures=3,
                returns=0,
                streak=3,
                last_error="RuntimeError('run 3 failed')",
                next_run_at=None,
            )
            == stats
        )
        assert "<Supervised 'w' state=stopped runs=3 failures=3 streak=3>" == repr(supervised)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"min_delay": 0.0},
            {"min_delay": -1.0},
            {"min_delay": float("nan")},
            {"healthy_after": -1.0},
            {"healthy_after": float("inf")},
            {"backoff": 3},
        ],
    )
    def test_invalid_policy_is_refused(self, kwargs: dict[str, object]) -> None:
        """min_delay must be > 0 (the busy-loop guard); bad values are refused."""
        with pytest.raises(tm.ConfigurationError):
            tm.RestartPolicy(**kwargs)  # type: ignore[arg-type]


class TestDeclarativeWorker:
    async def test_named_inside_supervised_outside(self) -> None:
        """Each restart re-enters the subsystem with a fresh trace id (rebuy order)."""
        seen: list[tuple[str, str]] = []

        async def work() -> None:
            seen.append((tm.current_subsystem(), tm.current_trace_id()))
            raise RuntimeError("again")

        worker = tm.DeclarativeWorker(worker=work, name="Commits", restart=NO_JITTER)
        await run_for(worker, 1.5)
        assert ["/Commits", "/Commits"] == [path for path, _ in seen]
        assert seen[0][1] != seen[1][1]
        assert isinstance(worker.composed, tm.Supervised)

    async def test_without_restart_runs_once(self) -> None:
        """Without a restart policy the composed worker is just the named worker."""
        boom = ValueError("once")

        async def work() -> None:
            raise boom

        worker = tm.DeclarativeWorker(worker=work, name="once")
        assert isinstance(worker.composed, tm.NamedWorker)
        with pytest.raises(ValueError, match="once"):
            await worker.run()

    async def test_without_anything_is_the_worker(self) -> None:
        """No name, no restart: composed is the worker itself."""

        async def work() -> None:
            return None

        assert work is tm.DeclarativeWorker(worker=work).composed


class TestHealth:
    """A supervised worker given a health scope reports on it (virtual time)."""

    async def test_ok_while_running_degraded_while_backing_off_stopped_at_the_end(self) -> None:
        """OK during each run, DEGRADED with the error during the backoff, STOPPED on cancel."""
        node = tm.Health.root("app").scope("consumer")
        changes: list[tuple[float, str, str, str | None]] = []
        loop = asyncio.get_running_loop()

        def seen(changed: tm.Health) -> None:
            error = None if changed.error is None else changed.error.message
            changes.append((loop.time(), changed.own_level.value, changed.message, error))

        node.add_listener(seen)
        worker = Flaky({1: 2.0, 2: 0.5})  # run 1: 0..2 fails, waits 1; run 2: 3..3.5 fails
        supervised = tm.supervise(worker, NO_JITTER, name="consumer", health=node)
        assert supervised.health is node
        await run_for(supervised, 4.0)  # waiting for the restart at 5.5 when cancelled
        assert [
            (0.0, "ok", "running", None),
            (2.0, "degraded", "failed: run 1 failed; restarting in 1s", "run 1 failed"),
            (3.0, "ok", "running (restart 1)", None),
            (3.5, "degraded", "failed: run 2 failed; restarting in 2s", "run 2 failed"),
            (4.0, "stopped", "stopped", None),
        ] == changes
        assert node.error is None  # a clean stop carries no error

    async def test_error_type_is_kept_while_backing_off(self) -> None:
        """The DEGRADED report carries the run's error (type and text) until the restart."""
        node = tm.Health.root("w")
        task = asyncio.create_task(tm.supervise(Flaky(), NO_JITTER, health=node).run())
        await wait_all_tasks_blocked()
        assert tm.HealthLevel.DEGRADED is node.level
        assert tm.HealthError(type="RuntimeError", message="run 1 failed") == node.error
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (tm.HealthLevel.STOPPED, "stopped") == (node.level, node.message)

    async def test_clean_return_is_degraded_without_an_error(self) -> None:
        """A worker that returns is an exit too: DEGRADED 'returned; ...' with no error."""
        node = tm.Health.root("w")
        task = asyncio.create_task(tm.supervise(Flaky(fail=False), NO_JITTER, health=node).run())
        await wait_all_tasks_blocked()
        assert (tm.HealthLevel.DEGRADED, "returned; restarting in 1s", None) == (
            node.own_level,
            node.message,
            node.error,
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_ok_during_a_long_run_and_stopped_when_cancelled_mid_run(self) -> None:
        """A healthy long run stays OK; cancelling it mid-run ends STOPPED."""
        node = tm.Health.root("w")
        supervised = tm.supervise(Flaky({1: 3600.0}), NO_JITTER, health=node)
        task = asyncio.create_task(supervised.run())
        await asyncio.sleep(1800)
        assert (tm.HealthLevel.OK, "running") == (node.level, node.message)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (tm.HealthLevel.STOPPED, "stopped") == (node.level, node.message)

    async def test_aggregates_into_the_parent_scope(self) -> None:
        """Two supervised workers under one parent: the parent shows the worst of them."""
        app = tm.Health.root("app")
        good = tm.supervise(Flaky({1: 3600.0}), NO_JITTER, health=app.scope("good"))
        bad = tm.supervise(Flaky(), NO_JITTER, health=app.scope("bad"))
        tasks = [asyncio.create_task(w.run()) for w in (good, bad)]
        await wait_all_tasks_blocked()
        assert tm.HealthLevel.DEGRADED is app.level
        snapshot = app.snapshot()
        assert snapshot.find("good") is not None
        assert tm.HealthLevel.OK is snapshot.find("good").level  # type: ignore[union-attr]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert tm.HealthLevel.STOPPED is app.snapshot().level

    async def test_declarative_worker_passes_health_to_its_supervisor(self) -> None:
        """DeclarativeWorker(health=...) reports through the supervisor it composes."""
        node = tm.Health.root("w")

        async def work() -> None:
            raise RuntimeError("nope")

        worker = tm.DeclarativeWorker(worker=work, name="W", restart=NO_JITTER, health=node)
        await run_for(worker, 0.5)
        assert (tm.HealthLevel.STOPPED, "stopped") == (node.level, node.message)
        assert isinstance(worker.composed, tm.Supervised)
        assert node is worker.composed.health

    def test_health_needs_a_restart_policy_and_a_health_node(self) -> None:
        """Health without a supervisor, or a non-Health scope, is refused at the call."""

        async def work() -> None:
            return None

        with pytest.raises(tm.ConfigurationError, match="restart"):
            tm.DeclarativeWorker(worker=work, health=tm.Health.root("w"))
        with pytest.raises(tm.ConfigurationError, match="Health"):
            tm.supervise(work, health="app/worker")  # type: ignore[arg-type]

    async def test_without_health_nothing_is_reported(self) -> None:
        """No scope given: the supervisor has none and runs as before."""
        supervised = tm.supervise(Flaky(), NO_JITTER)
        await run_for(supervised, 1.5)
        assert supervised.health is None
        assert 2 == supervised.statistics().runs
