"""Submitting tasks: handles, results, sync callables, options, bounded intake."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import threading
from collections.abc import AsyncIterator

import pytest

from taskmill import (
    ConfigurationError,
    Constant,
    NotRunning,
    Retry,
    StateError,
    TaskFailed,
    TaskManager,
    TaskNotFound,
    TaskOptions,
    TaskStatus,
    WouldBlock,
)
from taskmill.testing import wait_all_tasks_blocked


@pytest.fixture
async def mgr() -> AsyncIterator[TaskManager]:
    async with TaskManager(concurrency=4) as manager:
        yield manager


async def add(a: int, b: int = 0) -> int:
    await asyncio.sleep(1)
    return a + b


class TestHandles:
    async def test_await_returns_the_value(self, mgr: TaskManager) -> None:
        """`await handle` gives what the task returned."""
        handle = await mgr.submit(add, 2, b=3)
        assert 5 == await handle
        assert TaskStatus.SUCCEEDED == handle.status
        assert 1 == handle.attempts

    async def test_timestamps_follow_the_loop_clock(self, mgr: TaskManager) -> None:
        """Submitted, started and finished are exact on virtual time (and aware UTC)."""
        await asyncio.sleep(10)
        handle = await mgr.submit(add, 1)
        await handle
        assert (10.0, 10.0, 11.0) == handle.loop_times()
        assert handle.submitted_at.tzinfo is dt.UTC
        assert handle.finished_at is not None
        assert handle.started_at is not None
        assert dt.timedelta(seconds=1) == handle.finished_at - handle.started_at

    async def test_ids_are_unique_and_resolvable(self, mgr: TaskManager) -> None:
        """Every handle has its own id and `get(id)` returns that handle."""
        handles = [await mgr.submit(add, i) for i in range(50)]
        assert 50 == len({h.id for h in handles})
        assert all(mgr.get(h.id) is h for h in handles)
        assert sorted(h.id for h in handles) == [h.id for h in handles]

    async def test_unknown_id_raises_task_not_found(self, mgr: TaskManager) -> None:
        """go-worker intent: get by id of an unknown task -> not found."""
        with pytest.raises(TaskNotFound):
            _ = mgr.get("nope")
        handle = await mgr.submit(add, 1)
        with pytest.raises(TaskNotFound):
            _ = mgr.get(handle.id + "0")
        with pytest.raises(TaskNotFound):
            mgr.cancel("nope")

    async def test_tasks_lists_in_submission_order_and_filters(self, mgr: TaskManager) -> None:
        """`tasks()` lists every known task; a status filter narrows it."""
        handles = [await mgr.submit(add, i) for i in range(6)]
        await wait_all_tasks_blocked()
        assert handles == mgr.tasks()
        assert handles[:4] == mgr.tasks(TaskStatus.RUNNING)
        assert handles[4:] == mgr.tasks([TaskStatus.QUEUED])

    async def test_result_before_finish_is_a_state_error(self, mgr: TaskManager) -> None:
        """`handle.result()` refuses to answer early."""
        handle = await mgr.submit(add, 1)
        with pytest.raises(StateError):
            handle.result()
        assert not handle.done()
        assert TaskStatus.SUCCEEDED == await handle.wait()
        assert 1 == handle.result()

    async def test_failure_raises_task_failed_with_cause(self, mgr: TaskManager) -> None:
        """A failing task raises TaskFailed whose cause is the original error."""

        async def boom() -> None:
            raise ValueError("bad")

        handle = await mgr.submit(boom)
        with pytest.raises(TaskFailed) as caught:
            await handle
        assert isinstance(caught.value.__cause__, ValueError)
        assert "ValueError" == caught.value.error_type
        assert "bad" == caught.value.message
        assert 1 == len(caught.value.attempts)
        assert TaskStatus.FAILED == handle.status
        assert isinstance(handle.error, ValueError)

    async def test_many_awaiters_and_cancelled_awaiter(self, mgr: TaskManager) -> None:
        """Cancelling one awaiter leaves the task and other awaiters alone."""
        handle = await mgr.submit(add, 7)
        first = asyncio.create_task(asyncio.wait_for(asyncio.shield(handle.wait()), 0.5))
        second = asyncio.ensure_future(handle)
        loser = asyncio.ensure_future(handle)
        await wait_all_tasks_blocked()
        loser.cancel()
        assert 7 == await second
        assert TaskStatus.SUCCEEDED == handle.status
        with pytest.raises(TimeoutError):
            await first
        with pytest.raises(asyncio.CancelledError):
            await loser

    async def test_repr_shows_state(self, mgr: TaskManager) -> None:
        """Reprs say what is going on."""
        handle = await mgr.with_options(name="adder").submit(add, 1)
        assert "adder" in repr(handle)
        assert "queued" in repr(handle)
        assert "running" in repr(mgr)


class TestSyncCallables:
    @pytest.mark.real_time
    async def test_sync_function_runs_in_a_thread(self) -> None:
        """Sync callables run on the manager's thread pool, not on the loop thread."""
        loop_thread = threading.get_ident()

        def where(x: int) -> tuple[int, int]:
            return threading.get_ident(), x * 2

        async with TaskManager(max_threads=2) as mgr:
            thread, value = await (await mgr.submit(where, 21))
        assert 42 == value
        assert loop_thread != thread

    async def test_sync_function_on_virtual_time(self) -> None:
        """Threads work on the virtual loop too; context variables are carried over."""
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
        var.set("from-submitter")

        def read() -> str:
            return var.get()

        async with TaskManager() as mgr:
            assert "from-submitter" == await (await mgr.submit(read))

    async def test_partials_methods_and_async_callables(self) -> None:
        """Any callable works: partials, bound methods, objects with async __call__."""

        class Doubler:
            async def __call__(self, x: int) -> int:
                return 2 * x

            async def triple(self, x: int) -> int:
                return 3 * x

        async with TaskManager() as mgr:
            assert 10 == await (await mgr.submit(Doubler(), 5))
            assert 15 == await (await mgr.submit(Doubler().triple, 5))
            assert 8 == await (await mgr.submit(functools.partial(add, 3), 5))
            assert 4 == await (await mgr.submit(lambda: add(2, 2)))  # sync returning awaitable

    async def test_not_callable_is_rejected_at_submit(self, mgr: TaskManager) -> None:
        """Bad input fails at the call that passed it."""
        with pytest.raises(ConfigurationError):
            await mgr.submit(42)  # type: ignore[call-overload]


