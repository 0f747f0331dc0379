"""Timer jobs and triggers, named after cilium hive's timer tests (seeds-spec 5.4)."""

from __future__ import annotations

import asyncio
import math

import pytest

from taskmill import (
    ConfigurationError,
    Health,
    HealthLevel,
    JobGroup,
    JobKind,
    JobState,
    Trigger,
    timer,
)
from taskmill.testing import wait_all_tasks_blocked


class Recorder:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str, float]] = []
        self.errors: list[tuple[str, str, BaseException]] = []
        self.triggers: list[tuple[str, float, int]] = []

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        self.runs.append((kind, name, seconds))

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        self.errors.append((kind, name, error))

    def trigger(self, name: str, latency: float, folded: int) -> None:
        self.triggers.append((name, latency, folded))


def now() -> float:
    return asyncio.get_running_loop().time()


class Calls:
    """Records start times; each call takes ``duration`` and may raise."""

    def __init__(self, duration: float = 0.0, fail: bool = False) -> None:
        self.duration = duration
        self.fail = fail
        self.starts: list[float] = []
        self.ran = asyncio.Event()

    async def __call__(self) -> None:
        self.starts.append(now())
        self.ran.set()
        if self.duration:
            await asyncio.sleep(self.duration)
        if self.fail:
            raise ValueError(f"run {len(self.starts)} failed")


async def started(*jobs_: object) -> JobGroup:
    group = JobGroup("timers")
    for job in jobs_:
        group.add(job)  # type: ignore[arg-type]
    await group.start()
    return group


class TestTicking:
    async def test_timer_never_runs_during_quick_start_stop(self) -> None:
        """A 1 h timer started and stopped at once never runs."""
        calls = Calls()
        group = await started(timer("hourly", calls, interval=3600))
        await wait_all_tasks_blocked()
        await group.stop()
        assert calls.starts == []

    async def test_first_run_after_one_interval_then_on_the_grid(self) -> None:
        """Runs at start + k*interval exactly, over 500 ticks, with no drift."""
        calls = Calls(duration=0.03)
        job = timer("tenth", calls, interval=0.1)
        group = await started(job)
        await asyncio.sleep(50.05)
        await group.stop()
        assert len(calls.starts) == 500
        assert calls.starts == [k * 0.1 for k in range(1, 501)]
        assert job.statistics().missed_ticks == 0

    async def test_immediate_runs_at_start(self) -> None:
        """immediate=True runs at the start, then on the grid."""
        calls = Calls()
        group = await started(timer("imm", calls, interval=10, immediate=True))
        await asyncio.sleep(25)
        await group.stop()
        assert calls.starts == [0.0, 10.0, 20.0]

    async def test_overrun_is_followed_at_once_and_ticks_dropped(self) -> None:
        """A run longer than the interval is followed at once; missed ticks are dropped."""
        durations = iter([0.5, 3.5, 0.5, 0.5, 0.5])
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())
            await asyncio.sleep(next(durations))

        job = timer("slow", fn, interval=1)
        group = await started(job)
        await asyncio.sleep(6.9)
        await group.stop()
        # run at 2.0 ends at 5.5: 3.0's run starts at once at 5.5, 4.0 and 5.0 are dropped
        assert starts == [1.0, 2.0, 5.5, 6.0]
        assert job.statistics().missed_ticks == 2

    async def test_errors_never_stop_the_timer(self) -> None:
        """Every run fails, the timer keeps running; health DEGRADED, errors counted."""
        calls = Calls(fail=True)
        metrics = Recorder()
        job = timer("bad", calls, interval=5)
        group = JobGroup(metrics=metrics)
        group.add(job)
        await group.start()
        await asyncio.sleep(16)
        assert calls.starts == [5.0, 10.0, 15.0]
        assert job.state is JobState.RUNNING
        assert job.health is not None
        assert job.health.own_level is HealthLevel.DEGRADED
        assert job.health.message == "run failed: run 3 failed"
        assert len(metrics.errors) == 3
        assert job.statistics().errors == 3
        await group.stop()

    async def test_success_reports_ok_with_duration_and_metrics(self) -> None:
        """A success reports OK 'ok (duration)' and the exact duration to metrics."""
        metrics = Recorder()
        job = timer("good", Calls(duration=0.25), interval=1)
        group = JobGroup(metrics=metrics)
        group.add(job)
        await group.start()
        await asyncio.sleep(2.5)
        await group.stop()
        assert metrics.runs == [("timer", "good", 0.25), ("timer", "good", 0.25)]
        assert job.health is not None
        assert job.health.message == "stopped"
        assert job.statistics().last_duration == 0.25

    async def test_primed_before_first_run(self) -> None:
        """The health node says OK 'primed' until the first run."""
        node = Health.root("t")
        job = timer("p", Calls(), interval=60)
        task = asyncio.create_task(job.run(health=node))
        await wait_all_tasks_blocked()
        assert (node.own_level, node.message) == (HealthLevel.OK, "primed")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.state is JobState.STOPPED


