"""OpenTelemetry tracing for taskmill (the ``otel`` extra).

Install with ``pip install 'taskmill[otel]'``. Importing :mod:`taskmill` never
imports ``opentelemetry``; only importing this package does. See docs/otel.md.
"""

from __future__ import annotations

try:
    import opentelemetry.trace as _otel_trace  # noqa: F401  (availability check)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "taskmill.otel needs opentelemetry-api; install it with pip install 'taskmill[otel]'"
    ) from exc

from ._hooks import DurableTracingHooks as DurableTracingHooks
from ._tracing import DurableTracing as DurableTracing
from ._tracing import extract as extract
from ._tracing import inject as inject
from ._tracing import tracing_middleware as tracing_middleware

__all__ = ["DurableTracing", "DurableTracingHooks", "extract", "inject", "tracing_middleware"]

DurableTracing.__module__ = __name__
DurableTracingHooks.__module__ = __name__
