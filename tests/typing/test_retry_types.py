"""Static typing of the retry API: checked by ``mypy --strict``, run by pytest as a smoke test.

Positive cases use ``assert_type``. Negative cases sit under ``if TYPE_CHECKING:`` (never
executed) with a ``# type: ignore[code]``: mypy's ``warn_unused_ignores`` (part of
``--strict``) fails the build if one of them stops being a type error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, assert_type

import taskmill as tm


async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode() * (retries + 1)


def parse(text: str) -> int:
    return len(text)


policy = tm.Retry(max_attempts=2, backoff=tm.Constant(0.0))


async def _check_run() -> None:
    assert_type(await tm.run(fetch, "a"), bytes)
    assert_type(await tm.run(policy, fetch, "a", retries=1), bytes)
    assert_type(await policy.run(fetch, "a"), bytes)
    pending = assert_type(policy.run(fetch, "a"), Coroutine[Any, Any, bytes])
    assert_type(await pending, bytes)
    assert_type(policy.run_sync(parse, "abc"), int)
    if TYPE_CHECKING:
        await tm.run(fetch, 1)  # type: ignore[call-overload]
        await tm.run(fetch, "a", retries="x")  # type: ignore[arg-type]
        await tm.run(policy, fetch)  # type: ignore[call-overload]
        await tm.run(fetch, "a", nope=1)  # type: ignore[call-arg]
        await policy.run(parse, "a")  # type: ignore[arg-type]
        policy.run_sync(parse, 3)  # type: ignore[arg-type]


@tm.retry
async def bare(x: int) -> str:
    return str(x)


@tm.retry(policy)
async def with_policy(x: int) -> str:
    return str(x)


@tm.retry(max_attempts=5, timeout=1.0)
async def with_fields(x: int, *, flag: bool = False) -> list[int]:
    return [x] if flag else []


@tm.retry(max_attempts=2)
def sync_fn(x: int) -> float:
    return x / 2


async def _check_decorators() -> None:
    assert_type(await bare(1), str)
    assert_type(await with_policy(1), str)
    assert_type(await with_fields(1, flag=True), list[int])
    assert_type(sync_fn(2), float)
    assert_type(tm.retry(max_attempts=2), tm.RetryDecorator)
    if TYPE_CHECKING:
        await bare("x")  # type: ignore[arg-type]
        await with_fields(1, flag=1.5)  # type: ignore[arg-type]
        sync_fn("x")  # type: ignore[arg-type]
        tm.retry(max_attempts="3")  # type: ignore[call-overload]
        tm.retry(bogus=True)  # type: ignore[call-overload]


def _check_policy_and_runner() -> None:
    assert_type(tm.Retry.from_hive(2, backoff=tm.Constant(1.0)), tm.Retry)
    assert_type(tm.Retry.from_sc_bos(None), tm.Retry)
    runner = tm.Runner(policy, rng=random.Random(0))
    step = runner.step(ValueError(), started=0.0, finished=1.0)
    assert_type(step, tm.Step)
    assert_type(step.delay, float)
    assert_type(runner.history, tuple[tm.Attempt, ...])
    assert_type(runner.state(), tm.RetryState)
    assert_type(runner.exhausted(), tm.RetriesExhausted)
    assert_type(tm.Exponential(1.0, jitter="full").delay(1, random.Random()), float)
    backoff: tm.Backoff = tm.Exponential(1.0)
    backoff = tm.Constant(1.0)
    assert_type(backoff.delay(2, random.Random()), float)
    if TYPE_CHECKING:
        tm.Exponential(1.0, jitter="sometimes")  # type: ignore[arg-type]
        tm.Retry(max_attempts="3")  # type: ignore[arg-type]
        tm.Retry.from_marionette(1, max_attempts=3)  # type: ignore[call-arg]
        runner.step(None, started=0.0)  # type: ignore[call-arg]


def test_checks_run() -> None:
    """The positive checks also run (and the module imports) without error."""
    asyncio.run(_check_run())
    asyncio.run(_check_decorators())
    _check_policy_and_runner()