class TestLifecycleErrors:
    async def test_submit_before_start_raises_not_running(self) -> None:
        """A manager that has not started refuses work."""
        mgr = TaskManager()
        with pytest.raises(NotRunning):
            _ = await mgr.submit(add, 1)
        with pytest.raises(NotRunning):
            _ = mgr.submit_nowait(add, 1)

    async def test_submit_after_stop_raises_not_running(self) -> None:
        """marionette: Queue after Stop -> ErrTaskManagerStopped."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.stop()
        with pytest.raises(NotRunning):
            _ = await mgr.submit(add, 1)
        with pytest.raises(NotRunning):
            _ = await mgr.with_options(delay=1).submit(add, 1)

    async def test_stopped_manager_cannot_restart(self) -> None:
        """Stopped is final."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.start()
        await mgr.stop()
        with pytest.raises(StateError):
            await mgr.start()


class TestBoundedIntake:
    async def test_submit_waits_for_room(self) -> None:
        """With the queue full, submit waits until a worker takes a task."""
        loop = asyncio.get_running_loop()
        async with TaskManager(concurrency=1, queue_size=2) as mgr:
            handles = [await mgr.submit(add, i) for i in range(3)]  # 1 running + 2 queued
            await wait_all_tasks_blocked()
            fourth = await mgr.submit(add, 3)  # waits until the first finishes at t=1
            assert 1.0 == loop.time()
            assert TaskStatus.RUNNING == handles[1].status
            assert [0, 1, 2, 3] == [await h for h in [*handles, fourth]]

    async def test_submit_nowait_raises_would_block(self) -> None:
        """`submit_nowait` on a full queue raises WouldBlock and accepts nothing."""
        async with TaskManager(concurrency=1, queue_size=1) as mgr:
            _ = mgr.submit_nowait(add, 1)
            await wait_all_tasks_blocked()
            _ = mgr.submit_nowait(add, 2)
            with pytest.raises(WouldBlock):
                _ = mgr.submit_nowait(add, 3)
            assert 2 == mgr.statistics().submitted

    async def test_submit_within_gives_up_after_timeout(self) -> None:
        """The timeout variant waits at most `timeout` seconds, then WouldBlock."""
        loop = asyncio.get_running_loop()
        async with TaskManager(concurrency=1, queue_size=1) as mgr:
            _ = await mgr.submit(add, 1)
            await wait_all_tasks_blocked()
            _ = await mgr.submit(add, 2)
            with pytest.raises(WouldBlock):
                _ = await mgr.submit_within(0.25, add, 3)
            assert 0.25 == loop.time()
            handle = await mgr.submit_within(5, add, 4)  # room at t=1
            assert 1.0 == loop.time()
            assert 4 == await handle
            with pytest.raises(ConfigurationError):
                _ = await mgr.submit_within(-1, add, 5)

    async def test_waiting_submitter_sees_stop(self) -> None:
        """A submitter waiting for room gets NotRunning when the manager stops."""
        mgr = TaskManager(concurrency=1, queue_size=1)
        await mgr.start()
        _ = await mgr.submit(add, 1)
        await wait_all_tasks_blocked()
        _ = await mgr.submit(add, 2)
        waiter = asyncio.create_task(mgr.submit(add, 3))
        await wait_all_tasks_blocked()
        await mgr.stop(graceful=False)
        with pytest.raises(NotRunning):
            _ = await waiter

    async def test_scheduled_tasks_take_no_queue_slot(self) -> None:
        """Delayed tasks are accepted even when the ready queue is full."""
        async with TaskManager(concurrency=1, queue_size=1) as mgr:
            _ = await mgr.submit(add, 1)
            await wait_all_tasks_blocked()
            _ = await mgr.submit(add, 2)
            later = mgr.with_options(delay=60)
            handles = [later.submit_nowait(add, i) for i in range(5)]
            assert 5 == mgr.statistics().scheduled
            assert [0, 1, 2, 3, 4] == [await h for h in handles]


