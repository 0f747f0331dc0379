"""Tagged task groups (sc-bos Group / GroupTask), on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any, assert_type

import pytest

import taskmill as tm

State = tm.GroupTaskState
Outcome = tm.GroupTaskOutcome


def now() -> float:
    return asyncio.get_running_loop().time()


def state_of(task: tm.GroupTask[Any]) -> tm.GroupTaskState:
    """Read the state through a call (so the type checker does not pin it)."""
    return task.state


class Script:
    """An async function whose attempts sleep and fail as scripted (1-based)."""

    def __init__(self, *, sleep: float = 0.0, fail_until: int = 0, result: str = "ok") -> None:
        self.calls = 0
        self.sleep = sleep
        self.fail_until = fail_until
        self.result = result
        self.errors: list[Exception] = []

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.sleep)
        if self.calls <= self.fail_until:
            self.errors.append(RuntimeError(f"attempt {self.calls}"))
            raise self.errors[-1]
        return self.result


def constant(delay: float, attempts: int | None) -> tm.Retry:
    return tm.Retry(max_attempts=attempts, backoff=tm.Constant(delay))


class TestSeedSuite:
    async def test_state_transitions_at_exact_times(self) -> None:
        """Pending -> Running -> Waiting (sc-bos Delay) -> Running -> Stopped."""
        async with tm.open_group() as group:
            task = group.spawn("t", Script(sleep=2, fail_until=1), retry=constant(5, 2))
            assert State.PENDING is state_of(task)
            await asyncio.sleep(1)
            assert State.RUNNING is state_of(task)
            await asyncio.sleep(2)  # t=3: the first attempt failed at 2, waiting until 7
            assert State.WAITING is state_of(task)
            await asyncio.sleep(5)  # t=8: second attempt running since 7
            assert State.RUNNING is state_of(task)
            await asyncio.sleep(2)  # t=10
            assert State.STOPPED is state_of(task)
        assert (Outcome.SUCCEEDED, 0.0, 9.0, 2) == (
            task.outcome,
            task.started_at,
            task.finished_at,
            task.attempts,
        )
        assert "ok" == task.result_nowait()

    async def test_final_error_is_the_last_error(self) -> None:
        """When retries run out, the last attempt's error is the task's final error."""
        script = Script(fail_until=99)
        async with tm.open_group() as group:
            task = group.spawn("t", script, retry=constant(1, 3))
        assert Outcome.FAILED is task.outcome
        assert script.errors[-1] is task.last_error
        assert isinstance(task.error, tm.RetriesExhausted)
        assert script.errors[-1] is task.error.__cause__
        assert [1, 2, 3] == [a.number for a in task.history]

    async def test_without_retry_the_error_is_raw(self) -> None:
        """retry=None makes one attempt; its error is the task's error, unwrapped."""
        script = Script(fail_until=1)
        async with tm.open_group() as group:
            task = group.spawn("t", script)
        assert (1, script.errors[0]) == (script.calls, task.error)

    async def test_cancel_during_wait_stops_with_cancellation(self) -> None:
        """Cancelling during the backoff wait stops the task as cancelled; no new attempt."""
        script = Script(fail_until=99)
        async with tm.open_group() as group:
            task = group.spawn("t", script, retry=constant(10, None))
            await asyncio.sleep(5)
            assert State.WAITING is state_of(task)
            assert task.cancel()
        assert (Outcome.CANCELLED, None, 1, 5.0) == (
            task.outcome,
            task.error,
            script.calls,
            task.finished_at,
        )
        assert not task.cancel()

    async def test_wait_with_timeout_false_then_true(self) -> None:
        """wait(timeout) is False while it runs, True once it stopped."""
        async with tm.open_group() as group:
            task = group.spawn("t", Script(sleep=10))
            assert not await task.wait(timeout=4)
            assert 4.0 == now()
            assert await task.wait(timeout=20)
            assert 10.0 == now()

    async def test_duplicate_tag_is_refused_and_the_original_untouched(self) -> None:
        """A second spawn with the same tag raises TagExists; the first keeps running."""
        first = Script(sleep=5, result="first")
        second = Script(result="second")
        async with tm.open_group() as group:
            original = group.spawn("t", first)
            with pytest.raises(tm.TagExists) as info:
                group.spawn("t", second)
            assert "t" == info.value.tag
            assert original is group.tasks()["t"]
        assert ("first", 0) == (await original.result(), second.calls)

    async def test_stop_now_directive(self) -> None:
        """StopRetrying on the 5th call: 5 calls and that (unwrapped) error."""
        calls = 0
        final = ValueError("give up")

        async def task_fn() -> None:
            nonlocal calls
            calls += 1
            if calls == 5:
                raise tm.StopRetrying(final)
            raise RuntimeError("again")

        async with tm.open_group() as group:
            task = group.spawn("t", task_fn, retry=constant(0, 10))
        assert (5, final) == (calls, task.error)

    async def test_retry_now_directive_skips_the_wait(self) -> None:
        """RetryNow retries at once (delay 0) even with a long backoff."""
        starts: list[float] = []

        async def fn() -> None:
            starts.append(now())
            if len(starts) < 3:
                raise tm.RetryNow(RuntimeError("now"))

        async with tm.open_group() as group:
            group.spawn("t", fn, retry=constant(100, 5))
        assert [0.0, 0.0, 0.0] == starts


