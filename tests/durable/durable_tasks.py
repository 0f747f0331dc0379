"""Example tasks for the durable worker tests (also imported by the CLI subprocess test)."""

from __future__ import annotations

import asyncio

import taskmill as tm

registry = tm.TaskRegistry()

# What the tasks saw, for the in-process tests: (task, attempt-visible marker, loop time).
calls: list[tuple[str, float]] = []
release_event: asyncio.Event | None = None


@registry.task(name="add")
async def add(a: int, b: int) -> int:
    return a + b


@registry.task(name="add_sync")
def add_sync(a: int, b: int) -> int:
    return a + b


@registry.task(
    name="flaky",
    retry=tm.Retry(max_attempts=3, backoff=tm.Constant(5.0)),
)
async def flaky(fail_times: int) -> str:
    calls.append(("flaky", asyncio.get_running_loop().time()))
    if len([c for c in calls if c[0] == "flaky"]) <= fail_times:
        raise ValueError("not yet")
    return "ok"


@registry.task(name="always_fails", retry=tm.Retry(max_attempts=2, backoff=tm.Constant(1.0)))
async def always_fails() -> None:
    raise RuntimeError("boom")


@registry.task(name="sleeper")
async def sleeper(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@registry.task(name="slow_with_timeout", timeout=2.0)
async def slow_with_timeout() -> None:
    await asyncio.sleep(10.0)


@registry.task(name="interrupts")
async def interrupts() -> None:
    raise KeyboardInterrupt


@registry.task(name="exits")
def exits() -> None:
    raise SystemExit(3)


@registry.task(name="cancels_itself")
async def cancels_itself() -> None:
    raise asyncio.CancelledError


@registry.task(name="bad_result")
async def bad_result() -> object:
    return object()


class _App:
    """An application object carrying its registry (``taskmill worker durable_tasks:app``)."""

    registry = registry


app = _App()
