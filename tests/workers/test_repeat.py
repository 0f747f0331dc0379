"""repeat(): rebuy Repeat on the shared drift-free ticker, at exact virtual timestamps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import taskmill as tm


def recorder(
    starts: list[float], durations: Callable[[int], float] = lambda n: 0.0
) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(durations(len(starts)))

    return job


async def run_for(worker: tm.Worker, seconds: float) -> None:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class TestRepeat:
    async def test_first_run_after_one_interval(self) -> None:
        """rebuy: without options the first run is one full interval after start."""
        starts: list[float] = []
        await run_for(tm.repeat(10, recorder(starts)), 35)
        assert [10.0, 20.0, 30.0] == starts

    async def test_immediate_keeps_the_grid(self) -> None:
        """immediate=True runs at once; run 2 stays on the grid (deviation from rebuy)."""
        starts: list[float] = []
        await run_for(tm.repeat(10, recorder(starts, lambda n: 4.0), immediate=True), 25)
        assert [0.0, 10.0, 20.0] == starts

    async def test_overrun_is_followed_at_once_and_ticks_dropped(self) -> None:
        """A run overrunning the next ticks is followed at once; the ticks are dropped."""
        starts: list[float] = []
        worker = tm.repeat(10, recorder(starts, lambda n: 25.0 if n == 1 else 0.0))
        await run_for(worker, 55)
        assert [10.0, 35.0, 40.0, 50.0] == starts
        assert 1 == worker.statistics().missed

    async def test_no_drift_over_hundreds_of_runs(self) -> None:
        """500 runs of 0.1 s land exactly on k * 0.1 (computed, not accumulated)."""
        starts: list[float] = []
        await run_for(tm.repeat(0.1, recorder(starts, lambda n: 0.03)), 50.05)
        assert [k * 0.1 for k in range(1, 501)] == starts

    async def test_job_error_ends_the_worker(self) -> None:
        """rebuy: any job error ends the Repeat worker with that error."""
        boom = ValueError("third run fails")
        starts: list[float] = []

        async def job() -> None:
            starts.append(asyncio.get_running_loop().time())
            if len(starts) == 3:
                raise boom

        with pytest.raises(ValueError, match="third run fails"):
            await tm.repeat(5, job).run()
        assert [5.0, 10.0, 15.0] == starts

    async def test_job_object_with_run_once(self) -> None:
        """A RunOnce object is accepted and names the worker."""

        class Fetch:
            name = "fetch"
            runs = 0

            async def run_once(self) -> None:
                self.runs += 1

        job = Fetch()
        worker = tm.repeat(1, job)
        await run_for(worker, 3.5)
        assert 3 == job.runs
        stats = worker.statistics()
        assert ("fetch", 3, 3.0, False) == (
            stats.name,
            stats.runs,
            stats.last_started,
            stats.running,
        )
        assert "<Repeat 'fetch' interval=1 runs=3>" == repr(worker)

    @pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
    def test_invalid_interval_is_refused_at_the_call(self, interval: float) -> None:
        """A non-positive or non-finite interval is a ConfigurationError from repeat()."""
        with pytest.raises(tm.ConfigurationError):
            tm.repeat(interval, recorder([]))

    async def test_restarted_repeat_starts_a_new_grid(self) -> None:
        """Running the worker again (e.g. under supervise) starts a fresh grid."""
        starts: list[float] = []
        worker = tm.repeat(10, recorder(starts))
        await run_for(worker, 15)
        await asyncio.sleep(2)
        await run_for(worker, 15)
        assert [10.0, 27.0] == starts
        assert 2 == worker.statistics().runs
