"""Argument checks for the store's public calls, and the host's boot id.

Every check raises :class:`~taskmill.ConfigurationError` naming the argument, at the
call that passed it (before anything reaches the database).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from taskmill._errors import ConfigurationError

from ._records import Status

__all__ = ["count", "queue_names", "read_boot_id", "seconds", "statuses", "text"]

_BOOT_ID_FILE: Final = "/proc/sys/kernel/random/boot_id"


def read_boot_id() -> str | None:
    """Return this host's boot id (Linux), or ``None`` where there is none."""
    try:
        return Path(_BOOT_ID_FILE).read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as finite float seconds, > 0 (or >= 0 with ``allow_zero``)."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (allow_zero and value == 0))
    ):
        return float(value)
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigurationError(f"{what} must be a finite number of seconds {bound}: {value!r}")


def count(value: object, what: str, minimum: int) -> int:
    """Return ``value`` when it is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def text(value: object, what: str) -> str:
    """Return ``value`` when it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def queue_names(queues: Sequence[str]) -> tuple[str, ...]:
    """Return the distinct queue names (a single string is one name)."""
    names = (queues,) if isinstance(queues, str) else tuple(queues)
    if not names:
        raise ConfigurationError("claim needs at least one queue name")
    return tuple(dict.fromkeys(text(name, "queue name") for name in names))


def statuses(status: Status | str | Iterable[Status | str] | None) -> list[str]:
    """Return the status values to filter on (``[]`` = any)."""
    if status is None:
        return []
    items = [status] if isinstance(status, str) else list(status)
    try:
        return [Status(item).value for item in items]
    except ValueError as exc:
        raise ConfigurationError(f"unknown status in {status!r}") from exc
