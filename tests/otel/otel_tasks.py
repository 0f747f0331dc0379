"""Tasks for the OpenTelemetry-over-Redis tests (also run by the traced worker process)."""

from __future__ import annotations

import taskmill as tm

registry = tm.TaskRegistry()
_flaky_calls: dict[str, int] = {}


@registry.task(name="double")
async def double(x: int) -> int:
    return 2 * x


@registry.task(name="flaky", retry=tm.Retry(max_attempts=3, backoff=tm.Constant(0.05)))
async def flaky(key: str) -> str:
    """Fail the first call for ``key`` (per process), succeed the second."""
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] == 1:
        raise ValueError(f"first attempt of {key} fails")
    return "ok"


@registry.task(name="broken")
async def broken() -> None:
    raise RuntimeError("always fails")
