"""Middleware around task execution, and task lifecycle events.

Middleware is ``async def mw(task: TaskInfo, call_next) -> Any``: it may act
before and after ``await call_next()`` (which runs the rest of the chain and then
the task's attempt, returning its value or raising its error), change the value,
or raise. It runs once per *attempt*, inside the attempt (so inside its timeout
and its worker slot). **The first middleware added is the outermost**: with
``use(a); use(b)`` an attempt runs ``a -> b -> task -> b -> a``. Logging, metrics
and tracing integrations are middleware.

Events are synchronous callbacks ``callback(task: TaskInfo)`` for
``"submitted"``, ``"started"``, ``"retrying"`` and ``"finished"``. An exception
raised by a callback is logged and otherwise ignored: it never affects the task
or the manager.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypeAlias, final, get_args

from ._errors import ConfigurationError
from ._handle import TaskHandle, TaskInfo

__all__ = ["CallNext", "Event", "EventCallback", "Events", "Middleware", "run_chain"]

logger = logging.getLogger(__name__)

CallNext: TypeAlias = Callable[[], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain and the attempt."""

Middleware: TypeAlias = Callable[[TaskInfo, CallNext], Awaitable[Any]]
"""``async def mw(task: TaskInfo, call_next: CallNext) -> Any``."""

Event = Literal["submitted", "started", "retrying", "finished"]
"""The task lifecycle events :meth:`TaskManager.on` accepts."""

EventCallback: TypeAlias = Callable[[TaskInfo], object]
"""A synchronous event callback; its return value is ignored."""

EVENTS: Final[tuple[str, ...]] = get_args(Event)


def run_chain(chain: Sequence[Middleware], info: TaskInfo, call: CallNext) -> Awaitable[Any]:
    """Return an awaitable running ``call`` wrapped by ``chain`` (first = outermost)."""

    def at(index: int) -> Awaitable[Any]:
        if index == len(chain):
            return call()
        return chain[index](info, lambda: at(index + 1))

    return at(0)


def check_middleware(middleware: Middleware) -> Middleware:
    """Validate a middleware at the call that registers it."""
    candidate: object = middleware
    if not callable(candidate):
        raise ConfigurationError(f"middleware must be an async callable, got {middleware!r}")
    return middleware  # the shape is checked by mypy at the call site


@final
class Events:
    """Per-event callback lists; ``emit`` builds the :class:`TaskInfo` only when needed."""

    __slots__ = ("finished", "retrying", "started", "submitted")

    def __init__(self) -> None:
        self.submitted: list[EventCallback] = []
        self.started: list[EventCallback] = []
        self.retrying: list[EventCallback] = []
        self.finished: list[EventCallback] = []

    def add(self, event: str, callback: EventCallback) -> Callable[[], None]:
        """Register ``callback`` for ``event``; return a function that unregisters it."""
        if event not in EVENTS:
            raise ConfigurationError(f"unknown event {event!r}; expected one of {EVENTS}")
        if not callable(callback):
            raise ConfigurationError(f"callback must be callable, got {callback!r}")
        callbacks: list[EventCallback] = getattr(self, event)
        callbacks.append(callback)

        def remove() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return remove

    @staticmethod
    def emit(callbacks: list[EventCallback], handle: TaskHandle[Any]) -> None:
        """Call each callback with a snapshot of ``handle``; log and swallow their errors."""
        info = handle.info()
        for callback in tuple(callbacks):
            try:
                callback(info)
            except Exception:
                logger.exception("event callback %r failed for task %s", callback, info.id)

    def count(self) -> int:
        """Return how many callbacks are registered in total."""
        return len(self.submitted) + len(self.started) + len(self.retrying) + len(self.finished)
