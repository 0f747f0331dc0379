"""The typed submit methods shared by :class:`~taskmill.TaskManager` and :class:`TaskSubmitter`.

``submit(fn, *args, **kwargs)`` is typed with ``ParamSpec``: passing arguments
``fn`` does not accept is a type error, and the handle is ``TaskHandle[T]`` where
``T`` is what ``fn`` returns (awaited, for async callables). Per-task options live
on a :class:`TaskSubmitter` from ``mgr.with_options(...)``, so they never collide
with the task's own keyword arguments.
"""

# The submit mixin drives the engine it belongs to.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import datetime as _dt
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final, overload

from . import _clock
from ._errors import ConfigurationError, WouldBlock
from ._handle import TaskHandle

if TYPE_CHECKING:
    from ._engine import Engine
    from ._taskoptions import Resolved, TaskOptions

__all__ = ["SubmitMethods", "TaskSubmitter"]

P = ParamSpec("P")
T = TypeVar("T")


class SubmitMethods:
    """``submit`` / ``submit_nowait`` / ``submit_within`` over an engine and resolved options."""

    __slots__ = ()

    _submit_engine: Engine
    _submit_options: Resolved

    @overload
    async def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    async def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    async def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Submit ``fn(*args, **kwargs)``, waiting for room in the queue if it is full.

        Async callables run on the event loop; sync callables run on the manager's
        bounded thread pool. Delayed and scheduled tasks never wait for room here.

        Returns:
            The task's handle (the *existing* one for a live ``unique_key``).

        Raises:
            NotRunning: The manager is not running (not started, or stopped while
                this call waited).
            ConfigurationError: ``fn`` is not callable.
        """
        engine = self._submit_engine
        handle = engine._try_accept(fn, args, kwargs, self._submit_options)
        while handle is None:
            await engine._wait_for_space()
            handle = engine._try_accept(fn, args, kwargs, self._submit_options)
        return handle

    @overload
    def submit_nowait(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    def submit_nowait(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    def submit_nowait(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> TaskHandle[Any]:
        """Submit without waiting (must be called on the manager's event loop thread).

        Returns:
            The task's handle.

        Raises:
            WouldBlock: The queue is full.
            NotRunning: The manager is not running.
            ConfigurationError: ``fn`` is not callable.
        """
        handle = self._submit_engine._try_accept(fn, args, kwargs, self._submit_options)
        if handle is None:
            raise WouldBlock("the task queue is full")
        return handle

    @overload
    async def submit_within(
        self,
        timeout: float,  # noqa: ASYNC109  # raises WouldBlock, not TimeoutError
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> TaskHandle[T]: ...

    @overload
    async def submit_within(
        self,
        timeout: float,  # noqa: ASYNC109  # raises WouldBlock, not TimeoutError
        fn: Callable[P, T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> TaskHandle[T]: ...

    async def submit_within(
        self,
        timeout: float,  # noqa: ASYNC109  # raises WouldBlock, not TimeoutError
        fn: Callable[..., Any],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> TaskHandle[Any]:
        """Like :meth:`submit`, but give up if no room frees up within ``timeout`` seconds.

        Returns:
            The task's handle.

        Raises:
            WouldBlock: The queue stayed full for ``timeout`` seconds.
            NotRunning: The manager is not running.
            ConfigurationError: ``timeout`` is negative or NaN, or ``fn`` is not callable.
        """
        limit: object = timeout
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 0:
            raise ConfigurationError(f"timeout must be a number >= 0, got {timeout!r}")
        engine = self._submit_engine
        handle = engine._try_accept(fn, args, kwargs, self._submit_options)
        if handle is not None:
            return handle
        try:
            async with asyncio.timeout(None if math.isinf(timeout) else timeout):
                while handle is None:
                    await engine._wait_for_space()
                    handle = engine._try_accept(fn, args, kwargs, self._submit_options)
        except TimeoutError:
            raise WouldBlock(f"the task queue stayed full for {timeout:g}s") from None
        return handle

    @overload
    async def submit_after(
        self, delay: float, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    async def submit_after(
        self, delay: float, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    async def submit_after(
        self, delay: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> TaskHandle[Any]:
        """Submit a task that runs ``delay`` seconds from now (marionette's ``Delay``).

        Cheaper than ``with_options(delay=...)`` per task when every task has its own
        time. Scheduled tasks never wait for queue room.

        Returns:
            The task's handle (``scheduled``).

        Raises:
            NotRunning: The manager is not running.
            ConfigurationError: ``delay`` is negative or not finite, or ``fn`` is not callable.
        """
        seconds: object = delay
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ConfigurationError(f"delay must be a number of seconds, got {delay!r}")
        if not 0 <= seconds < math.inf:
            raise ConfigurationError(f"delay must be finite and >= 0, got {delay!r}")
        engine = self._submit_engine
        when = engine._now() + seconds if engine._loop is not None else 0.0
        return engine._accept_scheduled(fn, args, kwargs, self._submit_options, when)

    @overload
    async def submit_at(
        self, at: _dt.datetime, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    async def submit_at(
        self, at: _dt.datetime, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    async def submit_at(
        self, at: _dt.datetime, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> TaskHandle[Any]:
        """Submit a task that runs at the aware datetime ``at`` (marionette's ``Schedule``).

        A time in the past runs as soon as possible. Scheduled tasks never wait for
        queue room.

        Returns:
            The task's handle (``scheduled``).

        Raises:
            NotRunning: The manager is not running.
            ConfigurationError: ``at`` is not an aware datetime, or ``fn`` is not callable.
        """
        when: object = at
        if not isinstance(when, _dt.datetime) or when.tzinfo is None or when.utcoffset() is None:
            raise ConfigurationError(f"at must be an aware datetime, got {at!r}")
        engine = self._submit_engine
        due = (
            engine._now() + (when.timestamp() - _clock.wall_time())
            if engine._loop is not None
            else 0.0
        )
        return engine._accept_scheduled(fn, args, kwargs, self._submit_options, due)


@final
class TaskSubmitter(SubmitMethods):
    """Submits tasks with a fixed set of options; made by :meth:`TaskManager.with_options`.

    Cheap to create and reusable: ``fast = mgr.with_options(priority=0)`` once,
    then ``await fast.submit(fn, x)`` many times.
    """

    __slots__ = ("_submit_engine", "_submit_options")

    def __init__(self, engine: Engine, options: Resolved) -> None:
        self._submit_engine = engine
        self._submit_options = options

    @property
    def options(self) -> TaskOptions:
        """The options (merged over the manager's defaults) every task gets."""
        return self._submit_options.options

    def __repr__(self) -> str:
        return f"<TaskSubmitter {self.options!r}>"
