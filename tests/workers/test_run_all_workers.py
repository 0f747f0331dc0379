"""run_all_workers / run_all_jobs: rebuy runutil's RunAllWorkers and RunAllJobs, ported."""

from __future__ import annotations

import asyncio

import pytest

import taskmill as tm
from taskmill.testing import wait_all_tasks_blocked


async def forever() -> None:
    await asyncio.Event().wait()


class Counter:
    """A worker object (has run()) that counts how it ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled = 0

    async def run(self) -> None:
        try:
            await forever()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class TestRunAllWorkers:
    async def test_no_workers_returns_at_once(self) -> None:
        """Zero workers: nothing to run, returns immediately."""
        await tm.run_all_workers()
        assert 0.0 == asyncio.get_running_loop().time()

    async def test_three_immediate_returns_are_premature(self) -> None:
        """rebuy: three workers returning nil at once -> WorkerExitedPrematurely."""

        async def quick() -> None:
            return None

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(quick, quick, quick)
        premature = info.value.exceptions
        assert 1 == len(premature)
        assert isinstance(premature[0], tm.WorkerExitedPrematurely)
        assert "TestRunAllWorkers.test_three_immediate_returns_are_premature.<locals>.quick" == (
            premature[0].worker
        )

    async def test_cancel_parent_is_clean(self) -> None:
        """rebuy: cancelling the parent stops every worker and is not an error."""
        a, b = Counter("a"), Counter("b")
        task = asyncio.create_task(tm.run_all_workers(a, b))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (1, 1) == (a.cancelled, b.cancelled)

    async def test_cancel_parent_while_one_errors_raises_that_error(self) -> None:
        """rebuy: a worker that fails while shutting down reports its error."""
        boom = ValueError("failed on the way out")

        async def fails_on_cancel() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                raise boom from None

        task = asyncio.create_task(tm.run_all_workers(Counter("a"), fails_on_cancel))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(ExceptionGroup) as info:
            await task
        assert [boom] == list(info.value.exceptions)

    async def test_one_error_stops_the_others(self) -> None:
        """rebuy: one worker errors at once -> that error, the others are stopped."""
        boom = RuntimeError("boom")
        others = [Counter("a"), Counter("b")]

        async def fails() -> None:
            await asyncio.sleep(5)
            raise boom

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(*others, fails)
        assert [boom] == list(info.value.exceptions)
        assert [1, 1] == [w.cancelled for w in others]
        assert 5.0 == asyncio.get_running_loop().time()

    async def test_cancelled_error_during_shutdown_is_not_an_error(self) -> None:
        """Deviation from rebuy: CancelledError (raised or swallowed) on shutdown is clean."""
        boom = KeyError("k")

        async def fails() -> None:
            raise boom

        async def swallows() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                return

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(Counter("a"), swallows, fails)
        assert [boom] == list(info.value.exceptions)

    async def test_clean_return_then_errors_in_completion_order(self) -> None:
        """The premature exit comes first, then errors raised during the cascade."""
        late = OSError("cleanup failed")

        async def returns() -> None:
            await asyncio.sleep(1)

        async def fails_on_cancel() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                raise late from None

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(returns, fails_on_cancel)
        first, second = info.value.exceptions
        assert isinstance(first, tm.WorkerExitedPrematurely)
        assert late is second

    async def test_worker_cancelling_itself_is_premature(self) -> None:
        """A worker that raises CancelledError on its own is an exit nobody asked for."""

        async def self_cancel() -> None:
            raise asyncio.CancelledError

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(self_cancel, Counter("a"))
        assert isinstance(info.value.exceptions[0], tm.WorkerExitedPrematurely)

    async def test_worker_name_comes_from_its_name_attribute(self) -> None:
        """WorkerExitedPrematurely names the worker by its `name`."""

        class Quick:
            name = "quick-one"

            async def run(self) -> None:
                return None

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(Quick())
        assert "quick-one exited prematurely" == str(info.value.exceptions[0])

    async def test_not_a_worker_is_a_configuration_error(self) -> None:
        """Something with no run() that is not callable is refused at the call."""
        with pytest.raises(tm.ConfigurationError):
            await tm.run_all_workers(42)  # type: ignore[arg-type]


class TestRunAllJobs:
    async def test_all_jobs_run_and_a_failure_cancels_nothing(self) -> None:
        """rebuy: no cancellation on failure; errors come back grouped at the end."""
        done: list[float] = []
        boom = ValueError("first")

        async def fails() -> None:
            raise boom

        async def slow() -> None:
            await asyncio.sleep(5)
            done.append(asyncio.get_running_loop().time())

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_jobs(fails, slow)
        assert [boom] == list(info.value.exceptions)
        assert [5.0] == done

    async def test_all_succeed(self) -> None:
        """Jobs that all succeed: returns None after the slowest."""
        seen: list[str] = []

        class Job:
            def __init__(self, name: str, delay: float) -> None:
                self.name, self.delay = name, delay

            async def run_once(self) -> None:
                await asyncio.sleep(self.delay)
                seen.append(self.name)

        await tm.run_all_jobs(Job("b", 2), Job("a", 1))
        assert ["a", "b"] == seen
        assert 2.0 == asyncio.get_running_loop().time()

    async def test_errors_in_completion_order(self) -> None:
        """Every job's error is in the group, in the order they failed."""
        errors = [ValueError("late"), ValueError("early")]

        async def fail_after(delay: float, error: Exception) -> None:
            await asyncio.sleep(delay)
            raise error

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_jobs(
                lambda: fail_after(2, errors[0]), lambda: fail_after(1, errors[1])
            )
        assert [errors[1], errors[0]] == list(info.value.exceptions)

    async def test_no_jobs(self) -> None:
        """Zero jobs return at once."""
        await tm.run_all_jobs()

    async def test_cancel_parent_cancels_the_jobs(self) -> None:
        """Cancelling the caller cancels every job and propagates CancelledError."""
        worker = Counter("a")
        task = asyncio.create_task(tm.run_all_jobs(worker.run))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1 == worker.cancelled
