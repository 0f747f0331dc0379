"""What a :class:`~taskmill.TaskManager` reports: statistics snapshots and stop reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import final

__all__ = ["ManagerStatistics", "StopReport"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StopReport:
    """What :meth:`TaskManager.stop` did; every id is also a task finished by then.

    Attributes:
        graceful: Whether a graceful stop was asked for.
        timed_out: Whether a graceful stop ran out of time and fell back to cancelling.
        finished: Ids of tasks that were queued or running when the stop began and
            then ran to a terminal status during the drain (any outcome).
        cancelled: Ids of running tasks the stop cancelled (they ended ``cancelled``).
        abandoned: Ids of tasks that never got to run because of the stop: queued
            (immediate stop, or the drain timed out), scheduled, or waiting to retry.
            They ended ``cancelled``; nothing is dropped silently.
    """

    graceful: bool
    timed_out: bool = False
    finished: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    abandoned: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"StopReport(graceful={self.graceful}, timed_out={self.timed_out}, "
            f"finished={len(self.finished)}, cancelled={len(self.cancelled)}, "
            f"abandoned={len(self.abandoned)})"
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerStatistics:
    """A snapshot of a :class:`~taskmill.TaskManager` (what health, metrics and CLIs read).

    Attributes:
        state: ``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``.
        queued: Tasks waiting to run (including those held back by a key limit).
        scheduled: Tasks waiting for their ``delay``/``at`` time.
        running: Tasks executing now (= concurrency in use).
        retrying: Tasks waiting out a retry backoff.
        submitted: Tasks accepted since start.
        succeeded: Tasks that ended ``succeeded``.
        failed: Tasks that ended ``failed``.
        cancelled: Tasks that ended ``cancelled``.
        timed_out: Tasks that ended ``timed_out``.
        retries: Retries scheduled so far (attempts after the first).
        concurrency: The concurrency limit.
        workers: Worker coroutines alive (converges to ``concurrency`` after a resize).
        queue_size: The bound on queued tasks (``None`` = unbounded).
        rate_tokens: Tokens in the global rate limiter (``None`` = no limit).
        key_tokens: Tokens per rate-limit key in use.
        key_running: Running tasks per concurrency key in use.
        key_waiting: Tasks held back per concurrency key.
        results_dropped: Results lost by slow result streams (all streams).
        subscribers: Open result streams.
        retained: Finished task records kept for ``get()`` (bounded by retention).
        records: Task records known in total (live and retained).
    """

    state: str
    queued: int
    scheduled: int
    running: int
    retrying: int
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    timed_out: int
    retries: int
    concurrency: int
    workers: int
    queue_size: int | None
    rate_tokens: float | None
    key_tokens: Mapping[str, float]
    key_running: Mapping[str, int]
    key_waiting: Mapping[str, int]
    results_dropped: int
    subscribers: int
    retained: int
    records: int

    @property
    def finished(self) -> int:
        """Tasks that reached a terminal status."""
        return self.succeeded + self.failed + self.cancelled + self.timed_out

    @property
    def live(self) -> int:
        """Tasks not finished yet."""
        return self.queued + self.scheduled + self.running + self.retrying
