"""The observer hook points of the durable worker (no prometheus-client import).

:class:`~taskmill.DurableWorker` takes an optional ``observer=`` object with these
methods; :class:`taskmill.prometheus.TaskMetrics` is the Prometheus implementation.
With ``observer=None`` nothing is called.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DurableWorkerObserver"]


class DurableWorkerObserver(Protocol):
    """What a durable worker reports; every method runs on the worker's event loop."""

    def attempt_finished(self, task: str, queue: str, status: str, seconds: float | None) -> None:
        """One delivery of ``task`` from ``queue`` ended.

        Args:
            task: The task name.
            queue: The queue it was claimed from.
            status: ``"succeeded"``, ``"failed"``, ``"timed_out"``, ``"retried"``,
                ``"cancelled"``, ``"released"`` (shutdown), ``"lost"`` (lease lost) or
                ``"dead"`` (dead-lettered before it ran).
            seconds: How long the attempt ran (``None`` when it never started).
        """
        ...

    def leases_reclaimed(self, requeued: int, dead_lettered: int, cancelled: int) -> None:
        """A reclaim sweep of this worker took back expired leases of lost workers."""
        ...
