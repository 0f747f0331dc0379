"""Job names that are safe as metric labels, log fields and health scope names.

The rule is cilium hive's: keep only ``[A-Za-z0-9_-]``; if anything was removed or
the name is longer than :data:`MAX_NAME_LENGTH`, truncate what is left and append
``"-"`` plus the first 10 hex characters of the SHA-256 of the *original* name, so
two different names never collapse into the same sanitised one by accident and the
result is never longer than :data:`MAX_NAME_LENGTH`.
"""

from __future__ import annotations

import hashlib
import string

__all__ = ["MAX_NAME_LENGTH", "sanitize_name"]

MAX_NAME_LENGTH = 100
"""The longest name :func:`sanitize_name` returns."""

_ALLOWED = frozenset(string.ascii_letters + string.digits + "_-")
_HASH_CHARS = 10


def sanitize_name(name: str) -> str:
    """Return ``name`` reduced to ``[A-Za-z0-9_-]``, at most 100 characters long.

    A name that is already clean and short enough is returned unchanged. Otherwise
    the kept characters are truncated to make room for ``"-"`` and a 10-character
    hex digest of the original name.

    Args:
        name: Any string.

    Returns:
        The sanitised name.

    Example:
        >>> sanitize_name("reindex_users-2")
        'reindex_users-2'
        >>> sanitize_name("sync users")
        'syncusers-b587e60d4f'
    """
    kept = "".join(ch for ch in name if ch in _ALLOWED)
    if len(kept) == len(name) and len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{kept[: MAX_NAME_LENGTH - _HASH_CHARS - 1]}-{digest}"
