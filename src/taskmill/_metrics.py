"""The metrics protocol jobs report to, and its no-op default.

Job kinds are ``"one_shot"``, ``"timer"`` and ``"observer"``; names are the jobs'
sanitised names (safe as metric labels). :class:`taskmill.prometheus.PrometheusMetrics`
implements the protocol on ``prometheus-client`` (the ``prometheus`` extra).
"""

from __future__ import annotations

from typing import Protocol, final, runtime_checkable

__all__ = ["Metrics", "NoopMetrics"]


@runtime_checkable
class Metrics(Protocol):
    """What jobs report; implement it to feed your metrics system.

    Every method is called on the event loop's thread and must not block.
    """

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        """One run of a job finished (successfully or not) after ``seconds``."""

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        """One run of a job failed with ``error`` (never a cancellation)."""

    def trigger(self, name: str, latency: float, folded: int) -> None:
        """A timer started a run for pending triggers.

        Args:
            name: The timer's name.
            latency: Seconds from the first trigger this run serves to the run's start.
            folded: Further ``trigger()`` calls coalesced into this run (0 = none).
        """


@final
class NoopMetrics:
    """A :class:`Metrics` that records nothing (the default)."""

    __slots__ = ()

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        """Ignore a run duration."""

    def job_error(self, kind: str, name: str, error: BaseException) -> None:
        """Ignore an error."""

    def trigger(self, name: str, latency: float, folded: int) -> None:
        """Ignore trigger statistics."""

    def __repr__(self) -> str:
        return "NoopMetrics()"
