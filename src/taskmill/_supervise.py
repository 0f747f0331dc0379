"""Supervised restart of a worker (rebuy ``Retry`` and ``DeclarativeWorker``).

:func:`supervise` restarts a worker whenever it exits — with an error *or* by
returning — after a backoff delay. What resets the backoff is how long the run
lasted, not how it ended: a run of at least ``healthy_after`` seconds was healthy,
anything shorter extends the streak of bad runs. Every restart waits at least
``min_delay`` (> 0), so a worker that returns at once can never busy-loop (rebuy
restarts a returning worker with no delay at all). Cancellation is never a
failure: it stops the supervisor at once, during a run or a wait, and no run ever
starts after it.

Given a :class:`~taskmill.Health` scope, a supervised worker reports on it: OK
``"running"`` while a run is in progress, DEGRADED with the exit (and the error, if
it raised) while it backs off before a restart, and STOPPED when the supervisor ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, final

from ._backoff import Backoff, Exponential
from ._errors import ConfigurationError
from ._health import Health
from ._workers import WorkerLike, describe, named, worker_callable

__all__ = [
    "DeclarativeWorker",
    "RestartPolicy",
    "Supervised",
    "SupervisorStatistics",
    "supervise",
]

logger = logging.getLogger(__name__)

_DEFAULT_BACKOFF = Exponential(1.0, max=60.0, jitter="proportional")
_RNG = random.Random()  # shared: a Random holds ~2.5 KiB of state, too much per worker

SupervisorState = Literal["idle", "running", "waiting", "stopped"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """How :func:`supervise` restarts a worker.

    Attributes:
        backoff: Delay before restart ``n`` of a streak of short runs
            (``backoff.delay(n, rng, previous)``); the default doubles from 1 s to
            60 s with 50 % proportional jitter, like rebuy's example.
        min_delay: The least delay before any restart (> 0): the busy-loop guard.
        healthy_after: A run lasting at least this many seconds ends the streak: the
            next restart waits only ``min_delay`` and the backoff starts over.
        rng: Random source for jitter (a shared module-level generator if ``None``).

    Raises:
        ConfigurationError: ``min_delay`` is not finite and > 0, ``healthy_after`` is
            not finite and >= 0, or ``backoff`` is not a :class:`~taskmill.Backoff`.
    """

    backoff: Backoff = _DEFAULT_BACKOFF
    min_delay: float = 0.1
    healthy_after: float = 10.0
    rng: random.Random | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_delay) and self.min_delay > 0):
            raise ConfigurationError(f"min_delay must be finite and > 0, got {self.min_delay!r}")
        if not (math.isfinite(self.healthy_after) and self.healthy_after >= 0):
            raise ConfigurationError(
                f"healthy_after must be finite and >= 0, got {self.healthy_after!r}"
            )
        if not isinstance(self.backoff, Backoff):
            raise ConfigurationError(f"backoff must be a Backoff, got {self.backoff!r}")

    def restart_delay(self, streak: int, rng: random.Random, previous: float) -> float:
        """Return the delay before the next run, given the streak of short runs."""
        return max(self.min_delay, self.backoff.delay(streak, rng, previous))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorStatistics:
    """A snapshot of a :class:`Supervised` worker.

    Attributes:
        name: The worker's name.
        state: ``"idle"`` (never run), ``"running"``, ``"waiting"`` (before a
            restart) or ``"stopped"`` (cancelled).
        runs: Runs started.
        failures: Runs that raised.
        returns: Runs that returned (workers should not).
        streak: Short runs in a row (what the backoff is computed from).
        last_error: ``repr`` of the last run's error, if it raised.
        next_run_at: Loop time of the next restart while waiting, else ``None``.
    """

    name: str
    state: SupervisorState
    runs: int
    failures: int
    returns: int
    streak: int
    last_error: str | None
    next_run_at: float | None


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@final
class Supervised:
    """A worker restarted with backoff whenever it exits. Build it with :func:`supervise`."""

    __slots__ = (
        "_failures",
        "_health",
        "_last_error",
        "_next_run_at",
        "_returns",
        "_run",
        "_runs",
        "_state",
        "_streak",
        "name",
        "policy",
        "worker",
    )

    def __init__(
        self, worker: WorkerLike, policy: RestartPolicy, *, name: str, health: Health | None = None
    ) -> None:
        if health is not None and not isinstance(health, Health):
            raise ConfigurationError(f"health must be a taskmill Health node, got {health!r}")
        self.worker = worker
        self.policy = policy
        self.name = name
        self._run: Callable[[], Awaitable[None]] = worker_callable(worker)
        self._state: SupervisorState = "idle"
        self._runs = self._failures = self._returns = self._streak = 0
        self._last_error: str | None = None
        self._next_run_at: float | None = None
        self._health = health

    @property
    def health(self) -> Health | None:
        """The health scope this supervisor reports on (``None``: it reports nowhere)."""
        return self._health

    async def run(self) -> None:
        """Run the worker, restarting it after every exit, until cancelled."""
        loop = asyncio.get_running_loop()
        rng = self.policy.rng if self.policy.rng is not None else _RNG
        previous = 0.0
        try:
            while True:
                started = loop.time()
                error = await self._run_once()
                if _cancel_requested():  # the worker swallowed our cancellation
                    raise asyncio.CancelledError
                healthy = loop.time() - started >= self.policy.healthy_after
                self._streak = 0 if healthy else self._streak + 1
                previous = self.policy.restart_delay(self._streak, rng, previous)
                self._log_exit(error, previous)
                self._report_exit(error, previous)
                await self._wait(loop, previous)
        finally:
            self._state = "stopped"
            self._next_run_at = None
            if self._health is not None:
                self._health.stopped("stopped")

    async def _run_once(self) -> Exception | None:
        self._state = "running"
        self._runs += 1
        if self._health is not None:
            restarts = self._runs - 1
            self._health.ok(f"running (restart {restarts})" if restarts else "running")
        try:
            await self._run()
        except Exception as error:  # noqa: BLE001 - a failed run is restarted, not raised
            self._failures += 1
            self._last_error = repr(error)
            return error
        self._returns += 1
        self._last_error = None
        return None

    async def _wait(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._state = "waiting"
        self._next_run_at = loop.time() + delay
        await asyncio.sleep(delay)
        self._next_run_at = None

    def _report_exit(self, error: Exception | None, delay: float) -> None:
        health = self._health
        if health is None:
            return
        how = "returned" if error is None else f"failed: {error}"
        health.degraded(f"{how}; restarting in {delay:.3g}s", error)

    def _log_exit(self, error: Exception | None, delay: float) -> None:
        if error is None:
            logger.warning(
                "worker %s returned (%d short runs in a row); restarting in %.3gs",
                self.name,
                self._streak,
                delay,
            )
            return
        logger.warning(
            "worker %s failed %d times; restarting in %.3gs",
            self.name,
            self._streak,
            delay,
            exc_info=error,
        )

    def statistics(self) -> SupervisorStatistics:
        """Return a snapshot of this supervisor."""
        return SupervisorStatistics(
            name=self.name,
            state=self._state,
            runs=self._runs,
            failures=self._failures,
            returns=self._returns,
            streak=self._streak,
            last_error=self._last_error,
            next_run_at=self._next_run_at,
        )

    def __repr__(self) -> str:
        return (
            f"<Supervised {self.name!r} state={self._state} runs={self._runs} "
            f"failures={self._failures} streak={self._streak}>"
        )


def supervise(
    worker: WorkerLike,
    policy: RestartPolicy | None = None,
    *,
    name: str | None = None,
    health: Health | None = None,
) -> Supervised:
    """Return a worker that runs ``worker`` and restarts it after every exit.

    Args:
        worker: The worker to keep running.
        policy: Backoff, minimum delay and healthy-run threshold
            (default :class:`RestartPolicy()`).
        name: Name for logs and statistics (default: the worker's).
        health: A scope to report on: OK ``"running"`` during a run (``"running
            (restart N)"`` after restarts), DEGRADED ``"failed: <error>; restarting
            in Xs"`` (with the error) or ``"returned; restarting in Xs"`` while
            backing off, STOPPED ``"stopped"`` when the supervisor ends.

    Raises:
        ConfigurationError: ``health`` is not a :class:`~taskmill.Health`.

    Example:
        >>> worker = supervise(lambda: asyncio.sleep(1), RestartPolicy(min_delay=1.0))
    """
    return Supervised(
        worker, policy or RestartPolicy(), name=name or describe(worker), health=health
    )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DeclarativeWorker:
    """A worker described by its parts (rebuy ``DeclarativeWorker``).

    Composed inside out: ``worker``, wrapped by :func:`~taskmill.named` if ``name``
    is set, wrapped by :func:`supervise` if ``restart`` is set — so each restart
    re-enters the logging subsystem with a fresh trace id.

    Attributes:
        worker: What to run.
        name: Logging subsystem name for each run.
        restart: Restart policy; ``None`` runs the worker once, unsupervised.
        health: Scope the supervisor reports on (see :func:`supervise`); only
            with ``restart``.

    Raises:
        ConfigurationError: ``health`` without ``restart``.
    """

    worker: WorkerLike
    name: str | None = None
    restart: RestartPolicy | None = None
    health: Health | None = None
    composed: WorkerLike = field(init=False, repr=False, compare=False)
    _run: Callable[[], Awaitable[None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        composed: WorkerLike = self.worker
        if self.name:
            composed = named(self.name, composed)
        if self.restart is not None:
            composed = supervise(composed, self.restart, health=self.health)
        elif self.health is not None:
            raise ConfigurationError(
                "DeclarativeWorker: health is reported by the supervisor; set restart too"
            )
        object.__setattr__(self, "composed", composed)
        object.__setattr__(self, "_run", worker_callable(composed))

    async def run(self) -> None:
        """Run the composed worker."""
        await self._run()
