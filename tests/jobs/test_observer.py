"""Observer jobs, named after cilium hive's observer tests (seeds-spec 5.5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskmill import Health, HealthLevel, JobGroup, JobKind, JobState, observer


class Recorder:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str, float]] = []
        self.errors: list[tuple[str, str, BaseException]] = []

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        self.runs.append((kind, name, seconds))

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        self.errors.append((kind, name, error))

    def trigger(self, name: str, latency: float, folded: int) -> None:
        raise AssertionError("observers have no triggers")


def now() -> float:
    return asyncio.get_running_loop().time()


async def items(*values: int, every: float = 0.0) -> AsyncIterator[int]:
    for value in values:
        if every:
            await asyncio.sleep(every)
        yield value


class TestHiveSuite:
    async def test_three_items_three_calls_then_ends(self) -> None:
        """A 3-item source gives 3 handler calls, then the job ends completed."""
        seen: list[int] = []

        async def handle(item: int) -> None:
            seen.append(item)

        job = observer("obs", handle, items(1, 2, 3))
        group = JobGroup()
        group.add(job)
        await group.start()
        await asyncio.sleep(1)
        assert seen == [1, 2, 3]
        assert job.state is JobState.FINISHED
        assert job.health is not None
        assert job.health.message == "completed [3 processed]"
        assert group.statistics().finished == 1
        await group.stop()

    async def test_handler_error_does_not_stop_observing(self) -> None:
        """A failing handler call is recorded; later items are still handled."""
        seen: list[int] = []
        metrics = Recorder()

        async def handle(item: int) -> None:
            seen.append(item)
            if item == 2:
                raise ValueError("bad item")

        node = Health.root("o")
        levels: list[HealthLevel] = []
        node.add_listener(lambda n: levels.append(n.own_level))
        job = observer("obs", handle, items(1, 2, 3))
        await job.run(health=node, metrics=metrics)
        assert seen == [1, 2, 3]
        assert [str(e) for _, _, e in metrics.errors] == ["bad item"]
        assert len(metrics.runs) == 3
        assert HealthLevel.DEGRADED in levels
        assert job.statistics().errors == 1
        assert node.own_level is HealthLevel.OK

    async def test_blocking_handler_is_released_by_stop(self) -> None:
        """Stopping the group cancels a handler that blocks forever."""
        released: list[float] = []

        async def handle(item: int) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                released.append(now())
                raise

        job = observer("obs", handle, items(1, 2))
        group = JobGroup()
        group.add(job)
        await group.start()
        await asyncio.sleep(7)
        await group.stop()
        assert released == [7.0]
        assert job.state is JobState.STOPPED

    async def test_open_stream_stops_cleanly_and_is_closed(self) -> None:
        """An endless source stops cleanly on group stop and is closed (aclose)."""
        queue: asyncio.Queue[int] = asyncio.Queue()
        closed: list[float] = []

        async def stream() -> AsyncIterator[int]:
            try:
                while True:
                    yield await queue.get()
            finally:
                closed.append(now())

        seen: list[int] = []

        async def handle(item: int) -> None:
            seen.append(item)

        job = observer("stream", handle, stream())
        group = JobGroup()
        group.add(job)
        await group.start()
        queue.put_nowait(1)
        await asyncio.sleep(3)
        queue.put_nowait(2)
        await asyncio.sleep(3)
        await group.stop()
        assert seen == [1, 2]
        assert closed == [6.0]
        assert job.state is JobState.STOPPED

    async def test_source_error_fails_the_job(self) -> None:
        """An error raised by the source itself ends the job FAILED with that error."""

        async def broken() -> AsyncIterator[int]:
            yield 1
            raise OSError("source gone")

        async def handle(item: int) -> None:
            return None

        job = observer("broken", handle, broken())
        with pytest.raises(OSError, match="source gone"):
            await job.run()
        assert job.state is JobState.FAILED
        assert job.health is not None
        assert job.health.own_level is HealthLevel.STOPPED


class TestHealthThrottle:
    async def test_ok_reported_at_most_every_10_seconds(self) -> None:
        """An item every 1.5 s: OK with the count only once 10 s passed since the last OK."""
        reports: list[tuple[float, str]] = []
        node = Health.root("o")
        node.add_listener(lambda n: reports.append((now(), n.message)))

        async def handle(item: int) -> None:
            await asyncio.sleep(0.5)

        await observer("o", handle, items(*range(25), every=1.0)).run(health=node)
        assert reports == [
            (0.0, "observing"),
            (1.5, "ok (0.5s) [1 processed]"),
            (12.0, "ok (0.5s) [8 processed]"),
            (22.5, "ok (0.5s) [15 processed]"),
            (33.0, "ok (0.5s) [22 processed]"),
            (37.5, "completed [25 processed]"),
        ]

    def test_kind(self) -> None:
        """Observers are JobKind.OBSERVER."""

        async def handle(item: int) -> None:
            return None

        assert observer("o", handle, items()).kind is JobKind.OBSERVER
