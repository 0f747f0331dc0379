"""Argument checks for the store's public calls, and the host's boot id.

Every check raises :class:`~taskmill.ConfigurationError` naming the argument, at the
call that passed it (before anything reaches the database). The checks both stores
share live in :mod:`taskmill._storecheck` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from taskmill._storecheck import count, queue_names, seconds, status_items, text

from ._records import Status

__all__ = ["count", "queue_names", "read_boot_id", "seconds", "statuses", "text"]

_BOOT_ID_FILE: Final = "/proc/sys/kernel/random/boot_id"


def read_boot_id() -> str | None:
    """Return this host's boot id (Linux), or ``None`` where there is none."""
    try:
        return Path(_BOOT_ID_FILE).read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def statuses(status: Status | str | Iterable[Status | str] | None) -> list[str]:
    """Return the status values to filter on (``[]`` = any)."""
    return [item.value for item in status_items(status) or ()]
