"""Hypothesis properties of the pure parts and of Intermittent's reference counting."""

from __future__ import annotations

import asyncio
import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill.testing import run

# Centisecond resolution: sub-nanosecond sleeps next to 1e-9 ones hang the virtual loop
# (a testing/_loop.py snapping bug, reported), which is not what this property is about.
durations = st.integers(min_value=0, max_value=5000).map(lambda n: n / 100)


@given(
    initial=st.floats(min_value=0.0, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
    min_delay=st.floats(min_value=1e-3, max_value=10.0),
    streak=st.integers(min_value=0, max_value=10**6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_restart_delay_is_bounded(
    initial: float, extra: float, min_delay: float, streak: int, seed: int
) -> None:
    """A restart never waits less than min_delay nor more than the cap, at any streak."""
    cap = initial + extra
    policy = tm.RestartPolicy(
        backoff=tm.Exponential(initial, max=cap, jitter="proportional"), min_delay=min_delay
    )
    delay = policy.restart_delay(streak, random.Random(seed), previous=0.0)
    assert math.isfinite(delay)
    assert min_delay <= delay <= max(min_delay, cap)


@given(
    initial=st.floats(min_value=1e-3, max_value=100.0),
    scale=st.floats(min_value=1.0, max_value=10.0),
    capped=st.booleans(),
    errors=st.integers(min_value=1, max_value=3000),
)
def test_poll_backoff_grows_monotonically_within_bounds(
    initial: float, scale: float, capped: bool, errors: int
) -> None:
    """Error delays start at initial, never shrink, never pass max, never become inf."""
    backoff = tm.PollBackoff(initial=initial, max=initial * 8 if capped else None, scale=scale)
    delay = 0.0
    seen: list[float] = []
    for n in range(1, errors + 1):
        delay = backoff.next(n, delay)
        seen.append(delay)
    assert initial == seen[0]
    assert all(a <= b for a, b in itertools.pairwise(seen))
    assert all(math.isfinite(d) for d in seen)
    if capped:
        assert max(seen) <= initial * 8


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(durations, durations), min_size=1, max_size=8))
def test_intermittent_runs_exactly_while_someone_is_attached(
    attachers: list[tuple[float, float]],
) -> None:
    """Starts and stops alternate, and every attachment lies inside one running period."""
    events: list[tuple[str, float]] = []
    inside: list[tuple[float, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def start() -> tm.StopFn:
            events.append(("start", loop.time()))
            return lambda: events.append(("stop", loop.time()))

        op = tm.Intermittent(start)

        async def attacher(delay: float, hold: float) -> None:
            await asyncio.sleep(delay)
            async with op.attach():
                entered = loop.time()
                assert op.running
                await asyncio.sleep(hold)
                inside.append((entered, loop.time()))

        await asyncio.gather(*(attacher(d, h) for d, h in attachers))
        assert (False, 0) == (op.running, op.listeners)

    run(main)
    kinds = [kind for kind, _ in events]
    assert ["start", "stop"] * (len(kinds) // 2) == kinds
    periods = list(zip(events[::2], events[1::2], strict=True))
    for entered, left in inside:
        assert any(s <= entered and left <= e for (_, s), (_, e) in periods)
