"""Static typing of the TaskManager API: checked by ``mypy --strict``, smoke-run by pytest.

Positive cases use ``assert_type``. Negative cases sit under ``if TYPE_CHECKING:`` (never
executed) with a ``# type: ignore[code]``: mypy's ``warn_unused_ignores`` (part of
``--strict``) fails the build if one of them stops being a type error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_type

import taskmill as tm


async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode() * (retries + 1)


def parse(text: str) -> int:
    return len(text)


async def _check_submit(mgr: tm.TaskManager) -> None:
    handle = await mgr.submit(fetch, "a", retries=1)
    _ = assert_type(handle, tm.TaskHandle[bytes])
    assert_type(await handle, bytes)
    assert_type(handle.result(), bytes)
    sync = assert_type(await mgr.submit(parse, "abc"), tm.TaskHandle[int])
    nowait = assert_type(mgr.submit_nowait(fetch, "a"), tm.TaskHandle[bytes])
    within = assert_type(await mgr.submit_within(1.0, parse, "x"), tm.TaskHandle[int])
    found = assert_type(mgr.get("id"), tm.TaskHandle[Any])
    later = assert_type(await mgr.submit_after(1.0, fetch, "a"), tm.TaskHandle[bytes])
    assert_type(await later, bytes)
    assert_type([await sync, await nowait, await within, await found], list[Any])
    assert_type(await handle.wait(), tm.TaskStatus)
    if TYPE_CHECKING:
        _ = await mgr.submit(fetch, 1)  # type: ignore[call-overload]
        _ = await mgr.submit(fetch, "a", retries="x")  # type: ignore[arg-type]
        _ = await mgr.submit(fetch, "a", nope=1)  # type: ignore[call-arg]
        _ = await mgr.submit(parse)  # type: ignore[call-overload]
        _ = mgr.submit_nowait(parse, b"bytes")  # type: ignore[call-overload]
        _ = await mgr.submit_within(1.0, fetch)  # type: ignore[call-overload]
        _ = await mgr.submit_at(1.0, parse, "x")  # type: ignore[call-overload]
        # per-task options never mix with the task's own keyword arguments:
        _ = await mgr.submit(fetch, "a", priority=1)  # type: ignore[call-arg]
        # a handle is awaitable: dropping it unawaited is flagged (unused-awaitable)
        await mgr.submit(fetch, "a")  # type: ignore[unused-awaitable]


async def _check_options(mgr: tm.TaskManager) -> None:
    fast = mgr.with_options(priority=1, name="fetch", timeout=2.0)
    assert_type(fast, tm.TaskSubmitter)
    fetched = assert_type(await fast.submit(fetch, "a"), tm.TaskHandle[bytes])
    assert_type(await fetched, bytes)
    assert_type(fast.options, tm.TaskOptions)
    assert_type(mgr.with_options(tm.TaskOptions(priority=2)), tm.TaskSubmitter)
    if TYPE_CHECKING:
        _ = await fast.submit(fetch, 1)  # type: ignore[call-overload]
        mgr.with_options(priority="high")  # type: ignore[arg-type]
        mgr.with_options(retries=3)  # type: ignore[call-arg]


async def _check_results(mgr: tm.TaskManager) -> None:
    async with mgr.results(buffer=10, policy="drop_newest") as stream:
        async for result in stream:
            assert_type(result, tm.TaskResult)
            assert_type(result.status, tm.TaskStatus)
    assert_type(mgr.statistics(), tm.ManagerStatistics)
    assert_type(await mgr.stop(), tm.StopReport)
    if TYPE_CHECKING:
        mgr.results(policy="block")  # type: ignore[arg-type]


async def _check_middleware(mgr: tm.TaskManager) -> None:
    async def timing(task: tm.TaskInfo, call_next: tm.CallNext) -> Any:
        return await call_next()

    mgr.use(timing)
    unsubscribe = mgr.on("finished", lambda info: info.id)
    unsubscribe()
    if TYPE_CHECKING:

        def not_middleware(task: tm.TaskInfo) -> None: ...

        mgr.use(not_middleware)  # type: ignore[arg-type]


def test_module_imports() -> None:
    """The checks above are for mypy; at runtime they only need to import."""
    assert callable(_check_submit)
