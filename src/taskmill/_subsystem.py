"""Logging subsystems: a nested name path and trace ids carried by contextvars.

rebuy's ``logutil`` subsystems, without a logging framework: each
:func:`subsystem` level (and each run of a :func:`~taskmill.named` worker) pushes a
name and a fresh short random trace id onto a context variable. Tasks created inside
inherit the path (asyncio copies the context), so every log record of a worker and
of whatever it spawns can carry ``subsystem="/app/indexer"`` and
``trace_id="3f9a1c20b6de/77c0e1a9f442"`` through :class:`SubsystemFilter`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import secrets
from collections.abc import Iterator
from typing import final

__all__ = [
    "SubsystemFilter",
    "current_subsystem",
    "current_trace_id",
    "enter",
    "leave",
    "subsystem",
]

# Each level is (name, trace id); the tuple is immutable so contexts never share state.
_LEVELS: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "taskmill_subsystem", default=()
)
_TRACE_BYTES = 6  # 12 hex characters per level, like rebuy's trace ids


def _new_trace_id() -> str:
    return secrets.token_hex(_TRACE_BYTES)


@contextlib.contextmanager
def subsystem(name: str) -> Iterator[str]:
    """Enter a nested logging subsystem for the code in the ``with`` block.

    Args:
        name: This level's name; ``"/"`` inside it is kept (it reads as nesting).

    Yields:
        The full subsystem path, e.g. ``"/app/indexer"``.

    Example:
        >>> with subsystem("app"), subsystem("indexer") as path:
        ...     path
        '/app/indexer'
    """
    token = enter(name)
    try:
        yield current_subsystem()
    finally:
        _LEVELS.reset(token)


def enter(name: str) -> contextvars.Token[tuple[tuple[str, str], ...]]:
    """Push a level (cheaper than :func:`subsystem`); undo with :func:`leave`."""
    return _LEVELS.set((*_LEVELS.get(), (name, _new_trace_id())))


def leave(token: contextvars.Token[tuple[tuple[str, str], ...]]) -> None:
    """Pop the level pushed by :func:`enter`."""
    _LEVELS.reset(token)


def current_subsystem() -> str:
    """Return the current subsystem path (``"/a/b"``), or ``""`` outside any."""
    return "".join(f"/{name}" for name, _ in _LEVELS.get())


def current_trace_id() -> str:
    """Return the trace ids of every level joined with ``"/"`` (``""`` outside any)."""
    return "/".join(trace for _, trace in _LEVELS.get())


@final
class SubsystemFilter(logging.Filter):
    """A logging filter that adds ``subsystem`` and ``trace_id`` to every record.

    Attach it to a handler (or logger); it never drops records. Records that
    already carry the attributes (e.g. from ``extra=``) keep them.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.addFilter(SubsystemFilter())
        >>> handler.setFormatter(logging.Formatter("%(subsystem)s %(message)s"))
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attributes and keep the record."""
        if not hasattr(record, "subsystem"):
            record.subsystem = current_subsystem()
        if not hasattr(record, "trace_id"):
            record.trace_id = current_trace_id()
        return True
