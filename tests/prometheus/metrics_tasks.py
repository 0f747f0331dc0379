"""Tasks for the task-metrics tests (also run by the `taskmill worker` subprocesses)."""

from __future__ import annotations

import asyncio

import taskmill as tm

registry = tm.TaskRegistry()
_flaky_calls: dict[str, int] = {}


@registry.task(name="ok")
async def ok(seconds: float = 0.0) -> str:
    await asyncio.sleep(seconds)
    return "done"


@registry.task(name="flaky", retry=tm.Retry(max_attempts=2, backoff=tm.Constant(1.0)))
async def flaky(key: str) -> str:
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] == 1:
        raise ValueError("first attempt fails")
    return "second time lucky"


@registry.task(name="boom")
async def boom() -> None:
    raise RuntimeError("always fails")


@registry.task(name="slow", timeout=2.0)
async def slow() -> None:
    await asyncio.sleep(60.0)
