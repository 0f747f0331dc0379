"""A reference-counted background operation (sc-bos ``Intermittent``).

The first attacher starts the operation, the last one to leave stops it, and it can
start again later. Starts and stops are serialised by one lock, so a second attacher
arriving during a slow start waits for it; a start error reaches only the attacher
that triggered the start (the count is not incremented, the next attach tries
again). Unlike sc-bos, stopping is awaited: when the last ``async with
attach()`` block exits, the operation has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeAlias, final

from ._errors import ConfigurationError
from ._lifecycle import call_maybe_async

__all__ = [
    "Intermittent",
    "IntermittentStatistics",
    "StartFn",
    "StopFn",
    "idle_keep_alive",
]

logger = logging.getLogger(__name__)

StopFn: TypeAlias = Callable[[], Awaitable[None] | None]
"""Stops a started operation; sync or async."""

StartFn: TypeAlias = Callable[[], Awaitable[StopFn | None]]
"""Starts the operation and returns how to stop it (``None``: nothing to stop)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IntermittentStatistics:
    """A snapshot of an :class:`Intermittent`.

    Attributes:
        name: Its name.
        running: Whether the operation is started.
        listeners: Attachers currently holding it running.
        starts: Successful starts so far.
        start_failures: Starts that raised.
        stops: Stops so far.
    """

    name: str
    running: bool
    listeners: int
    starts: int
    start_failures: int
    stops: int


def _noop() -> None:
    return None


async def _until(until: asyncio.Event | Awaitable[object]) -> None:
    if isinstance(until, asyncio.Event):
        await until.wait()
    else:
        await until


@final
class Intermittent:
    """A background operation that runs while anyone is attached to it.

    Args:
        start: ``async def start() -> stop | None``. Whatever it starts must outlive
            the call (create tasks; don't run the work inside ``start``).
        name: Name for logs, reprs and statistics.

    Example:
        >>> async def start():
        ...     task = asyncio.create_task(asyncio.sleep(3600))
        ...     return task.cancel
        >>> feed = Intermittent(start, name="feed")
        >>> # async with feed.attach(): ...   runs while at least one block is inside
    """

    __slots__ = (
        "_lock",
        "_start",
        "_start_failures",
        "_starts",
        "_stop",
        "_stops",
        "_watchers",
        "listeners",
        "name",
    )

    def __init__(self, start: StartFn, *, name: str = "intermittent") -> None:
        self._start = start
        self.name = name
        self._lock = asyncio.Lock()
        self._stop: StopFn | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self.listeners = 0
        """Attachers currently holding the operation running."""
        self._starts = self._start_failures = self._stops = 0

    def _attached(self) -> bool:
        return self.listeners > 0

    @property
    def running(self) -> bool:
        """Whether the operation is started."""
        return self._stop is not None

    async def _acquire(self) -> None:
        async with self._lock:
            if self._stop is None:
                try:
                    stop = await self._start()
                except Exception:
                    self._start_failures += 1
                    raise
                self._stop = stop if stop is not None else _noop
                self._starts += 1
            self.listeners += 1

    async def _release(self) -> None:
        # Count down before any await, so a cancellation cannot leave the count wrong;
        # with the lock free, stop() is called without yielding to other tasks first.
        self.listeners -= 1
        if self.listeners:
            return
        async with self._lock:
            stop = self._stop
            if stop is None or self._attached():  # never started, or re-attached meanwhile
                return
            self._stop = None
            self._stops += 1
            try:
                await call_maybe_async(stop)
            except Exception:
                logger.exception("stopping %s failed", self.name)

    @contextlib.asynccontextmanager
    async def attach(self) -> AsyncIterator[None]:
        """Keep the operation running for the duration of the ``async with`` block.

        Starts it if nobody else is attached; when the last block exits it is
        stopped, and the exit waits for the stop.

        Raises:
            Exception: Whatever ``start`` raised, when this attach triggered the start.
        """
        await self._acquire()
        try:
            yield
        finally:
            await self._release()

    async def attach_until(self, until: asyncio.Event | Awaitable[object]) -> None:
        """Attach until ``until`` is set (an Event) or done (a future, task, coroutine).

        Returns once attached (the operation is running); detaching happens in the
        background. An ``until`` that is already done starts and promptly stops.

        Raises:
            Exception: Whatever ``start`` raised, when this attach triggered the start.
        """
        await self._acquire()
        watcher = asyncio.create_task(self._watch(until), name=f"{self.name}-attachment")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, until: asyncio.Event | Awaitable[object]) -> None:
        try:
            await _until(until)
        except Exception:  # a failed future ends the attachment too
            logger.debug("attachment to %s ended with an error", self.name, exc_info=True)
        finally:
            await self._release()

    def statistics(self) -> IntermittentStatistics:
        """Return a snapshot of this operation."""
        return IntermittentStatistics(
            name=self.name,
            running=self.running,
            listeners=self.listeners,
            starts=self._starts,
            start_failures=self._start_failures,
            stops=self._stops,
        )

    def __repr__(self) -> str:
        return (
            f"<Intermittent {self.name!r} running={self.running} listeners={self.listeners} "
            f"starts={self._starts}>"
        )


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a finite number > 0, got {value!r}")


async def idle_keep_alive(
    intermittent: Intermittent, *, idle_for: float, run_for: float
) -> NoReturn:
    """Keep ``intermittent`` warm: attach for ``run_for`` now and after every ``idle_for``.

    Each keep-alive attaches for ``run_for`` seconds; the next starts ``idle_for``
    seconds after the previous one ended (sc-bos ``IdleKeepAlive``). A start error is
    logged and retried at the next keep-alive. Runs until cancelled, so run it as a
    worker or a task.

    Raises:
        ConfigurationError: ``idle_for`` or ``run_for`` is not a finite number > 0.
    """
    _positive("idle_for", idle_for)
    _positive("run_for", run_for)
    while True:
        try:
            async with intermittent.attach():
                await asyncio.sleep(run_for)
        except Exception:
            logger.warning("keep-alive of %s failed to start it", intermittent.name, exc_info=True)
        await asyncio.sleep(idle_for)
