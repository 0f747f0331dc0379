"""Result streams (one result per terminal transition, bounded, drop policies) and retention."""

from __future__ import annotations

import asyncio
import gc

import pytest

from taskmill import (
    ConfigurationError,
    Constant,
    Retention,
    Retry,
    TaskCancelled,
    TaskFailed,
    TaskManager,
    TaskNotFound,
    TaskResult,
    TaskStatus,
)
from taskmill.testing import wait_all_tasks_blocked


async def boom() -> None:
    raise ValueError("boom")


class TestResultStream:
    async def test_every_terminal_outcome_produces_one_result(self) -> None:
        """go-worker intent: results for success, failure, timeout and cancel."""
        async with TaskManager(concurrency=4, timeout=5) as mgr:
            stream = mgr.results()
            ok = await mgr.submit(asyncio.sleep, 1, "value")
            failed = await mgr.submit(boom)
            timed_out = await mgr.submit(asyncio.sleep, 60)
            cancelled = await mgr.with_options(delay=10).submit(asyncio.sleep, 0)
            cancelled.cancel()
            await mgr.join()
        results = [r async for r in stream]
        by_id = {r.id: r for r in results}
        assert 4 == len(results)
        assert TaskStatus.SUCCEEDED == by_id[ok.id].status
        assert "value" == by_id[ok.id].value
        assert by_id[ok.id].ok
        assert TaskStatus.FAILED == by_id[failed.id].status
        assert isinstance(by_id[failed.id].error, ValueError)
        assert TaskStatus.TIMED_OUT == by_id[timed_out.id].status
        assert TaskStatus.CANCELLED == by_id[cancelled.id].status
        assert by_id[cancelled.id].started_at is None
        assert "value" == by_id[ok.id].unwrap()
        with pytest.raises(TaskFailed):
            by_id[failed.id].unwrap()
        with pytest.raises(TaskCancelled):
            by_id[cancelled.id].unwrap()

    async def test_retries_produce_no_extra_results(self) -> None:
        """One result per terminal transition, not per attempt."""
        mgr = TaskManager(retry=Retry(max_attempts=3, backoff=Constant(1)))
        async with mgr, mgr.results() as stream:
            _ = await mgr.submit(boom)
            result = await anext(stream)
        assert TaskStatus.FAILED == result.status
        assert 3 == result.attempts

    async def test_results_arrive_in_completion_order_while_running(self) -> None:
        """A subscriber sees results as they happen."""
        seen: list[tuple[object, float]] = []
        async with TaskManager(concurrency=3) as mgr:
            stream = mgr.results()

            async def read() -> None:
                async for result in stream:
                    seen.append((result.value, asyncio.get_running_loop().time()))  # noqa: PERF401

            reader = asyncio.create_task(read())
            for seconds in (3, 1, 2):
                _ = await mgr.submit(asyncio.sleep, seconds, seconds)
        await reader
        assert [(1, 1.0), (2, 2.0), (3, 3.0)] == seen

    async def test_drop_oldest_keeps_the_latest(self) -> None:
        """A full drop_oldest buffer discards the oldest result and counts it."""
        async with TaskManager(concurrency=10) as mgr:
            stream = mgr.results(buffer=3, policy="drop_oldest")
            for i in range(10):
                _ = await mgr.submit(asyncio.sleep, i / 10, i)
            await mgr.join()
            assert 7 == mgr.statistics().results_dropped
        assert [7, 8, 9] == [r.value async for r in stream]
        assert 7 == stream.statistics().dropped
        assert 3 == stream.statistics().delivered

    async def test_drop_newest_keeps_the_first(self) -> None:
        """A full drop_newest buffer discards arriving results."""
        async with TaskManager(concurrency=10) as mgr:
            stream = mgr.results(buffer=3, policy="drop_newest")
            for i in range(10):
                _ = await mgr.submit(asyncio.sleep, i / 10, i)
        assert [0, 1, 2] == [r.value async for r in stream]

    async def test_closed_stream_unsubscribes(self) -> None:
        """`aclose()` ends iteration and stops buffering."""
        async with TaskManager() as mgr:
            async with mgr.results() as stream:
                assert 1 == mgr.statistics().subscribers
            assert 0 == mgr.statistics().subscribers
            await (await mgr.submit(asyncio.sleep, 0)).wait()
            assert [] == [r async for r in stream]
            assert stream.statistics().closed

    async def test_results_after_stop_is_empty(self) -> None:
        """Subscribing to a stopped manager gives an ended stream."""
        mgr = TaskManager()
        await mgr.start()
        await mgr.stop()
        assert [] == [r async for r in mgr.results()]

    async def test_bad_arguments(self) -> None:
        """Buffer and policy are validated."""
        mgr = TaskManager()
        with pytest.raises(ConfigurationError):
            mgr.results(buffer=0)
        with pytest.raises(ConfigurationError):
            mgr.results(policy="block")  # type: ignore[arg-type]

    async def test_result_repr_and_types(self) -> None:
        """Results are frozen dataclasses with aware datetimes."""
        async with TaskManager() as mgr, mgr.results() as stream:
            _ = await mgr.submit(asyncio.sleep, 2)
            result = await anext(stream)
        assert isinstance(result, TaskResult)
        assert result.started_at is not None
        assert 2.0 == (result.finished_at - result.started_at).total_seconds()
        with pytest.raises(AttributeError):
            result.value = 1  # type: ignore[misc]


