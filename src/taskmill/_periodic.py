"""Periodic durable tasks: each scheduled instant is enqueued exactly once, by any worker.

A periodic task is declared on a :class:`~taskmill.TaskRegistry` with
``@registry.periodic(every=...)``. Its instants are ``start + k * every`` (whole
milliseconds of UTC wall time, ``start`` defaulting to the UNIX epoch), so every
process computes the same instants without talking to the others.

Exactly once per instant: the task id of an instant is ``periodic:<name>:<ms>``, and
enqueueing an existing id is a no-op in both stores (``created=False``). So any number
of workers may enqueue the same instant; one task exists, and it runs once (at least
once under faults, like any durable task).

:class:`PeriodicScheduler` runs in every :class:`~taskmill.DurableWorker` that serves
the task's queue. It keeps the *next* instant enqueued with ``run_at=instant``, so the
store's clock (Redis ``TIME``, the SQLite host clock) decides when it becomes due.

Misfire policy (stated in docs/durable.md): an instant runs only if its first delivery
starts within ``misfire_grace`` (default and maximum: one interval) after the instant;
a later first delivery is skipped (the task ends ``cancelled``). On start a worker
enqueues the most recent past instant when it is still within the grace, so after an
outage at most one missed instant runs (coalescing), and older ones never do.

This module imports only the standard library at import time (the registry uses
:class:`PeriodicSpec`); the scheduler gets its codec and store from the worker.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

from . import _clock
from ._backoff import Exponential
from ._errors import BackendError, ConfigurationError, PayloadError

if TYPE_CHECKING:
    from ._codec import PayloadCodec
    from ._durable import DurableStore

__all__ = [
    "PeriodicScheduler",
    "PeriodicSpec",
    "PeriodicStatistics",
    "misfire_lateness",
    "periodic_task_id",
]

logger = logging.getLogger(__name__)

_PREFIX: Final = "periodic:"
_UTC: Final = _dt.UTC
_RETRY: Final = Exponential(0.05, max=5.0, jitter="equal")  # enqueue failures
_RNG: Final = random.Random()  # jitter only
_MIN_SLEEP: Final = 0.001


def periodic_task_id(name: str, instant_ms: int) -> str:
    """Return the task id of one instant of periodic task ``name`` (``periodic:<name>:<ms>``)."""
    return f"{_PREFIX}{name}:{instant_ms}"


def _milliseconds(value: object, what: str) -> int:
    """Return ``value`` seconds as whole milliseconds > 0, or raise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number of seconds, got {value!r}")
    ms = round(value * 1000)
    if ms <= 0 or abs(value * 1000 - ms) > 1e-6:
        raise ConfigurationError(
            f"{what} must be a whole number of milliseconds > 0, got {value!r}"
        )
    return ms


