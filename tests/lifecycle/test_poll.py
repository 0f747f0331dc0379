"""poll(): sc-bos Poll / PollErr on the shared ticker, with the TotalErrors bug fixed."""

from __future__ import annotations

import asyncio

import pytest

import taskmill as tm


class Action:
    """Records start times; each run lasts / fails as told by its 1-based number."""

    def __init__(
        self, durations: dict[int, float] | None = None, failing: set[int] | None = None
    ) -> None:
        self.starts: list[float] = []
        self.durations = durations or {}
        self.failing = failing or set()

    async def __call__(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        n = len(self.starts)
        await asyncio.sleep(self.durations.get(n, 0.0))
        if n in self.failing:
            raise OSError(f"poll {n} failed")


async def attached_for(it: tm.Intermittent, seconds: float) -> None:
    async with it.attach():
        await asyncio.sleep(seconds)


class TestSchedule:
    async def test_first_run_immediate_then_start_to_start(self) -> None:
        """The first poll runs at once; then every interval, start to start."""
        action = Action({1: 3.0, 2: 3.0, 3: 3.0})
        await attached_for(tm.poll(action, interval=10), 25)
        assert [0.0, 10.0, 20.0] == action.starts

    async def test_overrun_is_followed_at_once_and_ticks_dropped(self) -> None:
        """A poll overrunning the next ticks is followed at once; the ticks are dropped."""
        action = Action({1: 25.0})
        await attached_for(tm.poll(action, interval=10), 35)
        assert [0.0, 25.0, 30.0] == action.starts

    async def test_no_drift_over_hundreds_of_polls(self) -> None:
        """300 polls of 0.5 s land exactly on k * 0.5."""
        action = Action()
        await attached_for(tm.poll(action, interval=0.5), 149.9)
        assert [k * 0.5 for k in range(300)] == action.starts

    async def test_detach_stops_and_cancels_the_poll_in_flight(self) -> None:
        """The last detach cancels a running poll and waits for it; no poll follows."""
        action = Action({1: 100.0})
        it = tm.poll(action, interval=10)
        await attached_for(it, 5)
        await asyncio.sleep(100)
        assert [0.0] == action.starts
        assert not it.running

    async def test_stop_on_a_tick_boundary_runs_no_extra_poll(self) -> None:
        """SC-606: a stop that coincides with a tick never starts one more poll."""
        action = Action()
        await attached_for(tm.poll(action, interval=10), 10)
        await asyncio.sleep(50)
        assert [0.0] == action.starts

    async def test_each_start_is_a_fresh_loop(self) -> None:
        """Attaching again restarts polling at once with fresh counters."""
        states: list[tm.PollState] = []
        action = Action()

        def on_attempt(state: tm.PollState, error: Exception | None) -> bool:
            states.append(state)
            return False

        it = tm.poll(action, interval=10, on_attempt=on_attempt)
        await attached_for(it, 5)
        await attached_for(it, 5)
        assert [0.0, 5.0] == action.starts
        assert [1, 1] == [s.total_successes for s in states]


class TestErrorBackoff:
    async def test_backoff_after_errors_then_back_to_the_interval(self) -> None:
        """First error -> initial, then x scale capped at max; success -> interval."""
        action = Action(failing={1, 2, 3, 4})
        backoff = tm.PollBackoff(initial=1.0, max=4.0, scale=2.0)
        await attached_for(tm.poll(action, interval=10, error_backoff=backoff), 35)
        # 1 s, 2 s, 4 s after each error's end; then 4 s again on the 4 s grid; then 10 s.
        assert [0.0, 1.0, 3.0, 7.0, 11.0, 21.0, 31.0] == action.starts

    async def test_without_backoff_errors_keep_the_interval(self) -> None:
        """No error_backoff: a failing poll still runs every interval."""
        action = Action(failing={1, 2})
        await attached_for(tm.poll(action, interval=10), 25)
        assert [0.0, 10.0, 20.0] == action.starts

    async def test_poll_state_counts_every_error(self) -> None:
        """PollState counts total errors (sc-bos never increments TotalErrors)."""
        seen: list[tuple[tm.PollState, str | None]] = []

        def on_attempt(state: tm.PollState, error: Exception | None) -> bool:
            seen.append((state, None if error is None else str(error)))
            return False

        action = Action(failing={2, 3})
        backoff = tm.PollBackoff(initial=1.0)
        await attached_for(
            tm.poll(action, interval=10, error_backoff=backoff, on_attempt=on_attempt), 14
        )
        assert [
            (
                tm.PollState(
                    total_errors=0,
                    total_successes=1,
                    errors_since_success=0,
                    successes_since_error=1,
                    next_delay=10.0,
                ),
                None,
            ),
            (
                tm.PollState(
                    total_errors=1,
                    total_successes=1,
                    errors_since_success=1,
                    successes_since_error=0,
                    next_delay=1.0,
                ),
                "poll 2 failed",
            ),
            (
                tm.PollState(
                    total_errors=2,
                    total_successes=1,
                    errors_since_success=2,
                    successes_since_error=0,
                    next_delay=2.0,
                ),
                "poll 3 failed",
            ),
            (
                tm.PollState(
                    total_errors=2,
                    total_successes=2,
                    errors_since_success=0,
                    successes_since_error=1,
                    next_delay=10.0,
                ),
                None,
            ),
        ] == seen

    async def test_callback_can_abort_until_restart(self) -> None:
        """on_attempt returning True stops polling; the next start polls again."""
        action = Action(failing={1})
        it = tm.poll(action, interval=1, on_attempt=lambda state, error: error is not None)
        await attached_for(it, 10)
        assert [0.0] == action.starts
        await attached_for(it, 2.5)
        assert [0.0, 10.0, 11.0, 12.0] == action.starts

    async def test_callback_error_ends_the_poll(self, caplog: pytest.LogCaptureFixture) -> None:
        """A callback that raises ends the loop; the error is logged, detach still works."""

        def broken(state: tm.PollState, error: Exception | None) -> bool:
            raise ValueError("bad callback")

        action = Action()
        await attached_for(tm.poll(action, interval=1, on_attempt=broken, name="p"), 5)
        assert [0.0] == action.starts
        assert "poll p stopped by an error" in caplog.text


class TestValidation:
    @pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf")])
    def test_interval_must_be_positive(self, interval: float) -> None:
        """interval <= 0 is a ConfigurationError (sc-bos panics)."""
        with pytest.raises(tm.ConfigurationError):
            tm.poll(Action(), interval=interval)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"initial": 0.0},
            {"initial": -1.0},
            {"initial": 1.0, "scale": 0.5},
            {"initial": 2.0, "max": 1.0},
            {"initial": 1.0, "max": float("inf")},
        ],
    )
    def test_backoff_parameters(self, kwargs: dict[str, float]) -> None:
        """initial > 0, scale >= 1, max >= initial (sc-bos panics on these)."""
        with pytest.raises(tm.ConfigurationError):
            tm.PollBackoff(**kwargs)

    def test_uncapped_backoff_stays_finite(self) -> None:
        """Without max the delay grows to a finite ceiling, never inf."""
        backoff = tm.PollBackoff(initial=1.0, scale=10.0)
        delay = 1.0
        for n in range(2, 2000):
            delay = backoff.next(n, delay)
        assert delay == tm.PollBackoff(initial=1.0, max=None).next(2, 1e300)
        assert delay < float("inf")

    def test_name_defaults_to_the_action(self) -> None:
        """The Intermittent is named after the action."""

        async def refresh() -> None:
            return None

        assert "TestValidation.test_name_defaults_to_the_action.<locals>.refresh" == (
            tm.poll(refresh).name
        )
