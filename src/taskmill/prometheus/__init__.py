"""Prometheus metrics for taskmill (the ``prometheus`` extra).

Install with ``pip install 'taskmill[prometheus]'``. Importing :mod:`taskmill` never
imports ``prometheus_client``; only importing this package does.
"""

from __future__ import annotations

try:
    import prometheus_client as _prometheus_client  # noqa: F401  (availability check)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "taskmill.prometheus needs prometheus-client; install it with "
        "pip install 'taskmill[prometheus]'"
    ) from exc

from ._metrics import PrometheusMetrics as PrometheusMetrics
from ._tasks import MetricsServer as MetricsServer
from ._tasks import TaskMetrics as TaskMetrics

__all__ = ["MetricsServer", "PrometheusMetrics", "TaskMetrics"]

for _public in (MetricsServer, PrometheusMetrics, TaskMetrics):
    _public.__module__ = __name__
del _public
