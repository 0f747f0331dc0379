"""Start/stop/configure capabilities and the config-driven :class:`Lifecycle` (sc-bos).

* :class:`Startable`, :class:`Stoppable`, :class:`Configurable`: what an object can
  do; :func:`stop_component` and :func:`configure_component` call the method (sync
  or async) or raise :class:`~taskmill.CannotBeStopped` /
  :class:`~taskmill.CannotBeConfigured`.
* :class:`Lifecycle`: a component that is started, then (re)configured any number of
  times. Every config is parsed at the call (a parse error is the caller's), then
  applied in order by one consumer task: status ``loading``, the previous config's
  :class:`ConfigScope` is cancelled, ``apply(config, scope)`` runs, status
  ``active`` or ``error``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, TypeVarTuple, final, runtime_checkable

from ._errors import (
    AlreadyStarted,
    CannotBeConfigured,
    CannotBeStopped,
    ConfigurationError,
    NotRunning,
)

__all__ = [
    "ConfigScope",
    "Configurable",
    "Lifecycle",
    "LifecycleStatistics",
    "LifecycleStatus",
    "Startable",
    "Stoppable",
    "configure_component",
    "is_configurable",
    "is_stoppable",
    "stop_component",
]

logger = logging.getLogger(__name__)

C = TypeVar("C")
Ts = TypeVarTuple("Ts")


# ------------------------------------------------------------------ capabilities
@runtime_checkable
class Startable(Protocol):
    """Something that can be started (``start()`` may be sync or async)."""

    def start(self) -> Awaitable[None] | None:
        """Start."""


@runtime_checkable
class Stoppable(Protocol):
    """Something that can be stopped (``stop()`` may be sync or async)."""

    def stop(self) -> Awaitable[None] | None:
        """Stop."""


@runtime_checkable
class Configurable(Protocol):
    """Something that accepts raw configuration data (sync or async)."""

    def configure(self, data: bytes | str) -> Awaitable[object] | object:
        """Apply ``data``."""


async def call_maybe_async(fn: Callable[..., object], *args: object) -> object:
    """Call ``fn(*args)`` and await the result when it is awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def is_stoppable(obj: object) -> bool:
    """Return whether ``obj`` has a callable ``stop()`` (sc-bos ``Stoppable``)."""
    return callable(getattr(obj, "stop", None))


def is_configurable(obj: object) -> bool:
    """Return whether ``obj`` has a callable ``configure()`` (sc-bos ``Configurable``)."""
    return callable(getattr(obj, "configure", None))


async def stop_component(obj: object) -> None:
    """Stop ``obj`` by calling its ``stop()`` (awaited when async).

    Raises:
        CannotBeStopped: ``obj`` has no ``stop()``.
    """
    if not is_stoppable(obj):
        raise CannotBeStopped(f"{obj!r} cannot be stopped: it has no stop() method")
    await call_maybe_async(obj.stop)  # type: ignore[attr-defined]


async def configure_component(obj: object, data: bytes | str) -> object:
    """Configure ``obj`` by calling ``configure(data)`` (awaited when async).

    Returns:
        Whatever ``configure`` returned (for a :class:`Lifecycle`, the apply error
        when called with ``wait=True``; otherwise usually ``None``).

    Raises:
        CannotBeConfigured: ``obj`` has no ``configure()``.
    """
    if not is_configurable(obj):
        raise CannotBeConfigured(f"{obj!r} cannot be configured: it has no configure() method")
    return await call_maybe_async(obj.configure, data)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ scope
