from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import ConfigurationError
from taskmill._ticker import Ticker, TickerStatistics, sleep_until, wait_tick


class TestTickerConstruction:
    @pytest.mark.parametrize("interval", [0, -1, -0.001, math.inf, math.nan])
    def test_invalid_interval_raises(self, interval: float) -> None:
        """An interval that is not a finite number > 0 is refused at construction."""
        with pytest.raises(ConfigurationError, match="interval"):
            Ticker(interval, start=0.0)

    @pytest.mark.parametrize("start", [math.inf, -math.inf, math.nan])
    def test_invalid_start_raises(self, start: float) -> None:
        """A non-finite grid origin is refused."""
        with pytest.raises(ConfigurationError, match="start"):
            Ticker(1.0, start=start)

    def test_first_deadline_is_one_interval_after_start(self) -> None:
        """By default the first run waits one full interval."""
        assert Ticker(2.5, start=10.0).next_deadline() == 12.5

    def test_immediate_first_deadline_is_start(self) -> None:
        """immediate=True makes the grid origin the first deadline."""
        assert Ticker(2.5, start=10.0, immediate=True).next_deadline() == 10.0

    def test_repr_and_statistics_show_state(self) -> None:
        """repr and statistics() expose the ticker's state."""
        t = Ticker(1.0, start=0.0)
        t.tick(3.5)
        assert "next_deadline=4" in repr(t)
        assert "missed=2" in repr(t)
        expected = TickerStatistics(interval=1.0, start=0.0, next_deadline=4.0, ticks=1, missed=2)
        assert expected == t.statistics()


class TestTickerTable:
    @pytest.mark.parametrize(
        ("immediate", "runs", "expected_consumed", "expected_next", "expected_missed"),
        [
            # on time: each run starts exactly on its deadline
            (False, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 4.0, 0),
            (True, [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], 3.0, 0),
            # a run that starts late inside its slot drops nothing
            (False, [1.9], [1.0], 2.0, 0),
            # starting exactly on the next grid point drops that grid point
            (False, [2.0], [1.0], 3.0, 1),
            # overrun by 2.5 intervals: two grid points dropped, grid unchanged
            (False, [1.0, 4.5], [1.0, 2.0], 5.0, 2),
            # a timer early by clock resolution counts as on the deadline
            (False, [1.0 - 1e-12], [1.0], 2.0, 0),
        ],
    )
    def test_tick_sequences(
        self,
        immediate: bool,
        runs: list[float],
        expected_consumed: list[float],
        expected_next: float,
        expected_missed: int,
    ) -> None:
        """tick() consumes deadlines on the grid and drops overrun grid points."""
        t = Ticker(1.0, start=0.0, immediate=immediate)
        consumed = [t.tick(now) for now in runs]
        assert expected_consumed == consumed
        assert expected_next == t.next_deadline()
        assert expected_missed == t.missed
        assert len(runs) == t.ticks

    def test_due(self) -> None:
        """due() is true from the deadline on."""
        t = Ticker(1.0, start=0.0)
        assert not t.due(0.999)
        assert t.due(1.0)
        assert t.due(7.0)

    def test_500_ticks_of_a_tenth_land_on_the_multiplied_grid(self) -> None:
        """500 ticks of 0.1 s are exactly start + k*interval, not an accumulated sum."""
        start, interval = 1000.3, 0.1
        t = Ticker(interval, start=start)
        accumulated = start
        differs = 0
        for k in range(1, 501):
            deadline = t.next_deadline()
            accumulated += interval
            differs += accumulated != deadline
            assert start + k * interval == deadline
            assert deadline == t.tick(deadline)
        assert t.missed == 0
        assert differs > 0  # the accumulated sum really would have drifted

    def test_no_drift_after_overruns(self) -> None:
        """Overruns drop grid points but never shift the grid."""
        t = Ticker(0.1, start=0.0)
        t.tick(0.1)
        t.tick(0.75)  # the run for 0.2 starts at 0.75: 0.3, 0.4, 0.5, 0.6, 0.7 dropped
        assert t.next_deadline() == 8 * 0.1
        for k in range(8, 208):
            assert k * 0.1 == t.tick(t.next_deadline())
        assert t.missed == 5


class TestTickerProperties:
    @given(
        interval=st.floats(min_value=1e-3, max_value=1e4),
        start=st.floats(min_value=-1e6, max_value=1e6),
        immediate=st.booleans(),
        lateness=st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=60),
    )
    def test_deadlines_increase_on_grid_and_pass_now(
        self, interval: float, start: float, immediate: bool, lateness: list[float]
    ) -> None:
        """Deadlines strictly increase, stay on the grid, and the next one is > now."""
        t = Ticker(interval, start=start, immediate=immediate)
        previous = -math.inf
        for late in lateness:
            deadline = t.next_deadline()
            assert deadline > previous
            index = round((deadline - start) / interval)
            assert start + index * interval == deadline
            now = deadline + late * interval
            missed_before = t.missed
            assert deadline == t.tick(now)
            assert t.next_deadline() > now
            # exactly the grid points strictly between the consumed one and the next were dropped
            next_index = round((t.next_deadline() - start) / interval)
            assert next_index - index - 1 == t.missed - missed_before
            previous = deadline


class TestWaitTick:
    async def test_runs_land_exactly_on_grid_for_500_ticks(self) -> None:
        """wait_tick returns at exactly start + k*interval on virtual time."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.3)
        start = loop.time()
        t = Ticker(0.1, start=start)
        for k in range(1, 501):
            consumed = await wait_tick(t)
            assert start + k * 0.1 == consumed
            assert consumed == loop.time()
        assert t.missed == 0

    async def test_immediate_first_run_does_not_wait(self) -> None:
        """An immediate ticker's first wait returns at the start time."""
        loop = asyncio.get_running_loop()
        t = Ticker(5.0, start=loop.time(), immediate=True)
        assert await wait_tick(t) == 0.0
        assert loop.time() == 0.0
        assert await wait_tick(t) == 5.0
        assert loop.time() == 5.0

    async def test_overrun_run_is_followed_at_once_and_ticks_dropped(self) -> None:
        """A run past the next grid point is followed immediately; skipped ticks are dropped."""
        loop = asyncio.get_running_loop()
        t = Ticker(1.0, start=0.0)
        starts: list[float] = []
        durations = [0.2, 2.5, 0.2, 0.2]  # the second run (2.0 -> 4.5) overruns 3.0 and 4.0
        for duration in durations:
            await wait_tick(t)
            starts.append(loop.time())
            await asyncio.sleep(duration)
        assert starts == [1.0, 2.0, 4.5, 5.0]
        # the run for 3.0 starts late, at once at 4.5; 4.0 is dropped, not queued
        assert t.missed == 1
        assert t.next_deadline() == 6.0

    async def test_cancelled_wait_leaves_ticker_untouched(self) -> None:
        """Cancelling a wait consumes nothing and propagates CancelledError."""
        t = Ticker(10.0, start=0.0)
        task = asyncio.create_task(wait_tick(t))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert t.next_deadline() == 10.0
        assert t.ticks == 0

    async def test_sleep_until_past_deadline_only_yields(self) -> None:
        """sleep_until a past deadline returns without moving the clock."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2)
        await sleep_until(1.0)
        assert loop.time() == 2.0
