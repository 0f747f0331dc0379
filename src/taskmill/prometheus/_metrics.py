"""The :class:`~taskmill.Metrics` implementation on prometheus-client."""

from __future__ import annotations

from typing import final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["DURATION_BUCKETS", "PrometheusMetrics"]

# Histogram buckets in seconds: sub-millisecond handlers up to ten-minute jobs.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
)


@final
class PrometheusMetrics:
    """Job and trigger metrics exported through prometheus-client.

    Metric names (with the default ``namespace="taskmill"``):

    * ``taskmill_job_run_duration_seconds{kind,job}`` (histogram): every run of every
      job, successful or not; its ``_count`` is the number of runs.
    * ``taskmill_job_errors_total{kind,job}`` (counter): failed runs.
    * ``taskmill_trigger_latency_seconds{job}`` (histogram): from the first pending
      trigger to the start of the run that served it.
    * ``taskmill_trigger_folded_total{job}`` (counter): triggers coalesced into a run
      that another trigger had already requested.

    Args:
        registry: Where to register the metrics (default: prometheus-client's global
            ``REGISTRY``). Use one instance per registry: registering twice raises.
        namespace: The metric name prefix.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "taskmill"
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self._runs = Histogram(
            "job_run_duration_seconds",
            "Duration of job runs in seconds, by job kind and job name.",
            ["kind", "job"],
            namespace=namespace,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self._errors = Counter(
            "job_errors",
            "Failed job runs, by job kind and job name.",
            ["kind", "job"],
            namespace=namespace,
            registry=registry,
        )
        self._latency = Histogram(
            "trigger_latency_seconds",
            "Seconds from the first pending trigger to the start of the run serving it.",
            ["job"],
            namespace=namespace,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self._folded = Counter(
            "trigger_folded",
            "Triggers coalesced into a run another trigger had already requested.",
            ["job"],
            namespace=namespace,
            registry=registry,
        )
        self._namespace = namespace

    def job_run(self, kind: str, name: str, seconds: float) -> None:
        """Observe one run's duration."""
        self._runs.labels(kind=kind, job=name).observe(seconds)

    def job_error(self, kind: str, name: str, error: BaseException) -> None:  # noqa: ARG002
        """Count one failed run (the error's text is logged, not labelled: unbounded)."""
        self._errors.labels(kind=kind, job=name).inc()

    def trigger(self, name: str, latency: float, folded: int) -> None:
        """Observe trigger latency and count folded triggers."""
        self._latency.labels(job=name).observe(latency)
        counter = self._folded.labels(job=name)
        if folded > 0:
            counter.inc(folded)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(namespace={self._namespace!r})"
