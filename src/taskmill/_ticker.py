"""The single drift-free ticker behind ``poll``, ``repeat`` and ``timer``.

:class:`Ticker` is a pure state machine (no I/O, no clock): deadlines sit on the
fixed grid ``start + k * interval`` and are computed by multiplication, never by
accumulation, so there is no drift however many ticks pass. Spacing is
start-to-start: a run that overruns the next grid point is followed at once by the
next run, and the grid points it overran are *dropped* (counted in
:attr:`Ticker.missed`), never queued.

:func:`wait_tick` is the thin async driver: it sleeps until the next deadline on
the running loop's clock and consumes the tick.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import final

from ._errors import ConfigurationError

__all__ = ["Ticker", "TickerStatistics", "sleep_until", "wait_tick"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TickerStatistics:
    """A snapshot of a :class:`Ticker`.

    Attributes:
        interval: Seconds between grid points.
        start: The grid origin (loop time).
        next_deadline: When the next run may start (loop time).
        ticks: Ticks consumed so far (runs started on the grid).
        missed: Grid points dropped because a run overran them.
    """

    interval: float
    start: float
    next_deadline: float
    ticks: int
    missed: int


@final
class Ticker:
    """Start-to-start deadlines on the fixed grid ``start + k * interval``.

    The first deadline is ``start`` when ``immediate`` is true, otherwise
    ``start + interval``. Each :meth:`tick` consumes the current deadline and moves
    the next one to the first grid point strictly after the run's start, so missed
    grid points are dropped and the grid itself never shifts.

    Args:
        interval: Seconds between grid points; finite and > 0.
        start: The grid origin, usually the loop time when the job starts.
        immediate: Make ``start`` itself the first deadline.

    Raises:
        ConfigurationError: ``interval`` is not a finite number > 0, or ``start``
            is not finite.

    Example:
        >>> t = Ticker(1.0, start=10.0)
        >>> t.next_deadline()
        11.0
        >>> t.tick(13.5)  # the run for 11.0 starts late; 12.0 and 13.0 are dropped
        11.0
        >>> t.next_deadline(), t.missed
        (14.0, 2)
    """

    __slots__ = ("_index", "_interval", "_start", "missed", "ticks")

    def __init__(self, interval: float, *, start: float, immediate: bool = False) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ConfigurationError(f"interval must be a finite number > 0, got {interval!r}")
        if not math.isfinite(start):
            raise ConfigurationError(f"start must be a finite number, got {start!r}")
        self._interval = float(interval)
        self._start = float(start)
        self._index = 0 if immediate else 1
        self.ticks = 0
        """Ticks consumed so far."""
        self.missed = 0
        """Total grid points dropped because a run overran them."""

    @property
    def interval(self) -> float:
        """Seconds between grid points."""
        return self._interval

    @property
    def start(self) -> float:
        """The grid origin (loop time)."""
        return self._start

    def _at(self, index: int) -> float:
        return self._start + index * self._interval

    def next_deadline(self) -> float:
        """Return when the next run may start (loop time, always on the grid)."""
        return self._at(self._index)

    def due(self, now: float) -> bool:
        """Return whether the next deadline has been reached at ``now``."""
        return now >= self.next_deadline()

    def tick(self, now: float) -> float:
        """Record that a run starts at ``now`` and consume the current deadline.

        The next deadline becomes the first grid point strictly after ``now``; any
        grid points in between are dropped and added to :attr:`missed`. A ``now``
        slightly before the deadline (an event loop fires timers up to its clock
        resolution early) counts as on the deadline.

        Args:
            now: The loop time at which the run starts.

        Returns:
            The deadline that was consumed.
        """
        consumed = self._index
        at = self._at(consumed)
        following = self._at(consumed + 1)
        if following > now and following > at:  # on time (the common case)
            first_after = consumed + 1
        else:
            first_after = self._first_index_after(max(now, at), consumed)
        self.missed += first_after - consumed - 1
        self.ticks += 1
        self._index = first_after
        return at

    def _first_index_after(self, now: float, floor: int) -> int:
        """Return the smallest grid index > ``floor`` whose point is > ``now``."""
        guess = max(floor + 1, math.floor((now - self._start) / self._interval) + 1)
        while self._at(guess) <= now:  # float rounding put the guess too early
            guess += 1
        while guess - 1 > floor and self._at(guess - 1) > now:  # ... or too late
            guess -= 1
        return guess

    def statistics(self) -> TickerStatistics:
        """Return a snapshot of the ticker's state."""
        return TickerStatistics(
            interval=self._interval,
            start=self._start,
            next_deadline=self.next_deadline(),
            ticks=self.ticks,
            missed=self.missed,
        )

    def __repr__(self) -> str:
        return (
            f"<Ticker interval={self._interval:g} next_deadline={self.next_deadline():g} "
            f"ticks={self.ticks} missed={self.missed}>"
        )


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep_until(deadline: float) -> None:
    """Sleep until the running loop's clock reaches ``deadline`` (exactly, via ``call_at``)."""
    loop = asyncio.get_running_loop()
    if deadline <= loop.time():
        await asyncio.sleep(0)
        return
    future: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(deadline, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


async def wait_tick(ticker: Ticker) -> float:
    """Sleep until ``ticker``'s next deadline on the running loop, then consume it.

    If the deadline has already passed (the previous run overran it) this returns
    after a single event-loop yield, so an overrunning run is followed at once by
    the next.

    Args:
        ticker: The ticker to wait on.

    Returns:
        The deadline that was consumed.
    """
    await sleep_until(ticker.next_deadline())
    return ticker.tick(asyncio.get_running_loop().time())