def instant_datetime(instant_ms: int) -> _dt.datetime:
    """Return an instant as an aware UTC datetime (what the task is called with)."""
    return _dt.datetime.fromtimestamp(instant_ms / 1000, _UTC)


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class PeriodicSpec:
    """The schedule of one periodic task (see :meth:`taskmill.TaskRegistry.periodic`).

    Args:
        name: The registered task name.
        every: The interval in seconds (whole milliseconds, > 0).
        start: An aware datetime the instants are aligned to (``None``: the UNIX
            epoch, so ``every=60`` fires at each full minute, UTC).
        misfire_grace: How late (seconds) an instant's first delivery may start and
            still run; ``None``: one interval. ``0 < misfire_grace <= every``.

    Raises:
        ConfigurationError: A value is invalid.
    """

    name: str
    every: float
    start: _dt.datetime | None = None
    misfire_grace: float | None = None
    every_ms: int = field(init=False)
    """The interval in milliseconds."""
    offset_ms: int = field(init=False)
    """Where instants fall inside an interval: ``start`` modulo ``every``, in ms."""
    grace_ms: int = field(init=False)
    """``misfire_grace`` in milliseconds."""

    def __post_init__(self) -> None:
        every_ms = _milliseconds(self.every, "every")
        start: object = self.start
        offset = 0
        if start is not None:
            if not isinstance(start, _dt.datetime) or start.utcoffset() is None:
                raise ConfigurationError(f"start must be an aware datetime, got {start!r}")
            offset = round(start.timestamp() * 1000) % every_ms
        grace_ms = (
            every_ms
            if self.misfire_grace is None
            else _milliseconds(self.misfire_grace, "misfire_grace")
        )
        if grace_ms > every_ms:
            raise ConfigurationError(
                f"misfire_grace ({self.misfire_grace!r} s) must not exceed every "
                f"({self.every!r} s): at most one missed instant catches up"
            )
        object.__setattr__(self, "every_ms", every_ms)
        object.__setattr__(self, "offset_ms", offset)
        object.__setattr__(self, "grace_ms", grace_ms)

    def at_or_before(self, ms: int) -> int:
        """Return the latest instant (ms) at or before ``ms``."""
        return ms - (ms - self.offset_ms) % self.every_ms

    def after(self, ms: int) -> int:
        """Return the first instant (ms) strictly after ``ms``."""
        return self.at_or_before(ms) + self.every_ms

    def task_id(self, instant_ms: int) -> str:
        """Return the task id of one instant."""
        return periodic_task_id(self.name, instant_ms)

    def instant_of(self, task_id: str) -> int | None:
        """Return the instant (ms) a task id stands for, or None for another id."""
        head = f"{_PREFIX}{self.name}:"
        if not task_id.startswith(head):
            return None
        digits = task_id[len(head) :]
        if not digits.isdigit():
            return None
        instant = int(digits)
        return instant if self.at_or_before(instant) == instant else None


