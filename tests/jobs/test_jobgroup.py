"""Job groups (seeds-spec 5.1 and checklist item 15)."""

from __future__ import annotations

import asyncio

import pytest

from taskmill import (
    AlreadyStarted,
    ConfigurationError,
    Health,
    HealthLevel,
    JobGroup,
    JobGroupState,
    JobState,
    NotRunning,
    StateError,
    StopTimeout,
    one_shot,
    timer,
)
from taskmill.testing import wait_all_tasks_blocked


def now() -> float:
    return asyncio.get_running_loop().time()


def forever(log: list[str], name: str) -> object:
    """A job body that runs until cancelled and logs its start and its cancellation."""

    async def fn() -> None:
        log.append(f"start {name}")
        try:
            await asyncio.Event().wait()
        finally:
            log.append(f"stop {name}")

    return fn


async def done() -> None:
    return None


def level_of(node: Health) -> HealthLevel:
    return node.level


class TestAdd:
    async def test_jobs_added_before_start_are_queued(self) -> None:
        """Queued jobs do not run until start(), then start in the order added."""
        log: list[str] = []
        group = JobGroup("g")
        group.add(one_shot("a", forever(log, "a")), one_shot("b", forever(log, "b")))  # type: ignore[arg-type]
        await asyncio.sleep(10)
        assert log == []
        assert group.statistics().queued == 2
        await group.start()
        await wait_all_tasks_blocked()
        assert log == ["start a", "start b"]
        assert group.statistics().running == 2
        await group.stop()

    async def test_jobs_added_while_running_start_at_once(self) -> None:
        """add() on a running group starts the job right away."""
        log: list[str] = []
        async with JobGroup() as group:
            await asyncio.sleep(5)
            group.add(one_shot("late", forever(log, "late")))  # type: ignore[arg-type]
            await wait_all_tasks_blocked()
            assert log == ["start late"]
            assert now() == 5.0
        assert log == ["start late", "stop late"]

    async def test_add_after_stop_raises(self) -> None:
        """A stopped group refuses new jobs."""
        group = JobGroup()
        await group.start()
        await group.stop()
        with pytest.raises(NotRunning):
            group.add(one_shot("x", done))

    async def test_add_during_shutdown_raises_without_deadlock(self) -> None:
        """A job calling add() while the group stops gets NotRunning at once (hive PR #80)."""
        group = JobGroup()
        errors: list[BaseException] = []

        async def adder() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                try:
                    group.add(one_shot("child", done))
                except NotRunning as exc:
                    errors.append(exc)

        group.add(one_shot("adder", adder))
        await group.start()
        await wait_all_tasks_blocked()
        await group.stop(timeout=60)
        assert now() == 0.0  # no waiting at all, let alone until the timeout
        assert len(errors) == 1

    async def test_bad_adds(self) -> None:
        """Non-jobs, duplicates and already-run jobs are refused; nothing is added."""
        group = JobGroup()
        job = one_shot("j", done)
        with pytest.raises(ConfigurationError):
            group.add(job, "nope")  # type: ignore[arg-type]
        with pytest.raises(StateError):
            group.add(job, job)
        assert group.statistics().queued == 0
        group.add(job)
        with pytest.raises(StateError):
            JobGroup().add(job)  # claimed by the first group
        ran = one_shot("ran", done)
        await ran.run()
        with pytest.raises(StateError):
            group.add(ran)


