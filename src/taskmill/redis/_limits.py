"""Cluster-wide queue limits, stored in Redis next to the queue (``<prefix>:{<queue>}:o``).

Every producer and worker reads them inside its scripts, so a change applies to the
whole cluster at the next enqueue or claim; nothing is cached in a process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, final

from taskmill._errors import ConfigurationError

__all__ = ["FIELDS", "QueueLimits", "full_pause", "limit_fields", "parse_limits"]

FIELDS: Final = ("mq", "mr", "rr", "rb")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLimits:
    """The limits of one queue (``None``: no limit).

    Attributes:
        max_queued: Bound on ready tasks (delayed and retrying ones do not count);
            a submit that would pass it waits for room, then raises
            :class:`~taskmill.QueueFull`.
        max_running: Bound on tasks running at once across every worker.
        rate: Claims per second across every worker (a token bucket on Redis' clock).
        burst: Bucket size: claims allowed at once after an idle spell (default
            ``max(1, rate)``).
    """

    max_queued: int | None = None
    max_running: int | None = None
    rate: float | None = None
    burst: int | None = None


def _positive_int(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be a positive int or None, got {value!r}")
    return value


def limit_fields(limits: QueueLimits) -> dict[str, str]:
    """Check ``limits``; return the hash fields to set (the others are deleted)."""
    rate = limits.rate
    valid = isinstance(rate, int | float) and not isinstance(rate, bool)
    if rate is not None and (not valid or not math.isfinite(rate) or rate <= 0):
        raise ConfigurationError(f"rate must be a positive number or None, got {rate!r}")
    if limits.burst is not None and rate is None:
        raise ConfigurationError("burst needs a rate")
    values = {
        "mq": _positive_int(limits.max_queued, "max_queued"),
        "mr": _positive_int(limits.max_running, "max_running"),
        "rr": None if rate is None else float(rate),
        "rb": _positive_int(limits.burst, "burst"),
    }
    return {key: repr(value) for key, value in values.items() if value is not None}


def parse_limits(values: list[Any]) -> QueueLimits:
    """Decode ``HMGET`` of :data:`FIELDS`."""
    mq, mr, rr, rb = (None if v is None else v.decode() for v in values)
    return QueueLimits(
        max_queued=None if mq is None else int(mq),
        max_running=None if mr is None else int(mr),
        rate=None if rr is None else float(rr),
        burst=None if rb is None else int(rb),
    )


def full_pause(attempt: int) -> float:
    """Seconds to wait before retrying a submit to a full queue: 5 ms doubling to 250 ms."""
    return float(min(0.25, 0.005 * 2 ** min(attempt, 8)))