class TestTasks:
    async def test_arguments_and_result(self) -> None:
        """spawn passes positional args; awaiting the task returns its result."""

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(1)
            return a + b

        async with tm.open_group() as group:
            task = group.spawn("sum", add, 2, 3)
            assert_type(task, tm.GroupTask[int])
            assert 5 == await task.result()
            keyword = group.spawn("kw", functools.partial(add, b=10), 1)
        assert 11 == keyword.result_nowait()

        if TYPE_CHECKING:  # type-checked, not run: wrong arguments are type errors
            group.spawn("bad", add, "2", 3)  # type: ignore[arg-type]
            group.spawn("bad", add, 2)  # type: ignore[arg-type]

    async def test_result_states(self) -> None:
        """result_nowait() before the end is WouldBlock; a failure raises its error."""
        async with tm.open_group() as group:
            running = group.spawn("run", Script(sleep=1))
            with pytest.raises(tm.WouldBlock):
                running.result_nowait()
            failing = group.spawn("fail", Script(fail_until=1))
        with pytest.raises(RuntimeError, match="attempt 1"):
            failing.result_nowait()
        with pytest.raises(RuntimeError, match="attempt 1"):
            await failing.result()

    async def test_awaiting_a_cancelled_task_raises_task_cancelled(self) -> None:
        """The awaiter was not cancelled, the task was: TaskCancelled."""
        async with tm.open_group() as group:
            task = group.spawn("t", Script(sleep=10))
            await asyncio.sleep(1)
            task.cancel()
            with pytest.raises(tm.TaskCancelled):
                await task.result()

    async def test_per_attempt_timeout(self) -> None:
        """Retry(timeout=) gives each attempt a fresh deadline; TaskTimeout is retried."""
        script = Script(sleep=10)
        policy = tm.Retry(max_attempts=2, backoff=tm.Constant(1), timeout=3)
        async with tm.open_group() as group:
            task = group.spawn("t", script, retry=policy)
        assert isinstance(task.error, tm.RetriesExhausted)
        assert isinstance(task.last_error, tm.TaskTimeout)
        assert (2, 7.0) == (script.calls, now())

    async def test_deadline_cuts_the_attempt(self) -> None:
        """A total deadline cuts the last attempt short."""
        policy = tm.Retry(max_attempts=None, backoff=tm.Constant(1), deadline=5)
        async with tm.open_group() as group:
            task = group.spawn("t", Script(sleep=3, fail_until=99), retry=policy)
        assert isinstance(task.error, tm.RetriesExhausted)
        assert 5.0 == task.finished_at

    async def test_cancelled_while_swallowing_is_not_retried(self) -> None:
        """A function that swallows the cancellation and fails is not retried."""
        calls = 0

        async def stubborn() -> None:
            nonlocal calls
            calls += 1
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            raise RuntimeError("after cancel")

        async with tm.open_group() as group:
            task = group.spawn("t", stubborn, retry=constant(0, 5))
            await asyncio.sleep(1)
            task.cancel()
        assert (1, Outcome.CANCELLED) == (calls, task.outcome)