class TestStartStop:
    async def test_reverse_stop_order(self) -> None:
        """stop() cancels and awaits jobs one by one, last started first."""
        log: list[str] = []
        group = JobGroup()
        group.add(*(one_shot(n, forever(log, n)) for n in "abc"))  # type: ignore[arg-type]
        await group.start()
        group.add(one_shot("d", forever(log, "d")))  # type: ignore[arg-type]
        await wait_all_tasks_blocked()
        await group.stop()
        assert log[4:] == ["stop d", "stop c", "stop b", "stop a"]

    async def test_each_job_is_awaited_before_the_previous_is_cancelled(self) -> None:
        """A slow-to-stop job delays the cancellation of the jobs started before it."""
        log: list[tuple[str, float]] = []

        async def slow() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(2)  # cleanup takes 2 s
                log.append(("slow stopped", now()))

        async def first() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                log.append(("first stopped", now()))

        group = JobGroup()
        group.add(one_shot("first", first), one_shot("slow", slow))
        await group.start()
        await wait_all_tasks_blocked()
        await group.stop()
        assert log == [("slow stopped", 2.0), ("first stopped", 2.0)]

    async def test_stop_timeout_names_the_stuck_job(self) -> None:
        """A job that ignores cancellation makes stop() raise StopTimeout at the deadline."""
        log: list[str] = []

        async def stuck() -> None:
            for _ in range(3):  # ignores stop()'s two cancels; the test teardown's ends it
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    log.append(f"ignored cancel at {now()}")

        group = JobGroup("g")
        group.add(one_shot("early", forever(log, "early")), one_shot("stuck", stuck))  # type: ignore[arg-type]
        await group.start()
        await wait_all_tasks_blocked()
        with pytest.raises(StopTimeout) as info:
            await group.stop(timeout=5)
        assert now() == 5.0
        assert info.value.pending == ("stuck",)
        assert info.value.timeout == 5
        assert "stop early" in log  # the rest were still cancelled
        assert log.count("ignored cancel at 0.0") == 1
        assert log.count("ignored cancel at 5.0") == 1
        assert group.state is JobGroupState.STOPPED
        assert group.health.own_level is HealthLevel.STOPPED
        assert group.health.message == "stop timed out"

    async def test_double_start_and_repeated_stop(self) -> None:
        """start() twice raises; stop() is idempotent."""
        group = JobGroup()
        await group.start()
        with pytest.raises(AlreadyStarted):
            await group.start()
        await group.stop()
        await group.stop()
        with pytest.raises(AlreadyStarted):
            await group.start()

    async def test_concurrent_stops_wait_for_the_first(self) -> None:
        """A second stop() while one is in progress waits for it."""
        log: list[str] = []

        async def slow() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(3)
                log.append("slow done")

        group = JobGroup()
        group.add(one_shot("slow", slow))
        await group.start()
        await wait_all_tasks_blocked()
        first = asyncio.create_task(group.stop())
        await wait_all_tasks_blocked()
        await group.stop()
        assert now() == 3.0
        assert log == ["slow done"]
        await first

    async def test_stop_before_start_drops_queued_jobs(self) -> None:
        """Stopping a never-started group drops its queued jobs (hive panicked)."""
        group = JobGroup()
        job = one_shot("q", done)
        group.add(job)
        await group.stop()
        stats = group.statistics()
        assert (stats.queued, stats.stopped, stats.state) == (0, 1, JobGroupState.STOPPED)
        assert job.state is JobState.PENDING

    async def test_stop_right_after_start(self) -> None:
        """A job cancelled before its first step is counted as stopped and marked so."""
        group = JobGroup()
        group.add(one_shot("never", done))
        await group.start()
        await group.stop()
        stats = group.statistics()
        assert (stats.stopped, stats.finished) == (1, 0)
        assert group.health.level is HealthLevel.STOPPED

    async def test_bad_timeout(self) -> None:
        """A negative stop timeout is refused."""
        with pytest.raises(ConfigurationError):
            await JobGroup().stop(timeout=-1)

    async def test_task_name_is_the_job_name(self) -> None:
        """Each job's asyncio task is named after the job."""
        names: list[str] = []

        async def fn() -> None:
            task = asyncio.current_task()
            assert task is not None
            names.append(task.get_name())

        async with JobGroup() as group:
            group.add(one_shot("named-job", fn))
            await wait_all_tasks_blocked()
        assert names == ["named-job"]

    async def test_shutdown_is_passed_to_jobs(self) -> None:
        """A fatal one-shot reaches the group's shutdown callable."""
        calls: list[BaseException | None] = []

        async def fail() -> None:
            raise ValueError("fatal")

        async with JobGroup(shutdown=calls.append) as group:
            group.add(one_shot("fatal", fail, shutdown_on_failure=True))
            await wait_all_tasks_blocked()
        assert [str(e) for e in calls] == ["fatal"]
        assert group.statistics().failed == 1


class TestHealthAndStatistics:
    async def test_scoped_group_reports_under_its_scope_for_pre_start_jobs(self) -> None:
        """Jobs added to a scoped view before start report under the sub-scope (hive bug)."""
        root = Health.root("app")
        group = JobGroup("jobs", health=root.scope("jobs"))
        sub = group.scoped("indexer")
        early = one_shot("early", forever([], "early"))  # type: ignore[arg-type]
        sub.add(early)
        await group.start()
        late = one_shot("late", forever([], "late"))  # type: ignore[arg-type]
        sub.scoped("deeper").add(late)
        await wait_all_tasks_blocked()
        assert early.health is not None
        assert late.health is not None
        assert early.health.path == ("app", "jobs", "indexer", "early")
        assert late.health.path == ("app", "jobs", "indexer", "deeper", "late")
        assert sub.name == "indexer"
        assert "indexer" in repr(sub)
        await group.stop()

    async def test_health_aggregates_up_to_the_group(self) -> None:
        """A degraded timer makes the group DEGRADED; recovery makes it OK again."""
        fail = True

        async def flaky() -> None:
            if fail:
                raise ValueError("down")

        group = JobGroup("g")
        sub = group.scoped("sub")
        sub.add(timer("flaky", flaky, interval=1))
        group.add(one_shot("quiet", forever([], "quiet")))  # type: ignore[arg-type]
        assert level_of(group.health) is HealthLevel.UNKNOWN
        await group.start()
        await asyncio.sleep(1.5)
        assert level_of(group.health) is HealthLevel.DEGRADED
        assert sub.health.level is HealthLevel.DEGRADED
        snap = group.health.snapshot()
        flaky_node = snap.find("sub", "flaky")
        assert flaky_node is not None
        assert flaky_node.error is not None
        assert flaky_node.error.message == "down"
        fail = False
        await asyncio.sleep(1)
        assert level_of(group.health) is HealthLevel.OK
        await group.stop()
        assert level_of(group.health) is HealthLevel.STOPPED

    async def test_finished_jobs_unlink_and_failed_ones_stay_visible(self) -> None:
        """A successful one-shot closes its scope; a failed one keeps STOPPED + error."""

        async def fail() -> None:
            raise ValueError("nope")

        group = JobGroup("g")
        group.add(one_shot("ok", done), one_shot("bad", fail))
        await group.start()
        await wait_all_tasks_blocked()
        stats = group.statistics()
        assert (stats.finished, stats.failed, stats.running, stats.jobs) == (1, 1, 0, ())
        assert [c.name for c in group.health.children] == ["bad"]
        assert group.health.children[0].own_level is HealthLevel.STOPPED
        assert stats.runs == 2
        assert stats.errors == 1
        await group.stop()

    async def test_statistics_count_runs_of_live_jobs(self) -> None:
        """Runs and errors of running jobs are included; repr shows the state."""
        group = JobGroup("g")
        group.add(timer("t", done, interval=1))
        await group.start()
        await asyncio.sleep(3.5)
        stats = group.statistics()
        assert (stats.runs, stats.errors, stats.running) == (3, 0, 1)
        assert stats.jobs[0].name == "t"
        assert "state=running" in repr(group)
        await group.stop()
        assert group.statistics().stopped == 1
