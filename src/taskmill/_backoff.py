"""Backoff: pure functions from a retry number to a delay in seconds.

A :class:`Backoff` answers one question: *how long to wait before retry number
``retry``* (``retry`` = failures so far). ``delay(0, ...)`` is always ``0.0``:
nothing has failed yet. Implementations read no clock and do no I/O; randomness
comes from the :class:`random.Random` passed in, so a seeded generator gives a
reproducible sequence.

Every value is finite, non-negative and capped, at any retry number: the exponent
stops growing once the cap is reached (``max``, or :data:`MAX_DELAY` when there is
none), so the NaN/overflow bug of the Go original (rebuy ``ExponentialBackoff`` after
about 1025 attempts) cannot happen here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, final, get_args, runtime_checkable

from ._errors import ConfigurationError

__all__ = ["MAX_DELAY", "Backoff", "Constant", "Exponential", "Jitter"]

MAX_DELAY: Final = 1e9
"""The ceiling (seconds, about 31.7 years) of a backoff that has no ``max``."""

Jitter = Literal["none", "full", "equal", "proportional", "decorrelated"]
"""How :class:`Exponential` randomises its delays (see its docstring)."""

_JITTERS: Final = frozenset(get_args(Jitter))
# Proportional jitter with proportion 1 has no lower bound to pass the cap; grow the
# uncapped base this far past the cap at most (U * base < cap then has p < 2**-53).
_MAX_SPREAD: Final = 2.0**53


@runtime_checkable
class Backoff(Protocol):
    """How long to wait before each retry.

    Implementations must be pure: the same ``retry``, ``previous`` and RNG state give
    the same delay, and no clock is read.
    """

    def delay(self, retry: int, rng: random.Random, previous: float = 0.0) -> float:
        """Return the seconds to wait before retry number ``retry``.

        Args:
            retry: Failures so far (``>= 0``); ``0`` means nothing failed and must
                give ``0.0``.
            rng: The random source for jitter.
            previous: The delay actually used before the previous retry (only
                decorrelated jitter uses it).

        Returns:
            A finite, non-negative number of seconds.
        """
        ...


def _seconds(name: str, value: object) -> float:
    """Validate a finite, non-negative number of seconds (or a plain number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _check_retry(retry: int) -> None:
    if retry < 0:
        raise ConfigurationError(f"retry must be >= 0, got {retry!r}")


def _sequence(backoff: Backoff, count: int, rng: random.Random | None) -> Iterator[float]:
    """Yield the delays before retries ``1..count``, threading ``previous``."""
    source = rng if rng is not None else random.Random()
    previous = 0.0
    for retry in range(1, count + 1):
        previous = backoff.delay(retry, source, previous)
        yield previous


@final
@dataclass(frozen=True, slots=True, init=False, repr=False)
class Constant:
    """The same delay before every retry (``0.0`` before the first attempt).

    Matches rebuy ``StaticBackoff``, hive ``ConstantBackoff`` and sc-bos
    ``WithRetryDelay``.

    Args:
        delay: Seconds to wait before each retry (finite, ``>= 0``).

    Attributes:
        seconds: The delay (named ``seconds`` because ``delay`` is the method).

    Example:
        >>> import random
        >>> [Constant(0.5).delay(n, random.Random()) for n in range(3)]
        [0.0, 0.5, 0.5]
    """

    seconds: float

    def __init__(self, delay: float) -> None:
        object.__setattr__(self, "seconds", _seconds("delay", delay))

    def __repr__(self) -> str:
        return f"Constant(delay={self.seconds!r})"

    def delay(self, retry: int, rng: random.Random, previous: float = 0.0) -> float:  # noqa: ARG002
        """Return ``0.0`` for retry 0, otherwise the constant delay."""
        _check_retry(retry)
        return self.seconds if retry else 0.0

    def sequence(self, count: int, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delays before retries ``1..count``."""
        return _sequence(self, count, rng)


@final
@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential backoff with an optional cap and jitter.

    The base delay before retry ``n >= 1`` is ``initial * multiplier ** (n - 1)``,
    capped at ``max``. ``jitter`` then decides the delay actually returned:

    * ``none``: the base;
    * ``full``: uniform in ``[0, base]``;
    * ``equal``: ``base / 2`` plus uniform in ``[0, base / 2]``;
    * ``proportional``: ``b * (1 - p) + b * p * U[0, 1)`` with ``b`` the *uncapped*
      base, then capped. Jitter only subtracts, and once the lower bound
      ``b * (1 - p)`` passes ``max`` the result is exactly ``max`` (rebuy
      ``ExponentialBackoff``);
    * ``decorrelated``: ``min(max, U[initial, max(initial, 3 * previous)])`` (AWS
      "decorrelated jitter"; ``multiplier`` is not used).

    Args:
        initial: The first delay in seconds (``>= 0``; ``0`` means always ``0``).
        multiplier: Growth factor per retry (``>= 1``): 2 like rebuy and hive, 1.5
            like sc-bos and cenkalti.
        max: The cap in seconds (``>= initial``); ``None`` caps at :data:`MAX_DELAY`.
        jitter: One of :data:`Jitter`.
        proportion: The jitter proportion ``p`` in ``[0, 1]`` (proportional only).

    Raises:
        ConfigurationError: A parameter is negative, NaN or infinite, ``multiplier``
            is below 1, ``proportion`` is outside ``[0, 1]``, ``max`` is below
            ``initial`` or ``jitter`` is unknown.

    Example:
        >>> import random
        >>> list(Exponential(1.0, max=10.0, multiplier=1.5).sequence(8, random.Random()))
        [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10.0, 10.0]
    """

    initial: float
    multiplier: float = field(default=2.0, kw_only=True)
    max: float | None = field(default=None, kw_only=True)
    jitter: Jitter = field(default="none", kw_only=True)
    proportion: float = field(default=0.5, kw_only=True)
    _cap: float = field(init=False, repr=False, compare=False)
    _last_exponent: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        initial = _seconds("initial", self.initial)
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "multiplier", _seconds("multiplier", self.multiplier))
        object.__setattr__(self, "proportion", _seconds("proportion", self.proportion))
        if self.multiplier < 1:
            raise ConfigurationError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if self.max is not None:
            object.__setattr__(self, "max", _seconds("max", self.max))
        if self.max is not None and self.max < initial:
            raise ConfigurationError(
                f"max ({self.max!r}) must be >= initial ({self.initial!r}): a cap below "
                "the first delay would be ignored or silently lower it"
            )
        if self.jitter not in _JITTERS:
            raise ConfigurationError(
                f"jitter must be one of {sorted(_JITTERS)}, got {self.jitter!r}"
            )
        if self.proportion > 1:
            raise ConfigurationError(f"proportion must be in [0, 1], got {self.proportion!r}")
        cap = self.max if self.max is not None else max(MAX_DELAY, initial)
        object.__setattr__(self, "_cap", cap)
        object.__setattr__(self, "_last_exponent", self._exponent_limit(cap))

    def _exponent_limit(self, cap: float) -> int:
        """Return the exponent past which the (uncapped) base no longer matters."""
        limit = cap
        if self.jitter == "proportional":
            limit = cap / max(1.0 - self.proportion, 1.0 / _MAX_SPREAD)
        if self.initial == 0 or self.multiplier == 1 or limit <= self.initial:
            return 0
        growth = math.log(limit) - math.log(self.initial)
        return max(0, math.ceil(growth / math.log(self.multiplier)))

    def _base(self, retry: int) -> float:
        """Return the uncapped base delay before ``retry`` (exponent clamped)."""
        exponent = min(retry - 1, self._last_exponent)
        try:
            return self.initial * self.multiplier**exponent
        except OverflowError:  # only for extreme initial/cap ratios (> 1e308)
            return math.inf

    def delay(self, retry: int, rng: random.Random, previous: float = 0.0) -> float:
        """Return the delay before retry number ``retry`` (``0.0`` for retry 0).

        Args:
            retry: Failures so far (``>= 0``).
            rng: The random source for jitter.
            previous: The delay used before the previous retry (decorrelated jitter).

        Returns:
            Seconds in ``[0, max]`` (``[0, MAX_DELAY]`` without a ``max``).
        """
        _check_retry(retry)
        if retry == 0:
            return 0.0
        jitter = self.jitter
        if jitter == "decorrelated":
            return self._decorrelated(rng, previous)
        base = self._base(retry)
        if jitter == "proportional":
            return self._proportional(base, rng)
        base = min(base, self._cap)
        if jitter == "none":
            return base
        if jitter == "full":
            return base * rng.random()
        half = base / 2.0
        return half + half * rng.random()

    def _proportional(self, base: float, rng: random.Random) -> float:
        lower = base * (1.0 - self.proportion)
        if lower >= self._cap or math.isinf(base):
            return self._cap
        return min(self._cap, lower + base * self.proportion * rng.random())

    def _decorrelated(self, rng: random.Random, previous: float) -> float:
        high = previous * 3.0
        if not high >= self.initial:  # also replaces NaN and negatives
            high = self.initial
        high = min(high, 3.0 * self._cap)  # also replaces inf
        return min(self._cap, self.initial + (high - self.initial) * rng.random())

    def sequence(self, count: int, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delays before retries ``1..count`` (``previous`` threaded through).

        Args:
            count: How many delays to produce.
            rng: The random source (a fresh unseeded one by default).

        Yields:
            One delay per retry, in order.
        """
        return _sequence(self, count, rng)
