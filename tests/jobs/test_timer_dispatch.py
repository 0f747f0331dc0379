"""Timer runs started by the per-loop dispatcher behave as if the job's task ran them.

The dispatcher starts a run's first step itself (no task wake-up) and hands a run that
suspends to the job's task. These tests pin what user code can observe: the current
task, the context, timeouts and task groups inside a run, cancellation at every point
of the hand-over, error isolation between timers sharing the dispatcher, and that idle
timers cost no loop timer each.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

import taskmill as tm
from taskmill import _timer
from taskmill.testing import wait_all_tasks_blocked

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="-")


def now() -> float:
    return asyncio.get_running_loop().time()


@pytest.fixture(params=["eager", "task-only"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with eager first steps and with every run handed to the job's task."""
    param: str = request.param
    if param == "task-only":
        monkeypatch.setattr(_timer, "_enter_task", None)
    return param


async def started(*jobs: tm.Job, metrics: tm.Metrics | None = None) -> tm.JobGroup:
    group = tm.JobGroup("timers", metrics=metrics)
    group.add(*jobs)
    await group.start()
    return group


class TestRunsAsTheJobsTask:
    async def test_current_task_health_and_context(self, mode: str) -> None:
        """A run sees the job's task, its health node and the context it was started in."""
        seen: list[tuple[asyncio.Task[Any] | None, tm.Health, str, float]] = []

        async def fn() -> None:
            seen.append((asyncio.current_task(), tm.current_health(), REQUEST.get(), now()))
            if len(seen) % 2 == 0:  # every other run suspends before looking again
                await asyncio.sleep(0.25)
                seen.append((asyncio.current_task(), tm.current_health(), REQUEST.get(), now()))

        job = tm.timer("ctx", fn, interval=1)
        REQUEST.set("r-42")
        group = await started(job)
        await asyncio.sleep(3.5)
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "ctx"]
        await group.stop()
        assert len(tasks) == 1
        assert [(s[0], s[1], s[2]) for s in seen] == [(tasks[0], job.health, "r-42")] * 5
        assert [s[3] for s in seen] == [1.0, 2.0, 2.25, 3.0, 3.25]

    async def test_context_changes_persist_across_runs_and_the_suspension(self, mode: str) -> None:
        """A context variable a run sets is still set after it suspends and in later runs."""
        values: list[str] = []

        async def fn() -> None:
            values.append(REQUEST.get())
            REQUEST.set(f"set at {now():g}")
            await asyncio.sleep(0)
            values.append(REQUEST.get())

        group = await started(tm.timer("vars", fn, interval=1))
        await asyncio.sleep(2.5)
        await group.stop()
        assert values == ["-", "set at 1", "set at 1", "set at 2"]
        assert REQUEST.get() == "-"  # never leaks into the caller

    async def test_timeout_inside_a_run_cancels_only_that_run(self, mode: str) -> None:
        """asyncio.timeout() in a run expires the run (TimeoutError), not the timer."""
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())
            async with asyncio.timeout(0.5):
                await asyncio.sleep(10)

        job = tm.timer("slow", fn, interval=2)
        group = await started(job)
        await asyncio.sleep(6.9)
        assert starts == [2.0, 4.0, 6.0]
        assert job.state is tm.JobState.RUNNING
        stats = job.statistics()
        assert (stats.runs, stats.errors, stats.last_duration) == (3, 3, 0.5)
        assert stats.last_error == tm.HealthError(type="TimeoutError", message="")
        await group.stop()
        assert job.statistics().state is tm.JobState.STOPPED

    async def test_task_group_inside_a_run(self, mode: str) -> None:
        """A TaskGroup in a run works; a failing child fails that run only."""
        done: list[float] = []

        async def child(fail: bool) -> None:
            await asyncio.sleep(0.1)
            if fail:
                raise ValueError("child failed")
            done.append(now())

        runs = 0

        async def fn() -> None:
            nonlocal runs
            runs += 1
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child(fail=runs == 2))
                tg.create_task(asyncio.sleep(1))

        job = tm.timer("tg", fn, interval=5)
        group = await started(job)
        await asyncio.sleep(17)
        await group.stop()
        assert done == [5.1, 15.1]
        assert job.statistics().errors == 1
        assert job.statistics().runs == 3