class TestTriggers:
    async def test_three_pre_start_triggers_give_one_run(self) -> None:
        """Triggers before start are remembered and coalesce into one run."""
        kick = Trigger()
        calls = Calls()
        metrics = Recorder()
        job = timer("t", calls, interval=3600, trigger=kick)
        kick.trigger()
        kick.trigger()
        kick.trigger()
        group = JobGroup(metrics=metrics)
        group.add(job)
        await asyncio.sleep(2)
        await group.start()
        await asyncio.sleep(10)
        await group.stop()
        assert calls.starts == [2.0]
        # first fired at 0.0, served at 2.0; two more folded into that run
        assert metrics.triggers == [("t", 2.0, 2)]

    async def test_three_sequential_triggers_give_three_runs(self) -> None:
        """A trigger after each run gives one more run each."""
        kick = Trigger()
        calls = Calls(duration=1)
        job = timer("t", calls, interval=3600, trigger=kick)
        group = await started(job)
        for _ in range(3):
            await asyncio.sleep(5)
            kick.trigger()
        await asyncio.sleep(5)
        await group.stop()
        assert calls.starts == [5.0, 10.0, 15.0]
        assert job.statistics().triggered_runs == 3

    async def test_trigger_does_not_reset_the_ticker(self) -> None:
        """A triggered run between ticks leaves the grid where it was."""
        kick = Trigger()
        calls = Calls()
        group = await started(timer("t", calls, interval=10, trigger=kick))
        await asyncio.sleep(3)
        kick.trigger()
        await asyncio.sleep(24)
        await group.stop()
        assert calls.starts == [3.0, 10.0, 20.0]

    async def test_tick_and_pending_trigger_coalesce(self) -> None:
        """A trigger pending when a tick is due is served by that one run."""
        kick = Trigger()
        metrics = Recorder()
        durations = iter([4.0, 0.0, 0.0])
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())
            await asyncio.sleep(next(durations))

        job = timer("t", fn, interval=5, trigger=kick)
        group = JobGroup(metrics=metrics)
        group.add(job)
        await group.start()
        await asyncio.sleep(6)  # first run 5.0 .. 9.0
        kick.trigger()  # at 6.0, while the run is busy
        await asyncio.sleep(5)  # the tick at 10.0 serves the trigger too
        await group.stop()
        assert starts == [5.0, 9.0, 10.0]  # 9.0 serves the trigger; 10.0 is the tick
        assert metrics.triggers == [("t", 3.0, 0)]

    async def test_trigger_during_run_at_tick_coalesces(self) -> None:
        """A run that overruns the next tick, with a trigger pending: one run after it."""
        kick = Trigger()
        durations = iter([7.0, 0.0, 0.0])
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())
            await asyncio.sleep(next(durations))

        group = await started(timer("t", fn, interval=5, trigger=kick))
        await asyncio.sleep(6)  # run 5.0 .. 12.0 overruns the 10.0 tick
        kick.trigger()
        await asyncio.sleep(8)
        await group.stop()
        assert starts == [5.0, 12.0]  # one run for tick 10 + the trigger, next tick at 15

    async def test_debounce_drops_triggers(self) -> None:
        """Triggers within the debounce window of the last run's start are dropped."""
        kick = Trigger()
        calls = Calls()
        job = timer("d", calls, interval=0, trigger=kick, debounce=3600)
        group = await started(job)
        await asyncio.sleep(1)
        kick.trigger()
        await asyncio.sleep(1)
        for _ in range(3):
            kick.trigger()
        await asyncio.sleep(4000)
        assert calls.starts == [1.0]
        assert job.statistics().dropped_triggers == 3
        kick.trigger()  # at 4002: the window has passed
        await asyncio.sleep(1)
        await group.stop()
        assert calls.starts == [1.0, 4002.0]

    async def test_shared_trigger_wakes_every_timer(self) -> None:
        """One trigger attached to two timers runs both (taskmill broadcasts; hive wakes one)."""
        kick = Trigger()
        a, b = Calls(), Calls()
        group = await started(
            timer("a", a, interval=0, trigger=kick), timer("b", b, interval=0, trigger=kick)
        )
        await asyncio.sleep(1)
        kick.trigger()
        await asyncio.sleep(1)
        kick.trigger()
        await asyncio.sleep(1)
        await group.stop()
        assert a.starts == [1.0, 2.0]
        assert b.starts == [1.0, 2.0]
        assert kick.statistics().timers == 0  # ended timers detach

    async def test_trigger_fired_before_any_timer_reaches_every_timer(self) -> None:
        """Triggers fired before timers were attached reach all of them, once."""
        kick = Trigger()
        kick.trigger()
        kick.trigger()
        assert kick.statistics().unclaimed == 2
        a, b = Calls(), Calls()
        group = await started(
            timer("a", a, interval=0, trigger=kick), timer("b", b, interval=0, trigger=kick)
        )
        await asyncio.sleep(1)
        assert kick.statistics().unclaimed == 0
        late = Calls()
        group.add(timer("late", late, interval=0, trigger=kick))  # after they were served
        await asyncio.sleep(1)
        await group.stop()
        assert (a.starts, b.starts, late.starts) == ([0.0], [0.0], [])

    def test_trigger_outside_a_loop_is_remembered(self) -> None:
        """trigger() works with no running loop; latency then counts from the timer start."""
        kick = Trigger()
        calls: list[float] = []
        metrics = Recorder()

        async def fn() -> None:
            calls.append(asyncio.get_running_loop().time())

        job = timer("sync", fn, interval=0, trigger=kick)
        kick.trigger()

        async def main() -> None:
            group = JobGroup(metrics=metrics)
            group.add(job)
            await group.start()
            await asyncio.sleep(1)
            await group.stop()

        from taskmill.testing import run

        run(main, start=100.0)
        assert calls == [100.0]
        assert metrics.triggers == [("sync", 0.0, 0)]

    async def test_trigger_latency_is_exact(self) -> None:
        """Latency runs from the first pending trigger to the run's start."""
        kick = Trigger()
        metrics = Recorder()
        job = timer("lat", Calls(duration=5), interval=0, trigger=kick)
        group = JobGroup(metrics=metrics)
        group.add(job)
        await group.start()
        kick.trigger()  # run 0 .. 5
        await asyncio.sleep(2)
        kick.trigger()  # pending from 2
        await asyncio.sleep(1)
        kick.trigger()  # folded
        await asyncio.sleep(10)
        await group.stop()
        assert metrics.triggers == [("lat", 0.0, 0), ("lat", 3.0, 1)]

    async def test_interval_zero_immediate_runs_once_then_waits_for_triggers(self) -> None:
        """A trigger-only timer with immediate=True runs at the start."""
        kick = Trigger()
        calls = Calls()
        group = await started(timer("i", calls, interval=0, trigger=kick, immediate=True))
        await asyncio.sleep(5)
        kick.trigger()
        await asyncio.sleep(5)
        await group.stop()
        assert calls.starts == [0.0, 5.0]

    def test_trigger_repr_and_statistics(self) -> None:
        """Trigger statistics count calls and attached timers."""
        kick = Trigger()
        timer("x", Calls(), interval=1, trigger=kick)
        kick.trigger()
        assert kick.statistics().fired == 1
        assert kick.statistics().timers == 1
        assert "fired=1" in repr(kick)


class TestValidation:
    @pytest.mark.parametrize("interval", [-1.0, math.inf, math.nan])
    def test_bad_interval(self, interval: float) -> None:
        """Negative or non-finite intervals are refused at the call."""
        with pytest.raises(ConfigurationError):
            timer("x", Calls(), interval=interval)

    def test_interval_zero_needs_a_trigger(self) -> None:
        """Interval 0 without a trigger would never run."""
        with pytest.raises(ConfigurationError, match="trigger"):
            timer("x", Calls(), interval=0)

    @pytest.mark.parametrize("debounce", [-1.0, math.inf])
    def test_bad_debounce(self, debounce: float) -> None:
        """A negative or infinite debounce is refused."""
        with pytest.raises(ConfigurationError):
            timer("x", Calls(), interval=1, trigger=Trigger(), debounce=debounce)

    def test_kind(self) -> None:
        """Timers are JobKind.TIMER."""
        assert timer("x", Calls(), interval=1).kind is JobKind.TIMER
