"""Tasks for the `taskmill worker --dashboard-port` tests (run by the worker subprocess)."""

from __future__ import annotations

import asyncio

import taskmill as tm

registry = tm.TaskRegistry()


@registry.task(name="hold")
async def hold(seconds: float) -> str:
    """Stay running for ``seconds`` (the test stops the worker long before)."""
    await asyncio.sleep(seconds)
    return "held"
