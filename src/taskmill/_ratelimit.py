"""Token-bucket rate limiting: the :class:`RateLimit` setting and its pure core.

:class:`TokenBucket` is a token bucket written as GCRA (the "generic cell rate
algorithm"): instead of a token count it keeps the *theoretical arrival time* of
the next token, so it needs no refill timer, is exact on virtual time (no
accumulated refill rounding), and answers "when could I go?" directly. It reads no
clock; every call takes ``now`` (seconds on any monotonic clock).

Guarantee (tested as a Hypothesis property): over any window of length ``w`` the
bucket grants at most ``burst + rate * w`` tokens, and a full bucket grants
``burst`` at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import final

from ._errors import ConfigurationError

__all__ = ["RateLimit", "TokenBucket"]


@final
@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``rate`` executions per second, with bursts of up to ``burst``.

    A token is taken each time an execution *starts* (retries included).

    Args:
        rate: Tokens added per second (``> 0``, finite).
        burst: Bucket size: how many executions may start at once after a quiet
            period (an int ``>= 1``; default 1 = evenly spaced starts).

    Raises:
        ConfigurationError: ``rate`` or ``burst`` is invalid.

    Example:
        >>> RateLimit(100, burst=10)
        RateLimit(rate=100, burst=10)
    """

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        rate: object = self.rate
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ConfigurationError(f"rate must be a number > 0, got {rate!r}")
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigurationError(f"rate must be a finite number > 0, got {rate!r}")
        burst: object = self.burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"burst must be an int >= 1, got {burst!r}")

    def bucket(self, now: float) -> TokenBucket:
        """Return a full :class:`TokenBucket` for this limit, starting at ``now``."""
        return TokenBucket(self.rate, self.burst, now)


@final
class TokenBucket:
    """A token bucket (GCRA form): ``rate`` tokens per second, at most ``burst`` stored.

    Args:
        rate: Tokens per second (``> 0``).
        burst: Capacity (``>= 1``).
        now: The current time; the bucket starts full.
    """

    __slots__ = ("_interval", "_tat", "_tolerance", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat = now

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}/s burst={self.burst} next_free={self._tat!r}>"

    def try_acquire(self, now: float) -> bool:
        """Take one token if one is available at ``now``; return whether it was taken."""
        tat = self._tat
        if tat - self._tolerance > now:
            return False
        self._tat = (tat if tat > now else now) + self._interval
        return True

    def wait_time(self, now: float) -> float:
        """Return seconds from ``now`` until a token is available (``0.0`` if one is)."""
        wait = self._tat - self._tolerance - now
        return wait if wait > 0.0 else 0.0

    def reserve(self, now: float) -> float:
        """Take one token, borrowing from the future if needed; return the wait.

        The caller must not start before ``now + wait``. Reservations queue up: the
        ``n``-th reservation on an empty bucket waits ``n / rate``.
        """
        tat = self._tat
        start = tat - self._tolerance
        self._tat = (tat if tat > now else now) + self._interval
        return start - now if start > now else 0.0

    def refund(self, now: float) -> None:
        """Give back one token taken with :meth:`try_acquire` or :meth:`reserve`."""
        tat = self._tat - self._interval
        self._tat = tat if tat > now else now

    def tokens(self, now: float) -> float:
        """Return how many tokens are available at ``now`` (negative when borrowed)."""
        owed = self._tat - now
        return float(self.burst) if owed <= 0.0 else self.burst - owed / self._interval

    def is_full(self, now: float) -> bool:
        """Return whether the bucket holds ``burst`` tokens (it can then be dropped)."""
        return self._tat <= now