def check_periodic_callable(fn: Callable[..., Any], name: str) -> None:
    """Raise unless ``fn`` can be called with one positional argument (the instant)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        signature.bind(instant_datetime(0))
    except TypeError as exc:
        raise ConfigurationError(
            f"periodic task {name!r} is called with one argument, the scheduled instant "
            f"(an aware UTC datetime); its signature {signature} does not accept it: {exc}"
        ) from None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodicStatistics:
    """Counters of a :class:`PeriodicScheduler`.

    Attributes:
        tasks: Periodic tasks it schedules.
        enqueued: Instants it enqueued (created or already there).
        created: Instants its enqueue created (the others were enqueued elsewhere).
        catch_ups: Past instants (within the grace) it enqueued on start or after a stall.
        failures: Enqueue batches that failed (retried with backoff).
    """

    tasks: int
    enqueued: int
    created: int
    catch_ups: int
    failures: int


@final
class PeriodicScheduler:
    """Keep each periodic task's next instant enqueued; one per worker, any number of workers.

    Args:
        store: The durable store.
        codec: Encodes the instant's payload (``fn(instant)``).
        specs: The schedules; their tasks must be registered in the codec's registry.
        queues: The queue of each spec's task (same order as ``specs``).
        wake: Called after instants were enqueued or became due (the worker claims at once).

    Raises:
        ConfigurationError: A task's payload cannot be encoded (e.g. its parameter is
            annotated with a type a datetime does not convert to).
    """

    def __init__(
        self,
        store: DurableStore,
        codec: PayloadCodec,
        specs: Sequence[PeriodicSpec],
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._codec = codec
        self._specs = tuple(specs)
        self._wake = wake
        self._ensured: dict[str, int] = {}
        self._counts = {"enqueued": 0, "created": 0, "catch_ups": 0, "failures": 0}
        for spec in self._specs:
            try:
                self._new_task(spec, spec.offset_ms)
            except PayloadError as exc:
                raise ConfigurationError(
                    f"periodic task {spec.name!r} cannot be enqueued: {exc.reason}"
                ) from exc

    def __repr__(self) -> str:
        names = ",".join(spec.name for spec in self._specs)
        return f"<PeriodicScheduler tasks={names} created={self._counts['created']}>"

    @property
    def specs(self) -> tuple[PeriodicSpec, ...]:
        """The schedules this scheduler keeps."""
        return self._specs

    def statistics(self) -> PeriodicStatistics:
        """Return a snapshot of the counters."""
        return PeriodicStatistics(tasks=len(self._specs), **self._counts)

    def _new_task(self, spec: PeriodicSpec, instant_ms: int) -> Any:
        from ._backend import NewTask  # noqa: PLC0415 - light, but only needed here

        when = instant_datetime(instant_ms)
        task_id = spec.task_id(instant_ms)
        envelope = self._codec.build(spec.name, [when], {}, task_id=task_id, at=when)
        options = envelope.options
        return NewTask(
            payload=self._codec.encode(envelope),
            name=envelope.task,
            queue=options.queue,
            priority=options.priority,
            run_at=options.scheduled_at,
            unique_key=options.unique_key,
            task_id=task_id,
        )

    def due_now(self, now_ms: int) -> list[tuple[PeriodicSpec, int, bool]]:
        """Return the ``(spec, instant ms, catch_up)`` to enqueue at ``now_ms``.

        For each task: the latest past instant when it is within the grace and was not
        ensured yet (a catch-up), and the next instant when it was not ensured yet.
        """
        due: list[tuple[PeriodicSpec, int, bool]] = []
        for spec in self._specs:
            ensured = self._ensured.get(spec.name, -1)
            last = spec.at_or_before(now_ms)
            if last > ensured and now_ms - last <= spec.grace_ms:
                due.append((spec, last, True))
            following = last + spec.every_ms
            if following > ensured:
                due.append((spec, following, False))
        return due

    async def ensure(self) -> int:
        """Enqueue whatever :meth:`due_now` says, in one batch; return how many were created.

        Raises:
            BackendError: The store refused or could not be reached (nothing is
                marked as ensured, so the next call tries again).
        """
        due = self.due_now(round(_clock.wall_time() * 1000))
        if not due:
            return 0
        tasks = [self._new_task(spec, instant) for spec, instant, _ in due]
        outcomes = await self._store.enqueue_many(tasks)
        created = 0
        for (spec, instant, catch_up), outcome in zip(due, outcomes, strict=True):
            self._ensured[spec.name] = max(self._ensured.get(spec.name, -1), instant)
            self._counts["enqueued"] += 1
            if outcome.created:
                created += 1
                self._counts["created"] += 1
                if catch_up:
                    self._counts["catch_ups"] += 1
                    logger.info(
                        "periodic task %s: catching up the instant %s",
                        spec.name,
                        instant_datetime(instant).isoformat(),
                    )
        return created

    def _next_wakeup(self, now_ms: int) -> int:
        return min(spec.after(now_ms) for spec in self._specs)

    async def run(self) -> None:
        """Keep the next instants enqueued until cancelled (never raises store errors)."""
        if not self._specs:
            return
        failures = 0
        while True:
            try:
                created = await self.ensure()
            except BackendError as exc:
                failures += 1
                self._counts["failures"] += 1
                pause = _RETRY.delay(failures, _RNG)
                logger.warning(
                    "periodic scheduling failed (%s: %s); trying again in %.2fs",
                    type(exc).__name__,
                    exc,
                    pause,
                    exc_info=failures == 1,
                )
                await asyncio.sleep(pause)
                continue
            except Exception:
                logger.exception("periodic scheduling stopped: unexpected error")
                raise
            failures = 0
            if created and self._wake is not None:
                self._wake()  # a catch-up is due now
            now_ms = round(_clock.wall_time() * 1000)
            await asyncio.sleep(max((self._next_wakeup(now_ms) - now_ms) / 1000, _MIN_SLEEP))
            if self._wake is not None:
                self._wake()  # an instant just became due: claim it now, not at the next poll


def misfire_lateness(
    spec: PeriodicSpec, task_id: str, *, attempt: int, deliveries: int
) -> float | None:
    """Return how late (seconds) a delivery of an instant is when it must be skipped, else None.

    Only the first delivery (attempt 1, delivered once) of an instant's id is ever
    skipped: retries and redeliveries after a lost worker or a release run as usual,
    and so does the task submitted by hand (its id is not an instant's).
    """
    if attempt != 1 or deliveries != 1:
        return None
    instant = spec.instant_of(task_id)
    if instant is None:
        return None
    late_ms = _clock.wall_time() * 1000 - instant
    return late_ms / 1000 if late_ms > spec.grace_ms else None
