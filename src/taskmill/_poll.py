"""Poll an action while anyone listens, with error backoff (sc-bos ``Poll``/``PollErr``).

:func:`poll` returns an :class:`~taskmill.Intermittent`: the action runs while at
least one caller is attached. The first run is immediate; then runs follow the
shared drift-free ticker (start to start, an overrun is followed at once, missed
ticks are dropped). After an error the delay switches to the error backoff
(``initial``, then times ``scale`` up to ``max``); a success switches back to the
interval. The ticker restarts only when the delay changes, so spacing is
start-to-start while stable and end-to-start right after a change, as in sc-bos.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import final

from ._backoff import MAX_DELAY
from ._errors import ConfigurationError
from ._intermittent import Intermittent, StopFn
from ._ticker import Ticker, wait_tick
from ._workers import describe

__all__ = ["PollBackoff", "PollState", "poll"]

logger = logging.getLogger(__name__)


def _finite(name: str, value: float, *, minimum: float, strict: bool) -> None:
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        op = ">" if strict else ">="
        raise ConfigurationError(f"{name} must be a finite number {op} {minimum:g}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PollBackoff:
    """The delay after consecutive poll errors (sc-bos ``WithPollErrBackoff``).

    The first error waits ``initial``; each further error in a row multiplies the
    delay by ``scale``, capped at ``max``; a success returns to the poll interval.

    Attributes:
        initial: Delay after the first error (> 0).
        max: Cap (``>= initial``); ``None`` for no cap but a finite ceiling.
        scale: Growth per consecutive error (``>= 1``; 1 keeps ``initial``).

    Raises:
        ConfigurationError: A parameter is out of range.
    """

    initial: float
    max: float | None = None
    scale: float = 2.0

    def __post_init__(self) -> None:
        _finite("initial", self.initial, minimum=0.0, strict=True)
        _finite("scale", self.scale, minimum=1.0, strict=False)
        if self.max is not None:
            _finite("max", self.max, minimum=self.initial, strict=False)

    def next(self, errors_in_a_row: int, previous: float) -> float:
        """Return the delay after ``errors_in_a_row`` errors (the last one was ``previous``)."""
        if errors_in_a_row <= 1:
            return self.initial
        cap = MAX_DELAY if self.max is None else self.max
        return min(previous * self.scale, cap)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollState:
    """The counters handed to ``on_attempt`` after every poll (sc-bos ``PollState``).

    Attributes:
        total_errors: Attempts that raised, since the poll started.
        total_successes: Attempts that returned, since the poll started.
        errors_since_success: Errors in a row.
        successes_since_error: Successes in a row.
        next_delay: Seconds until the next attempt is due.
    """

    total_errors: int
    total_successes: int
    errors_since_success: int
    successes_since_error: int
    next_delay: float


OnAttempt = Callable[[PollState, Exception | None], bool]


@final
class _Poller:
    """One poll loop: the state lives here, the Intermittent starts and stops it."""

    __slots__ = ("_action", "_backoff", "_interval", "_name", "_on_attempt", "_state")

    def __init__(
        self,
        action: Callable[[], Awaitable[object]],
        interval: float,
        backoff: PollBackoff | None,
        on_attempt: OnAttempt | None,
        name: str,
    ) -> None:
        self._action = action
        self._interval = interval
        self._backoff = backoff
        self._on_attempt = on_attempt
        self._name = name
        self._state = PollState(
            total_errors=0,
            total_successes=0,
            errors_since_success=0,
            successes_since_error=0,
            next_delay=interval,
        )

    async def start(self) -> StopFn:
        task = asyncio.create_task(self._run(), name=f"poll:{self._name}")

        async def stop() -> None:
            task.cancel()
            await asyncio.wait([task])

        return stop

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception:  # e.g. on_attempt raised: the loop ends, the error is logged
            logger.exception("poll %s stopped by an error", self._name)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        ticker = Ticker(self._interval, start=loop.time(), immediate=True)
        delay = self._interval
        while True:
            await wait_tick(ticker)
            if current is not None and current.cancelling():  # SC-606: no run after stop
                return
            error = await self._attempt()
            state = self._advance(error, delay)
            if self._on_attempt is not None and self._on_attempt(state, error):
                logger.info("poll %s aborted by its on_attempt callback", self._name)
                return
            if state.next_delay != delay:
                delay = state.next_delay
                ticker = Ticker(delay, start=loop.time())

    async def _attempt(self) -> Exception | None:
        try:
            await self._action()
        except Exception as error:  # noqa: BLE001 - counted, backed off, handed to on_attempt
            return error
        return None

    def _advance(self, error: Exception | None, delay: float) -> PollState:
        s = self._state
        if error is None:
            s = PollState(
                total_errors=s.total_errors,
                total_successes=s.total_successes + 1,
                errors_since_success=0,
                successes_since_error=s.successes_since_error + 1,
                next_delay=self._interval,
            )
        else:
            in_a_row = s.errors_since_success + 1
            backoff = self._backoff
            s = PollState(
                total_errors=s.total_errors + 1,  # sc-bos never counts this one
                total_successes=s.total_successes,
                errors_since_success=in_a_row,
                successes_since_error=0,
                next_delay=self._interval if backoff is None else backoff.next(in_a_row, delay),
            )
            self._log_error(error, s)
        self._state = s
        return s

    def _log_error(self, error: Exception, state: PollState) -> None:
        level = logging.WARNING if state.errors_since_success == 1 else logging.DEBUG
        logger.log(
            level,
            "poll %s failed (%d in a row); next attempt in %.3gs",
            self._name,
            state.errors_since_success,
            state.next_delay,
            exc_info=error,
        )


def poll(
    action: Callable[[], Awaitable[object]],
    *,
    interval: float = 1.0,
    error_backoff: PollBackoff | None = None,
    on_attempt: OnAttempt | None = None,
    name: str | None = None,
) -> Intermittent:
    """Return an :class:`~taskmill.Intermittent` that polls ``action`` while attached.

    Each start begins a fresh loop (counters start at zero); the last detach stops
    it and waits for the action in flight to be cancelled.

    Args:
        action: ``async def action()``; an exception counts as a failed poll.
        interval: Seconds between attempt starts while they succeed (> 0).
        error_backoff: Delay after consecutive errors (default: keep ``interval``).
        on_attempt: ``f(state, error) -> bool`` called after every attempt; return
            ``True`` to stop polling until the next start (sc-bos ``PollErr``).
        name: Name for logs and statistics (default: the action's).

    Raises:
        ConfigurationError: ``interval`` is not a finite number > 0.
    """
    _finite("interval", interval, minimum=0.0, strict=True)
    label = name or describe(action)
    backoff = error_backoff

    async def start() -> StopFn:
        return await _Poller(action, interval, backoff, on_attempt, label).start()

    return Intermittent(start, name=label)
