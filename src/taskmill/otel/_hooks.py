"""The tracing hook points of the durable client and worker (no OpenTelemetry import).

:class:`~taskmill.DurableClient` and :class:`~taskmill.DurableWorker` take an
optional ``tracing=`` object with these methods; :class:`taskmill.otel.DurableTracing`
is the OpenTelemetry implementation. With ``tracing=None`` nothing is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["DurableTracingHooks"]


class DurableTracingHooks(Protocol):
    """What the durable client and worker call when tracing is enabled."""

    def submit_span(self, name: str) -> AbstractContextManager[dict[str, str]]:
        """Open the span around one submit; yield the trace context to put in the envelope."""
        ...

    def submitted(self, task_id: str) -> None:
        """Record the enqueued task id on the current submit span."""
        ...

    def attempt_span(
        self, name: str, *, task_id: str, attempt: int, trace: Mapping[str, str]
    ) -> AbstractContextManager[None]:
        """Open the span around one attempt, as a child of the envelope's trace context."""
        ...

    def attempt_failed(self, error: BaseException, *, retry_in: float | None) -> None:
        """Record a failed attempt on the current attempt span (and the retry delay, if any)."""
        ...