class TestCancellation:
    async def test_cancel_between_first_step_and_hand_over(self, mode: str) -> None:
        """The job is cancelled after its run suspended, before its task took the run over.

        The run gets the CancelledError at its await (and the future it waited on is
        cancelled), cleans up, and the job ends STOPPED.
        """
        cleanup: list[float] = []
        waited: list[asyncio.Future[None]] = []

        async def victim_fn() -> None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waited.append(future)
            try:
                await future
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)  # cleanup that takes time
                cleanup.append(now())
                raise

        victim = tm.timer("victim", victim_fn, interval=1)
        task_of: dict[str, asyncio.Task[Any]] = {}

        async def killer_fn() -> None:  # due at the same instant, started after the victim
            task_of["victim"].cancel()

        killer = tm.timer("killer", killer_fn, interval=1)
        group = await started(victim, killer)
        task_of.update({t.get_name(): t for t in asyncio.all_tasks()})
        await asyncio.sleep(3)
        assert cleanup == [1.5]
        assert waited[0].cancelled()
        assert victim.state is tm.JobState.STOPPED
        assert victim.statistics().runs == 0  # a cancelled run is not a run
        assert killer.state is tm.JobState.RUNNING
        await group.stop()

    async def test_cancel_before_a_due_run_starts_skips_it(self) -> None:
        """A job cancelled while its run is due never starts that run."""
        starts: list[float] = []

        async def victim_fn() -> None:
            starts.append(now())

        task_of: dict[str, asyncio.Task[Any]] = {}

        async def killer_fn() -> None:  # due at the same instant, started before the victim
            task_of["victim"].cancel()

        killer = tm.timer("killer", killer_fn, interval=1)
        victim = tm.timer("victim", victim_fn, interval=1)
        group = await started(killer, victim)
        task_of.update({t.get_name(): t for t in asyncio.all_tasks()})
        await asyncio.sleep(2.5)
        assert starts == []
        assert victim.state is tm.JobState.STOPPED
        await group.stop()

    async def test_cancelled_error_raised_by_a_run_stops_the_job(self, mode: str) -> None:
        """A run that raises CancelledError ends the job STOPPED (as ``await`` would)."""

        async def fn() -> None:
            raise asyncio.CancelledError

        job = tm.timer("c", fn, interval=1)
        group = await started(job)
        await asyncio.sleep(1.5)
        assert job.state is tm.JobState.STOPPED
        assert job.health is not None
        assert job.health.message == "stopped"
        await group.stop()

    async def test_stop_waits_for_suspended_runs_in_reverse_start_order(self, mode: str) -> None:
        """stop() cancels runs in progress last-started first and waits for each."""
        ended: list[tuple[str, float]] = []

        def slow(name: str) -> Callable[[], Awaitable[None]]:
            async def fn() -> None:
                try:
                    await asyncio.sleep(100)
                except asyncio.CancelledError:
                    await asyncio.sleep(1)
                    ended.append((name, now()))
                    raise

            return fn

        group = await started(*(tm.timer(n, slow(n), interval=1) for n in "abc"))
        await asyncio.sleep(2)
        await group.stop()
        assert ended == [("c", 3.0), ("b", 4.0), ("a", 5.0)]


class TestIsolationAndShape:
    async def test_failing_metrics_end_only_that_timer(self, mode: str) -> None:
        """A metrics sink that raises for one timer fails that job; the others keep ticking."""

        class Picky:
            def job_run(self, kind: str, name: str, seconds: float) -> None:
                if name == "bad":
                    raise RuntimeError("metrics down")

            def job_error(self, kind: str, name: str, error: BaseException) -> None:
                return None

            def trigger(self, name: str, latency: float, folded: int) -> None:
                return None

        starts: dict[str, list[float]] = {"bad": [], "good": []}

        def record(name: str) -> Callable[[], Awaitable[None]]:
            async def fn() -> None:
                starts[name].append(now())

            return fn

        bad = tm.timer("bad", record("bad"), interval=1)
        good = tm.timer("good", record("good"), interval=1)
        group = await started(bad, good, metrics=Picky())
        await asyncio.sleep(3.5)
        await group.stop()
        assert bad.state is tm.JobState.FAILED
        assert starts == {"bad": [1.0], "good": [1.0, 2.0, 3.0]}

    async def test_other_awaitables_and_sync_errors(self, mode: str) -> None:
        """fn may return any awaitable; a synchronous raise is a failed run."""
        calls: list[str] = []

        class Ready:
            def __await__(self) -> Generator[Any, None, None]:
                calls.append("awaited")
                yield from asyncio.sleep(0.25).__await__()

        def returns_awaitable() -> Ready:
            return Ready()

        def raises() -> Awaitable[None]:
            raise LookupError("no coroutine")

        ok = tm.timer("ok", returns_awaitable, interval=1)
        bad = tm.timer("bad", raises, interval=1)
        group = await started(ok, bad)
        await asyncio.sleep(2.5)
        await group.stop()
        assert calls == ["awaited", "awaited"]
        assert ok.statistics().last_duration == 0.25
        assert (bad.statistics().runs, bad.statistics().errors) == (2, 2)

    async def test_many_timers_due_at_once_all_run_on_time(self, mode: str) -> None:
        """More timers than one dispatcher batch, all due together, all run at that instant."""
        count = _timer.BATCH * 2 + 7
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())

        group = await started(*(tm.timer(f"t{i}", fn, interval=1) for i in range(count)))
        await asyncio.sleep(2.5)
        await group.stop()
        assert starts == [1.0] * count + [2.0] * count

    async def test_idle_timers_share_one_loop_timer(self) -> None:
        """1,000 idle timers with different deadlines hold a single loop timer handle."""
        loop = asyncio.get_running_loop()

        async def fn() -> None:
            return None

        def live() -> int:
            scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
            return len([h for h in scheduled if not h.cancelled()])

        before = live()
        group = await started(*(tm.timer(f"t{i}", fn, interval=1 + i / 1000) for i in range(1000)))
        await wait_all_tasks_blocked()
        assert live() - before == 1
        await asyncio.sleep(1.5)  # half of them ran once; still one handle
        assert live() - before == 1
        await group.stop()

    async def test_stopped_timers_do_not_pile_up_in_the_heap(self) -> None:
        """Entries of stopped timers are dropped, not kept until their far deadline."""

        async def fn() -> None:
            return None

        for _ in range(3):
            group = await started(*(tm.timer(f"t{i}", fn, interval=3600) for i in range(300)))
            await wait_all_tasks_blocked()
            await group.stop()
        dispatcher = _timer._DISPATCHERS[asyncio.get_running_loop()]
        assert len(dispatcher._heap) <= 64
        keep = await started(tm.timer("after", fn, interval=1))
        await asyncio.sleep(1.5)
        await keep.stop()
        assert keep.statistics().runs == 1
