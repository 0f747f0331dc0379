"""Helpers of the app container: readiness signals and SIGINT/SIGTERM handlers.

A worker tells the app it has started with :class:`Ready` (like anyio's
``task_status.started()``); :func:`signal_handlers` installs the app's signal
handler on the running loop for the duration of ``App.run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, final

__all__ = ["Ready", "ReadyWorker", "signal_handlers"]


@final
class Ready:
    """Handed to a worker added with ``ready=True``; it calls :meth:`started` once ready.

    Like anyio's ``task_status.started()``: :meth:`App.start` returns only when every
    such worker has called it. Calling it again (e.g. after a supervised restart)
    does nothing.
    """

    __slots__ = ("_event", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._event = asyncio.Event()

    def started(self) -> None:
        """Signal that the worker is ready."""
        self._event.set()

    @property
    def is_set(self) -> bool:
        """Whether :meth:`started` was called."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until :meth:`started` is called."""
        await self._event.wait()

    def __repr__(self) -> str:
        return f"<Ready {self.name!r} is_set={self.is_set}>"


@final
class ReadyWorker:
    """Runs ``fn(ready)`` as a worker."""

    __slots__ = ("fn", "name", "ready")

    def __init__(self, fn: Callable[[Ready], Awaitable[None]], ready: Ready) -> None:
        self.fn = fn
        self.ready = ready
        self.name = ready.name

    async def run(self) -> None:
        await self.fn(self.ready)


@contextlib.contextmanager
def signal_handlers(handler: Callable[[int], None], *, enabled: bool) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler(signum)`` on the running loop, then restore.

    Only in the main thread and where the loop supports signals; otherwise nothing is
    installed. The handlers that were there before come back on exit.
    """
    installed: list[tuple[signal.Signals, Any]] = []
    if enabled and threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, handler, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # no signals here
                continue
            installed.append((signum, previous))
    try:
        yield
    finally:
        for signum, previous in installed:
            asyncio.get_running_loop().remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)
