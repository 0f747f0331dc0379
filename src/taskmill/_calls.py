"""One attempt of a task on the general path: middleware, per-attempt timeout, threads.

The engine's fast path (a coroutine function without timeout or middleware) does
not come through here. Everything else does:

* middleware wraps the attempt, first added outermost (:func:`run_chain`);
* the per-attempt timeout is an :func:`asyncio.timeout` around the call, cut to
  the time left before the retry policy's total ``deadline``; when *our* timeout
  fires the attempt fails with :class:`~taskmill.TaskTimeout` (a ``TimeoutError``
  the task raised itself passes unchanged);
* sync callables run on the manager's bounded thread pool through
  ``loop.run_in_executor`` with the caller's context variables. A thread cannot be
  interrupted: on timeout or cancel the task ends at once while the thread runs
  to completion in the background (its result is discarded).
"""

# The engine's helpers and TaskHandle are friends: the handle is the engine's record.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from typing import TYPE_CHECKING, Any

from ._errors import TaskTimeout
from ._handle import HAS_RUNNER
from ._middleware import run_chain

if TYPE_CHECKING:
    from ._engine import Engine
    from ._records import Handle

__all__ = ["call_attempt"]


async def call_attempt(engine: Engine, handle: Handle) -> Any:
    """Run one attempt of ``handle`` through middleware and its timeout."""
    if engine._middleware:
        chain = tuple(engine._middleware)
        return await run_chain(chain, handle.info(), lambda: _timed(engine, handle))
    return await _timed(engine, handle)


async def _timed(engine: Engine, handle: Handle) -> Any:
    timeout = _attempt_timeout(engine, handle)
    if timeout is None:
        return await _call(engine, handle)
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await _call(engine, handle)
    except TimeoutError as error:
        if scope.expired():
            raise TaskTimeout(timeout, handle._attempts) from error
        raise


def _attempt_timeout(engine: Engine, handle: Handle) -> float | None:
    opts = handle._opts
    timeout = opts.timeout
    policy = opts.retry
    if policy is not None and policy.deadline is not None and handle._flags & HAS_RUNNER:
        first = handle._runner.state().first_started
        if first is not None:
            left = max(first + policy.deadline - engine._now(), 1e-9)
            timeout = left if timeout is None else min(timeout, left)
    return timeout


async def _call(engine: Engine, handle: Handle) -> Any:
    fn, args, kwargs = handle._fn, handle._args, handle._kwargs
    if handle._is_async:
        return await (fn(*args, **kwargs) if kwargs else fn(*args))
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    value = await loop.run_in_executor(engine._thread_pool(), call)
    if inspect.isawaitable(value):  # a sync callable that returned an awaitable
        value = await value
    return value