@final
class ConfigScope:
    """Where an applied config's background work lives until the next config or stop.

    ``apply(config, scope)`` may start tasks with :meth:`start_soon`; they are
    cancelled (and awaited) before the next config is applied and when the
    lifecycle stops. A task that fails is logged; it does not change the status.
    """

    __slots__ = ("_closed", "_name", "_tasks", "errors")

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.errors = 0
        """Background tasks of this scope that raised."""

    @property
    def closed(self) -> bool:
        """Whether the scope was cancelled (its config was replaced or stopped)."""
        return self._closed

    def start_soon(
        self, fn: Callable[[*Ts], Coroutine[Any, Any, object]], *args: *Ts, name: str | None = None
    ) -> None:
        """Start ``fn(*args)`` as a task owned by this scope (anyio's verb).

        Raises:
            NotRunning: The scope is already closed.
        """
        if self._closed:
            raise NotRunning(f"the config scope of {self._name} is closed")
        task = asyncio.create_task(fn(*args), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            logger.error("background task of %s failed", self._name, exc_info=task.exception())

    async def aclose(self) -> None:
        """Cancel every task of the scope and wait for them."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<ConfigScope of {self._name} tasks={len(self._tasks)} closed={self._closed}>"


# ------------------------------------------------------------------ lifecycle
@final
class LifecycleStatus(enum.Enum):
    """The status of a :class:`Lifecycle` (sc-bos ``task.Status``)."""

    INACTIVE = "inactive"
    """Not started, or stopped."""
    LOADING = "loading"
    """A config is being applied."""
    ACTIVE = "active"
    """Started; the last config (if any) applied cleanly."""
    ERROR = "error"
    """The last config failed to apply (nothing of it is running)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleStatistics:
    """A snapshot of a :class:`Lifecycle`.

    Attributes:
        name: The lifecycle's name.
        status: The current status.
        error: ``repr`` of the last apply error while the status is ``error``.
        pending: Configs queued and not yet applied.
        applied: Configs applied cleanly since creation.
        failed: Configs whose apply raised since creation.
        starts: Times started.
    """

    name: str
    status: LifecycleStatus
    error: str | None
    pending: int
    applied: int
    failed: int
    starts: int


def _parse_json(data: bytes | str) -> Any:
    return json.loads(data)


_Item = tuple[Any, "asyncio.Future[Exception | None]"]


@final
class Lifecycle(Generic[C]):
    """A component configured at runtime, one config at a time (sc-bos ``Lifecycle``).

    ``await start()`` makes it ``active`` before any config (as sc-bos does).
    ``await configure(data)`` parses ``data`` at once — a parse error is raised to
    the caller as :class:`~taskmill.ConfigurationError` — and queues the config.
    Configs are applied in order, none skipped: status ``loading``, the previous
    config's :class:`ConfigScope` is cancelled and awaited, ``apply(config, scope)``
    runs, and the status becomes ``active``, or ``error`` with :attr:`error` set. A
    failed apply leaves nothing running: the previous config is already torn down.

    Args:
        apply: ``async def apply(config, scope)``; long-running work goes into
            ``scope.start_soon(...)``, not into ``apply`` itself.
        parse: Turns raw data into a config (default: :func:`json.loads`).
        name: Name for logs, reprs and statistics.
        max_pending: Queued configs beyond which :meth:`configure` waits for room.
    """

    def __init__(
        self,
        apply: Callable[[C, ConfigScope], Awaitable[None]],
        *,
        parse: Callable[[bytes | str], C] = _parse_json,
        name: str = "lifecycle",
        max_pending: int = 16,
    ) -> None:
        if max_pending < 1:
            raise ConfigurationError(f"max_pending must be >= 1, got {max_pending!r}")
        self._apply = apply
        self._parse = parse
        self.name = name
        self._max_pending = max_pending
        self._status = LifecycleStatus.INACTIVE
        self._changed = asyncio.Event()
        self._error: Exception | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._scope: ConfigScope | None = None
        self._applied = self._failed = self._starts = 0

    # -- state --------------------------------------------------------------------
    @property
    def status(self) -> LifecycleStatus:
        """The current status."""
        return self._status

    @property
    def error(self) -> Exception | None:
        """The last apply error while the status is ``error``, else ``None``."""
        return self._error

    @property
    def running(self) -> bool:
        """Whether the lifecycle is started (and not stopped)."""
        return self._consumer is not None

    def _set_status(self, status: LifecycleStatus) -> None:
        if status is self._status:
            return
        self._status = status
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_state_change(
        self,
        source: LifecycleStatus,
        timeout: float | None = None,  # noqa: ASYNC109 - a bool result, not an exception
    ) -> bool:
        """Wait until the status is no longer ``source``.

        Returns at once when it already differs. Like sc-bos (and gRPC
        connectivity), a waiter sees that a change happened, not every state in
        between: read :attr:`status` afterwards.

        Returns:
            ``True`` once the status differs from ``source``, ``False`` on timeout.
        """
        try:
            async with asyncio.timeout(timeout):
                while self._status is source:
                    await self._changed.wait()
        except TimeoutError:
            return self._status is not source
        return True

    # -- start / stop ---------------------------------------------------------------
    async def start(self) -> None:
        """Start consuming configs; the status becomes ``active``.

        Raises:
            AlreadyStarted: It is already running.
        """
        if self._consumer is not None:
            raise AlreadyStarted(f"{self.name} is already started")
        self._queue = asyncio.Queue(self._max_pending)
        self._error = None
        self._starts += 1
        self._consumer = asyncio.create_task(self._consume(self._queue), name=self.name)
        self._set_status(LifecycleStatus.ACTIVE)

    async def stop(self) -> None:
        """Stop: cancel the apply in progress and the current scope, and wait for them.

        Queued configs are dropped (a ``configure(..., wait=True)`` caller gets
        :class:`~taskmill.NotRunning`). Stopping a lifecycle that is not running
        does nothing. The status becomes ``inactive``; it can be started again.
        """
        consumer, queue = self._consumer, self._queue
        if consumer is None or queue is None:
            return
        self._consumer = self._queue = None
        consumer.cancel()
        await asyncio.wait([consumer])
        await self._close_scope()
        while not queue.empty():
            _, future = queue.get_nowait()
            future.cancel()
        self._set_status(LifecycleStatus.INACTIVE)

    async def _close_scope(self) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            await scope.aclose()

    # -- configure ------------------------------------------------------------------
    async def configure(self, data: bytes | str, *, wait: bool = False) -> Exception | None:
        """Parse ``data`` and queue it to be applied after every config before it.

        Args:
            data: Raw config, given to ``parse``.
            wait: Wait until this config has been applied and return its error.

        Returns:
            With ``wait=True``, the exception ``apply`` raised (``None`` when it
            applied cleanly); the error is *returned*, not raised, because the
            configure call itself succeeded. Without ``wait``, ``None`` once queued.

        Raises:
            NotRunning: Not started, stopped meanwhile, or stopped before this config
                was applied (``wait=True``).
            ConfigurationError: ``parse`` rejected ``data``.
        """
        queue = self._queue
        if queue is None:
            raise NotRunning(f"{self.name} is not started; call start() before configure()")
        try:
            config = self._parse(data)
        except Exception as error:
            raise ConfigurationError(f"{self.name}: cannot parse config: {error}") from error
        future: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        await queue.put((config, future))
        if self._queue is not queue:  # stopped while we waited for room
            raise NotRunning(f"{self.name} stopped before the config was queued")
        if not wait:
            return None
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                raise NotRunning(f"{self.name} stopped before the config was applied") from None
            raise

    async def _consume(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            config, future = await queue.get()
            try:
                error = await self._apply_one(config)
            except asyncio.CancelledError:
                future.cancel()
                raise
            if not future.done():
                future.set_result(error)

    async def _apply_one(self, config: C) -> Exception | None:
        self._set_status(LifecycleStatus.LOADING)
        await self._close_scope()
        scope = self._scope = ConfigScope(self.name)
        try:
            await self._apply(config, scope)
        except Exception as error:  # recorded as the status, returned to a waiting caller
            logger.exception("%s: applying config failed", self.name)
            self._failed += 1
            self._error = error
            await self._close_scope()
            self._set_status(LifecycleStatus.ERROR)
            return error
        self._applied += 1
        self._error = None
        self._set_status(LifecycleStatus.ACTIVE)
        return None

    # -- observability ----------------------------------------------------------------
    def statistics(self) -> LifecycleStatistics:
        """Return a snapshot of this lifecycle."""
        return LifecycleStatistics(
            name=self.name,
            status=self._status,
            error=repr(self._error) if self._error is not None else None,
            pending=self._queue.qsize() if self._queue is not None else 0,
            applied=self._applied,
            failed=self._failed,
            starts=self._starts,
        )

    def __repr__(self) -> str:
        return f"<Lifecycle {self.name!r} status={self._status.value} applied={self._applied}>"