class TestRetention:
    async def test_count_bound_prunes_oldest(self) -> None:
        """Only the newest `max_tasks` finished records stay visible to get()."""
        async with TaskManager(retention=Retention(max_tasks=3, ttl=None)) as mgr:
            handles = [await mgr.submit(asyncio.sleep, 0, i) for i in range(6)]
            await mgr.join()
            for handle in handles[:3]:
                with pytest.raises(TaskNotFound):
                    _ = mgr.get(handle.id)
            assert handles[3:] == [mgr.get(h.id) for h in handles[3:]]
            assert 3 == mgr.statistics().retained
            assert 0 == await handles[0]  # a handle you hold keeps its result

    async def test_ttl_prunes_old_records(self) -> None:
        """Finished records disappear `ttl` seconds after they finished."""
        async with TaskManager(retention=Retention(max_tasks=None, ttl=60)) as mgr:
            old = await mgr.submit(asyncio.sleep, 0)
            await old
            await asyncio.sleep(61)
            young = await mgr.submit(asyncio.sleep, 0)
            await young
            with pytest.raises(TaskNotFound):
                _ = mgr.get(old.id)
            assert young is mgr.get(young.id)
            await asyncio.sleep(100)
            await (await mgr.submit(asyncio.sleep, 0)).wait()
            assert 1 == mgr.statistics().records

    async def test_live_tasks_are_never_pruned(self) -> None:
        """Retention only forgets finished tasks."""
        async with TaskManager(retention=Retention(max_tasks=0, ttl=0)) as mgr:
            slow = await mgr.submit(asyncio.sleep, 10)
            for _ in range(5):
                await (await mgr.submit(asyncio.sleep, 0)).wait()
            assert slow is mgr.get(slow.id)
            await slow
            with pytest.raises(TaskNotFound):
                _ = mgr.get(slow.id)

    async def test_a_week_of_tasks_does_not_grow(self) -> None:
        """100,000 tasks over a virtual week: records, queues and live objects stay bounded."""
        async with TaskManager(concurrency=50, retention=Retention(max_tasks=1000)) as mgr:
            submitter = mgr.with_options(name="tick")
            objects: list[int] = []
            for batch in range(100):
                for _ in range(1000):
                    _ = await submitter.submit(asyncio.sleep, 0)
                await mgr.join()
                await asyncio.sleep(6048)  # 100 batches = one week
                if batch in (9, 99):
                    gc.collect()
                    objects.append(len(gc.get_objects()))
            stats = mgr.statistics()
            assert stats.records <= 1000
            assert stats.retained <= 1000
            assert 100_000 == stats.succeeded
            assert 0 == len(mgr._ready)  # white-box: queues are empty too
            assert 0 == len(mgr._timers)
        assert objects[1] - objects[0] < 500  # 90,000 tasks later: no per-task residue


class TestStatistics:
    async def test_snapshot_counts_everything(self) -> None:
        """Statistics show each queue and outcome."""
        async with TaskManager(concurrency=1, retry=Retry(backoff=Constant(50))) as mgr:
            _ = await mgr.submit(asyncio.sleep, 10)
            await wait_all_tasks_blocked()
            _ = await mgr.submit(asyncio.sleep, 1)
            _ = await mgr.with_options(delay=5).submit(asyncio.sleep, 1)
            _ = await mgr.with_options(priority=-1).submit(boom)
            stats = mgr.statistics()
            assert (1, 2, 1, 0) == (stats.running, stats.queued, stats.scheduled, stats.retrying)
            await asyncio.sleep(10)
            await wait_all_tasks_blocked()
            stats = mgr.statistics()
            assert 1 == stats.retrying
            assert 4 == stats.submitted
            assert 1 == stats.concurrency
            assert 10_000 == stats.queue_size
            assert "running" == stats.state
        final = mgr.statistics()
        assert (3, 0, 1, 0) == (final.succeeded, final.failed, final.cancelled, final.timed_out)
        assert 4 == final.finished
        assert "stopped" == final.state