class TestOptions:
    async def test_options_object_and_keywords_merge(self, mgr: TaskManager) -> None:
        """Keywords override a TaskOptions; None falls back to the manager."""
        submitter = mgr.with_options(TaskOptions(name="a", priority=3), priority=5)
        assert "a" == submitter.options.name
        assert 5 == submitter.options.priority
        handle = await submitter.submit(add, 1)
        assert 5 == handle.priority
        assert "a" == handle.name
        assert "add" == (await mgr.submit(add, 1)).name

    @pytest.mark.parametrize(
        "options",
        [
            {"priority": "high"},
            {"timeout": 0},
            {"timeout": -1},
            {"delay": -1},
            {"delay": float("nan")},
            {"at": dt.datetime(2030, 1, 1)},  # noqa: DTZ001  # the naive datetime under test
            {"delay": 1, "at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
            {"name": ""},
            {"unique_key": ""},
            {"rate_key": "unconfigured"},
            {"concurrency_key": "unconfigured"},
        ],
    )
    async def test_invalid_options_are_rejected(
        self, mgr: TaskManager, options: dict[str, object]
    ) -> None:
        """Bad options raise ConfigurationError at with_options."""
        with pytest.raises(ConfigurationError):
            mgr.with_options(**options)  # type: ignore[arg-type]

    async def test_retry_never_switches_off_a_default_policy(self) -> None:
        """`retry=Retry.never()` opts one task out of the manager's retries."""
        calls = 0

        async def flaky() -> None:
            nonlocal calls
            calls += 1
            raise ValueError

        async with TaskManager(retry=Retry(max_attempts=3, backoff=_zero())) as mgr:
            await (await mgr.submit(flaky)).wait()
            assert 3 == calls
            await (await mgr.with_options(retry=Retry.never()).submit(flaky)).wait()
            assert 4 == calls


class TestUniqueKeys:
    async def test_second_submit_returns_the_existing_handle(self, mgr: TaskManager) -> None:
        """A live unique key deduplicates; once finished the key is free again."""
        once = mgr.with_options(unique_key="sync-users")
        first = await once.submit(add, 1)
        second = await once.submit(add, 2)
        assert first is second
        assert 1 == await second
        third = await once.submit(add, 3)
        assert third is not first
        assert 3 == await third

    async def test_concurrent_submits_make_exactly_one_task(self, mgr: TaskManager) -> None:
        """RELIABILITY T11 in memory: 1,000 concurrent submits, one key -> one task."""
        once = mgr.with_options(unique_key="k", delay=5)
        handles = await asyncio.gather(*(once.submit(add, i) for i in range(1000)))
        assert 1 == len({h.id for h in handles})
        assert 1 == mgr.statistics().submitted


def _zero() -> Constant:
    return Constant(0)
