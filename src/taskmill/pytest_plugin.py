"""pytest plugin: run ``async def`` tests and fixtures on virtual time.

Installed with taskmill (entry point ``pytest11``), so it is active wherever
taskmill is installed. Every ``async def`` test and function-scoped async fixture of
a test runs on one :class:`taskmill.testing.VirtualTimeLoop` per test.

Markers:
    ``@pytest.mark.real_time``: run on a standard asyncio loop instead.
    ``@pytest.mark.virtual_time(start=0.0, wall_start=None, autojump_threshold=0.0)``:
    configure the virtual loop.

Tests marked ``asyncio`` (pytest-asyncio) or ``anyio`` are left to those plugins.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine, Generator
from typing import Any, cast

import pytest

from .testing import VirtualTimeLoop

__all__ = [
    "pytest_configure",
    "pytest_fixture_setup",
    "pytest_pyfunc_call",
    "pytest_runtest_teardown",
]

_RUNNER = pytest.StashKey[asyncio.Runner]()
_FOREIGN_MARKERS = ("asyncio", "anyio")


def pytest_configure(config: pytest.Config) -> None:
    """Register taskmill's markers."""
    config.addinivalue_line(
        "markers", "real_time: run this async test on a standard asyncio loop (no virtual time)"
    )
    config.addinivalue_line(
        "markers",
        "virtual_time(start=0.0, wall_start=None, autojump_threshold=0.0): "
        "configure the virtual-time loop this async test runs on",
    )


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def _handled_elsewhere(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) is not None for name in _FOREIGN_MARKERS)


def _runner_for(item: pytest.Item) -> asyncio.Runner:
    runner = item.stash.get(_RUNNER, None)
    if runner is None:
        factory: Callable[[], asyncio.AbstractEventLoop] | None
        if item.get_closest_marker("real_time") is not None:
            factory = None
        else:
            marker = item.get_closest_marker("virtual_time")
            options: dict[str, Any] = dict(marker.kwargs) if marker else {}

            def factory() -> asyncio.AbstractEventLoop:
                return VirtualTimeLoop(**options)

        runner = asyncio.Runner(loop_factory=factory)
        item.stash[_RUNNER] = runner
    return runner


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a coroutine test function on the test's loop."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func) or _handled_elsewhere(pyfuncitem):
        return None
    names = inspect.signature(func).parameters
    arguments = {name: pyfuncitem.funcargs[name] for name in names if name in pyfuncitem.funcargs}
    _runner_for(pyfuncitem).run(func(**arguments))
    return True


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Run async fixtures (coroutines and async generators) on the test's loop."""
    original = fixturedef.func
    if not _is_async(original) or _handled_elsewhere(request.node):
        return (yield)
    if fixturedef.scope != "function":
        raise pytest.UsageError(
            f"async fixture {fixturedef.argname!r} has scope {fixturedef.scope!r}; "
            "taskmill runs async fixtures per test: use scope='function'"
        )
    runner = _runner_for(request.node)

    def run_sync(*args: Any, **kwargs: Any) -> Any:
        if inspect.isasyncgenfunction(original):
            agen = original(*args, **kwargs)
            value = runner.run(agen.__anext__())

            def finalize() -> None:
                try:
                    runner.run(agen.__anext__())
                except StopAsyncIteration:
                    return
                raise RuntimeError(f"async fixture {fixturedef.argname!r} yielded twice")

            request.addfinalizer(finalize)
            return value
        coroutine = cast("Coroutine[Any, Any, Any]", original(*args, **kwargs))
        return runner.run(coroutine)

    fixturedef.func = run_sync  # type: ignore[misc]
    try:
        return (yield)
    finally:
        fixturedef.func = original  # type: ignore[misc]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Close the test's loop after every fixture has been torn down."""
    try:
        yield
    finally:
        runner = item.stash.get(_RUNNER, None)
        if runner is not None:
            del item.stash[_RUNNER]
            runner.close()
