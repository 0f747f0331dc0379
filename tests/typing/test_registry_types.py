"""Static typing of the registry: a decorated task keeps its exact signature.

Checked by ``mypy --strict``; negative cases sit under ``if TYPE_CHECKING:`` with a
``# type: ignore[code]`` that ``warn_unused_ignores`` turns into a failure if the
call ever stops being a type error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, assert_type

import taskmill as tm

registry = tm.TaskRegistry()


@registry.task
async def bare(x: int, *, flag: bool = False) -> str:
    return str(x) if flag else ""


@registry.task(name="typing.with_options", priority=1, queue="q", timeout=2.0)
def with_options(text: str) -> list[int]:
    return [len(text)]


async def _check_calls() -> None:
    assert_type(await bare(1, flag=True), str)
    pending = assert_type(bare(1), Coroutine[Any, Any, str])
    assert_type(await pending, str)
    assert_type(with_options("ab"), list[int])
    assert_type(registry.get("typing.with_options"), tm.TaskSpec)
    assert_type(registry.name_of(bare), str)
    assert_type(tm.TaskRegistry().register(print, name="p"), tm.TaskSpec)
    assert_type(registry.statistics(), tm.RegistryStatistics)
    if TYPE_CHECKING:
        await bare("1")  # type: ignore[arg-type]
        await bare(1, flag="yes")  # type: ignore[arg-type]
        with_options(3)  # type: ignore[arg-type]
        with_options("a", "b")  # type: ignore[call-arg]
        registry.task(name=3)  # type: ignore[call-overload]
        registry.task(retry=3)  # type: ignore[call-overload]


def test_checks_run() -> None:
    """The positive checks also run without error."""
    asyncio.run(_check_calls())
