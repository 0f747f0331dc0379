"""Triggers: ask timers to run now, without blocking and with coalescing.

A :class:`Trigger` can be attached to any number of timers (``timer(...,
trigger=t)``). ``t.trigger()`` marks a run as pending on **every** attached timer
(broadcast); each timer keeps its own pending flag, so any number of triggers
before a timer gets to run give that timer exactly one run. cilium hive delivers
each signal to only one of the timers sharing a trigger; taskmill deliberately
wakes all of them (see docs/jobs.md).

Triggers fired while no timer was attached are remembered by the trigger and
handed to every timer attached afterwards, until one of those timers has run for
them. Call :meth:`Trigger.trigger` from the event loop's thread (or before the loop
runs); from another thread use ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import final

__all__ = ["TimerSignal", "Trigger", "TriggerStatistics"]


def _loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerStatistics:
    """A snapshot of a :class:`Trigger`.

    Attributes:
        fired: ``trigger()`` calls so far.
        timers: Timers attached right now.
        unclaimed: Triggers fired while no timer was attached that no timer has run for yet.
    """

    fired: int
    timers: int
    unclaimed: int


@final
class Trigger:
    """Ask the timers it is attached to for a run soon (non-blocking, coalescing).

    Example:
        >>> kick = Trigger()
        >>> kick.trigger()  # remembered until a timer using it runs
    """

    __slots__ = ("_fired", "_signals", "_unclaimed", "_unclaimed_since")

    def __init__(self) -> None:
        self._signals: set[TimerSignal] = set()
        self._fired = 0
        self._unclaimed = 0
        self._unclaimed_since: float | None = None

    def trigger(self) -> None:
        """Mark a run as pending on every attached timer; never blocks.

        A timer whose ``debounce`` window (from the start of its last run) is still
        open drops the trigger.
        """
        self._fired += 1
        now = _loop_time()
        if not self._signals:
            if self._unclaimed == 0:
                self._unclaimed_since = now
            self._unclaimed += 1
            return
        for signal in self._signals:
            signal.fire(now)

    def _attach(self, signal: TimerSignal) -> None:
        self._signals.add(signal)
        if self._unclaimed:
            signal.adopt(self._unclaimed, self._unclaimed_since)

    def _claimed(self) -> None:
        """A timer ran for the triggers fired while none was attached: forget them."""
        self._unclaimed = 0
        self._unclaimed_since = None

    def _detach(self, signal: TimerSignal) -> None:
        self._signals.discard(signal)

    def statistics(self) -> TriggerStatistics:
        """Return a snapshot of the trigger."""
        return TriggerStatistics(
            fired=self._fired, timers=len(self._signals), unclaimed=self._unclaimed
        )

    def __repr__(self) -> str:
        return f"<Trigger fired={self._fired} timers={len(self._signals)}>"


@final
class TimerSignal:
    """One timer's view of a :class:`Trigger`: its own pending flag and debounce.

    Args:
        debounce: Drop triggers fired less than this many seconds after
            :attr:`last_start`.
    """

    __slots__ = (
        "debounce",
        "dropped",
        "first_at",
        "last_start",
        "pending",
        "served",
        "trigger",
        "wake",
    )

    def __init__(self, debounce: float = 0.0) -> None:
        self.debounce = debounce
        self.pending = 0
        """Triggers waiting to be served."""
        self.first_at: float | None = None
        """Loop time of the first pending trigger (``None``: fired outside the loop)."""
        self.last_start: float | None = None
        """Loop time the timer's last run started."""
        self.served = 0
        """Runs that served at least one trigger."""
        self.dropped = 0
        """Triggers dropped by the debounce."""
        self.wake: Callable[[], None] | None = None
        """Called when a trigger arrives (set by the running timer)."""
        self.trigger: Trigger | None = None

    def attach(self, trigger: Trigger) -> None:
        """Subscribe to ``trigger``."""
        self.trigger = trigger
        trigger._attach(self)  # noqa: SLF001 - the trigger's subscription protocol

    def detach(self) -> None:
        """Unsubscribe (the timer ended)."""
        trigger, self.trigger = self.trigger, None
        if trigger is not None:
            trigger._detach(self)  # noqa: SLF001 - the trigger's subscription protocol

    def adopt(self, count: int, since: float | None) -> None:
        """Take over triggers fired before any timer was attached."""
        self.pending += count
        if self.first_at is None:
            self.first_at = since

    def fire(self, now: float | None) -> None:
        """Record one trigger at loop time ``now`` and wake the timer."""
        last = self.last_start
        if (
            self.debounce > 0
            and now is not None
            and last is not None
            and now - last < self.debounce
        ):
            self.dropped += 1
            return
        if self.pending == 0:
            self.first_at = now
        self.pending += 1
        wake = self.wake
        if wake is not None:
            wake()

    def take(self, now: float, started: float) -> tuple[float, int] | None:
        """Consume the pending triggers for a run starting at ``now``.

        Args:
            now: The run's start (loop time).
            started: When the timer started; the latency of triggers fired
                outside the loop is counted from here.

        Returns:
            ``(latency, folded)`` for the metrics, or ``None`` when nothing was pending.
        """
        if self.pending == 0:
            return None
        first = started if self.first_at is None else self.first_at
        folded = self.pending - 1
        self.pending = 0
        self.first_at = None
        self.served += 1
        if self.trigger is not None:
            self.trigger._claimed()  # noqa: SLF001 - the trigger's subscription protocol
        return max(0.0, now - first), folded
