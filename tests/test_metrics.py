from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskmill import JobGroup, Metrics, NoopMetrics, Trigger, observer, one_shot, timer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        self.calls.append(("run", kind, name, seconds))

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        self.calls.append(("error", kind, name, str(error)))

    def trigger(self, name: str, latency: float, folded: int) -> None:
        self.calls.append(("trigger", name, latency, folded))


def test_noop_metrics_satisfies_the_protocol() -> None:
    """NoopMetrics is a Metrics and accepts every call."""
    noop = NoopMetrics()
    assert isinstance(noop, Metrics)
    noop.job_run("timer", "x", 1.0)
    noop.job_error("timer", "x", ValueError())
    noop.trigger("x", 0.5, 2)
    assert repr(noop) == "NoopMetrics()"


def test_recorder_satisfies_the_protocol() -> None:
    """Any object with the three methods is a Metrics."""
    assert isinstance(Recorder(), Metrics)
    assert not isinstance(object(), Metrics)


async def test_every_job_kind_reports_exact_durations_errors_and_triggers() -> None:
    """One-shot, timer and observer runs reach the group's metrics with exact values."""
    metrics = Recorder()
    kick = Trigger()

    async def one() -> None:
        await asyncio.sleep(1.25)
        raise ValueError("one failed")

    async def tick() -> None:
        await asyncio.sleep(0.5)

    async def handle(item: int) -> None:
        await asyncio.sleep(item)

    async def source() -> AsyncIterator[int]:
        yield 2

    group = JobGroup(metrics=metrics)
    group.add(one_shot("one", one))
    group.add(timer("tick", tick, interval=10, trigger=kick))
    group.add(observer("obs", handle, source()))
    await group.start()
    await asyncio.sleep(3)
    kick.trigger()  # at 3.0 -> runs 3.0 .. 3.5
    await asyncio.sleep(8)  # the tick at 10.0 runs too
    await group.stop()
    assert metrics.calls == [
        ("run", "one_shot", "one", 1.25),
        ("error", "one_shot", "one", "one failed"),
        ("run", "observer", "obs", 2.0),
        ("trigger", "tick", 0.0, 0),
        ("run", "timer", "tick", 0.5),
        ("run", "timer", "tick", 0.5),
    ]


@pytest.mark.parametrize("kind", ["one_shot", "timer", "observer"])
def test_kind_labels_are_strings(kind: str) -> None:
    """Job kinds compare equal to their metric label strings."""
    from taskmill import JobKind

    assert JobKind(kind) == kind
