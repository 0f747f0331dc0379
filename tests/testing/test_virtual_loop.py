from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmill import ConfigurationError, _clock
from taskmill.testing import VirtualTimeLoop, run, wait_all_tasks_blocked


async def test_one_hour_sleep_is_instant_and_exact() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    real_start = _clock.real_monotonic()
    await asyncio.sleep(3600)
    assert loop.time() == 3600.0
    assert _clock.real_monotonic() - real_start < 0.5


async def test_many_small_sleeps_land_on_exact_timestamps() -> None:
    loop = asyncio.get_running_loop()
    for i in range(1, 301):
        await asyncio.sleep(0.1)
        assert loop.time() == pytest.approx(i * 0.1, abs=1e-9)
    start = loop.time()
    await asyncio.sleep(0.3)
    assert loop.time() == start + 0.3


async def test_call_at_deadline_is_hit_exactly() -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.1)
    fired: list[float] = []
    when = loop.time() + 1.7
    loop.call_at(when, lambda: fired.append(loop.time()))
    await asyncio.sleep(5)
    assert fired == [when]


async def test_timeout_deadline_is_exact() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2.5):
            await asyncio.sleep(100)
    assert loop.time() == 2.5


async def test_to_thread_works_and_holds_the_clock() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()

    def blocking() -> str:
        release.wait(5)
        return "done"

    async with asyncio.timeout(60):
        task = asyncio.create_task(asyncio.to_thread(blocking))
        await wait_all_tasks_blocked()
        loop.call_soon_threadsafe(release.set)  # thread may now finish
        release.set()
        assert await task == "done"
    assert loop.time() == 0.0


async def test_wall_clock_follows_virtual_time() -> None:
    before = _clock.now()
    await asyncio.sleep(86400)
    after = _clock.now()
    assert after - before == dt.timedelta(days=1)
    assert after.tzinfo is dt.UTC


async def test_wait_all_tasks_blocked_orders_steps_without_sleeping() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    event = asyncio.Event()

    async def waiter() -> None:
        seen.append("waiting")
        await event.wait()
        seen.append("woken")

    task = asyncio.create_task(waiter())
    await wait_all_tasks_blocked()
    assert seen == ["waiting"]
    event.set()
    await task
    assert seen == ["waiting", "woken"]
    assert loop.time() == 0.0


@pytest.fixture
async def ticking() -> object:
    await asyncio.sleep(10)
    yield asyncio.get_running_loop().time()
    await asyncio.sleep(1)


async def test_async_fixture_shares_the_test_loop(ticking: float) -> None:
    assert ticking == 10.0
    assert asyncio.get_running_loop().time() == 10.0


@pytest.mark.virtual_time(start=1000.0)
async def test_marker_sets_the_start() -> None:
    assert asyncio.get_running_loop().time() == 1000.0


@pytest.mark.real_time
async def test_real_time_marker_uses_a_standard_loop() -> None:
    assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)


def test_run_helper_runs_on_virtual_time() -> None:
    async def main() -> float:
        await asyncio.sleep(7200)
        return asyncio.get_running_loop().time()

    assert run(main, start=5.0) == 7205.0


def test_negative_threshold_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="autojump_threshold"):
        VirtualTimeLoop(autojump_threshold=-1)


async def test_advance_moves_the_clock_and_fires_due_timers() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    fired = asyncio.Event()
    loop.call_later(10, fired.set)
    loop.advance(10)
    await fired.wait()
    assert loop.time() == 10.0
    with pytest.raises(ConfigurationError):
        loop.advance(-1)


async def test_wait_all_tasks_blocked_needs_the_virtual_loop_message() -> None:
    """On the virtual loop it returns immediately when nothing else runs."""
    await wait_all_tasks_blocked()


@pytest.mark.real_time
async def test_wait_all_tasks_blocked_refuses_real_time() -> None:
    with pytest.raises(ConfigurationError, match="virtual-time loop"):
        await wait_all_tasks_blocked()


async def test_tiny_sleeps_never_pin_the_clock() -> None:
    """Regression: a fired deadline within the snap tolerance kept the clock from moving."""
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(asyncio.gather(asyncio.sleep(1e-300), asyncio.sleep(1e-9)), 1)
    assert loop.time() == 1e-9


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_gathered_sleeps_end_at_the_longest(delays: list[float]) -> None:
    """Property: concurrent sleeps finish at the longest deadline.

    asyncio runs a timer once the clock is within its resolution (1 ns) of the
    deadline, so the clock may stop up to 1 ns short — never beyond the deadline.
    """

    async def main() -> float:
        await asyncio.gather(*(asyncio.sleep(d) for d in delays))
        return asyncio.get_running_loop().time()

    end = run(main)
    assert max(delays) - 1e-9 <= end <= max(delays)