class TestStrategies:
    async def test_isolate_failure_leaves_siblings_running(self) -> None:
        """isolate (default): a failure cancels nobody and is not raised on exit."""
        async with tm.open_group() as group:
            bad = group.spawn("bad", Script(fail_until=1))
            good = group.spawn("good", Script(sleep=10))
        assert (Outcome.FAILED, Outcome.SUCCEEDED, 10.0) == (bad.outcome, good.outcome, now())

    async def test_isolate_raise_errors(self) -> None:
        """raise_errors=True raises every failure on exit, after waiting for all."""

        async def body() -> None:
            async with tm.open_group(raise_errors=True) as group:
                group.spawn("bad", Script(fail_until=1))
                group.spawn("good", Script(sleep=10))

        with pytest.raises(ExceptionGroup) as info:
            await body()
        assert ["attempt 1"] == [str(e) for e in info.value.exceptions]
        assert 10.0 == now()

    async def test_cancel_all_first_failure_cancels_the_rest(self) -> None:
        """cancel_all: the first failure cancels every sibling and is raised on exit."""
        group = tm.open_group(strategy="cancel_all")

        async def body() -> None:
            async with group:
                group.spawn("bad", Script(sleep=2, fail_until=1))
                group.spawn("slow", Script(sleep=10))

        with pytest.raises(ExceptionGroup) as info:
            await body()
        bad, slow = group.tasks()["bad"], group.tasks()["slow"]
        assert ["attempt 1"] == [str(e) for e in info.value.exceptions]
        assert (Outcome.CANCELLED, 2.0, 2.0) == (slow.outcome, slow.finished_at, now())
        assert Outcome.FAILED is bad.outcome
        with pytest.raises(tm.NotRunning):
            group.spawn("late", Script())

    async def test_exit_waits_for_running_tasks(self) -> None:
        """Leaving the block waits for the tasks, like asyncio.TaskGroup."""
        async with tm.open_group() as group:
            task = group.spawn("t", Script(sleep=7))
        assert (True, 7.0) == (task.done, now())
        with pytest.raises(tm.NotRunning):
            group.spawn("after", Script())

    async def test_body_error_cancels_tasks(self) -> None:
        """An error in the block cancels the tasks and propagates."""
        group = tm.open_group()

        async def body() -> None:
            async with group:
                group.spawn("t", Script(sleep=7))
                await asyncio.sleep(1)
                raise KeyError("body")

        with pytest.raises(KeyError):
            await body()
        task = group.tasks()["t"]
        assert (Outcome.CANCELLED, 1.0) == (task.outcome, now())

    async def test_cancelling_the_owner_cancels_tasks(self) -> None:
        """Cancelling the task inside `async with` cancels the group's tasks too."""
        tasks: list[tm.GroupTask[str]] = []

        async def owner() -> None:
            async with tm.open_group() as group:
                tasks.append(group.spawn("t", Script(sleep=100)))

        runner = asyncio.create_task(owner())
        await asyncio.sleep(3)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert (Outcome.CANCELLED, 3.0) == (tasks[0].outcome, tasks[0].finished_at)

    async def test_standalone_group_aclose(self) -> None:
        """Without async with: aclose() cancels and waits; join() only waits."""
        group = tm.Group(name="standalone")
        quick = group.spawn("quick", Script(sleep=1))
        await group.join()
        slow = group.spawn("slow", Script(sleep=100))
        await group.aclose()
        assert (Outcome.SUCCEEDED, Outcome.CANCELLED) == (quick.outcome, slow.outcome)
        assert 1.0 == now()

    def test_bad_options(self) -> None:
        """Unknown strategy or negative retention: ConfigurationError."""
        with pytest.raises(tm.ConfigurationError):
            tm.open_group(strategy="yolo")  # type: ignore[arg-type]
        with pytest.raises(tm.ConfigurationError):
            tm.open_group(retain_finished=-1)


class TestPruning:
    async def test_prune_frees_tags(self) -> None:
        """prune() drops finished tasks (oldest first) so their tags can be reused."""
        async with tm.open_group() as group:
            group.spawn("b", Script(sleep=2))
            group.spawn("a", Script(sleep=1))
            group.spawn("run", Script(sleep=10))
            await asyncio.sleep(3)
            assert ["a", "b"] == group.prune()
            assert ["run"] == list(group.tasks())
            again = group.spawn("a", Script(result="again"))
        assert "again" == again.result_nowait()

    async def test_retain_finished_prunes_automatically(self) -> None:
        """retain_finished=N keeps only the N most recently finished tasks."""
        async with tm.open_group(retain_finished=2) as group:
            for n in range(5):
                group.spawn(f"t{n}", Script(sleep=n))
        assert ["t3", "t4"] == sorted(group.tasks())
        assert 3 == group.statistics().pruned

    async def test_tasks_returns_a_copy(self) -> None:
        """Mutating the returned mapping does not touch the group."""
        async with tm.open_group() as group:
            group.spawn("t", Script())
            group.tasks().clear()
            assert "t" in group
            assert 1 == len(group)


class TestObservability:
    async def test_statistics_and_reprs(self) -> None:
        """statistics() counts states and outcomes; reprs show state."""
        async with tm.open_group(name="g") as group:
            group.spawn("ok", Script())
            group.spawn("bad", Script(fail_until=1))
            waiting = group.spawn("wait", Script(fail_until=9), retry=constant(50, None))
            group.spawn("run", Script(sleep=5))
            await asyncio.sleep(1)
            assert (
                tm.GroupStatistics(
                    name="g",
                    strategy="isolate",
                    tasks=4,
                    pending=0,
                    running=1,
                    waiting=1,
                    stopped=2,
                    spawned=4,
                    succeeded=1,
                    failed=1,
                    cancelled=0,
                    pruned=0,
                    closed=False,
                )
                == group.statistics()
            )
            assert "<GroupTask 'wait' state=waiting attempts=1>" == repr(waiting)
            assert (
                "<Group 'g' strategy=isolate tasks=4 running=1 waiting=1 stopped=2 closed=False>"
                == repr(group)
            )
            assert 2 == group.cancel_all()
        assert "<GroupTask 'wait' state=stopped outcome=cancelled attempts=1>" == repr(waiting)
