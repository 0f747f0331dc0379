"""OpenTelemetry spans for taskmill: manager middleware and durable client/worker hooks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, final

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from taskmill._version import __version__

if TYPE_CHECKING:
    from taskmill._handle import TaskInfo
    from taskmill._middleware import CallNext, Middleware

__all__ = ["DurableTracing", "extract", "inject", "tracing_middleware"]

TASK_ID: Final = "taskmill.task_id"
NAME: Final = "taskmill.name"
ATTEMPT: Final = "taskmill.attempt"
CANCELLED: Final = "taskmill.cancelled"
RETRY_DELAY: Final = "taskmill.retry.delay"


def _tracer(tracer_provider: TracerProvider | None) -> Tracer:
    return trace.get_tracer("taskmill", __version__, tracer_provider=tracer_provider)


def _record_error(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


@contextmanager
def _guarded(span: Span) -> Iterator[Span]:
    """Record an error escaping the block; cancellation is marked, never an error."""
    try:
        yield span
    except asyncio.CancelledError:
        span.set_attribute(CANCELLED, True)
        raise
    except BaseException as exc:
        _record_error(span, exc)
        raise


def inject(context: Context | None = None) -> dict[str, str]:
    """Return the trace context (W3C ``traceparent``/``tracestate``) as a string map.

    Uses the global text-map propagator (W3C trace context and baggage by default).

    Args:
        context: The context to inject (default: the current one).
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context:
    """Return the context carried by ``carrier`` (e.g. an envelope's ``trace`` field).

    An empty or unparsable carrier gives a context without a parent span.
    """
    return propagate.extract(dict(carrier))


def tracing_middleware(tracer_provider: TracerProvider | None = None) -> Middleware:
    """Return manager middleware that runs each attempt in a span.

    The span is named ``"taskmill.run <task name>"`` with attributes
    ``taskmill.task_id``, ``taskmill.name`` and ``taskmill.attempt``. An error is
    recorded with status ERROR; cancellation only sets ``taskmill.cancelled``.

    Args:
        tracer_provider: Where spans go (default: the global provider).

    Example:
        >>> mgr.use(tracing_middleware())  # doctest: +SKIP
    """
    tracer = _tracer(tracer_provider)

    async def tracing(task: TaskInfo, call_next: CallNext) -> Any:
        attributes: dict[str, str | int] = {
            TASK_ID: task.id,
            NAME: task.name,
            ATTEMPT: task.attempts,
        }
        with (
            tracer.start_as_current_span(
                f"taskmill.run {task.name}",
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
            _guarded(span),
        ):
            return await call_next()

    return tracing


@final
class DurableTracing:
    """OpenTelemetry hooks for ``DurableClient(tracing=...)`` and ``DurableWorker(tracing=...)``.

    The client wraps each submit in a ``"taskmill.submit <name>"`` span (kind
    PRODUCER) and puts the W3C trace context into the envelope's ``trace`` field.
    The worker runs each attempt in a ``"taskmill.run <name>"`` span (kind
    CONSUMER) whose parent is that context, so producer and consumer share one
    trace across processes. A failed attempt records its error (status ERROR);
    a scheduled retry adds a ``"retry"`` span event with ``taskmill.retry.delay``.

    Args:
        tracer_provider: Where spans go (default: the global provider).
    """

    __slots__ = ("_tracer",)

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = _tracer(tracer_provider)

    def __repr__(self) -> str:
        return f"<DurableTracing tracer={self._tracer!r}>"

    @contextmanager
    def submit_span(self, name: str) -> Iterator[dict[str, str]]:
        """Open the submit span; yield the trace context to carry in the envelope."""
        with (
            self._tracer.start_as_current_span(
                f"taskmill.submit {name}",
                kind=SpanKind.PRODUCER,
                attributes={NAME: name},
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
            _guarded(span),
        ):
            yield inject()

    def submitted(self, task_id: str) -> None:
        """Set ``taskmill.task_id`` on the current (submit) span."""
        trace.get_current_span().set_attribute(TASK_ID, task_id)

    @contextmanager
    def attempt_span(
        self, name: str, *, task_id: str, attempt: int, trace: Mapping[str, str]
    ) -> Iterator[None]:
        """Open an attempt span whose parent is the context in ``trace``."""
        with (
            self._tracer.start_as_current_span(
                f"taskmill.run {name}",
                context=extract(trace),
                kind=SpanKind.CONSUMER,
                attributes={TASK_ID: task_id, NAME: name, ATTEMPT: attempt},
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
            _guarded(span),
        ):
            yield

    def attempt_failed(self, error: BaseException, *, retry_in: float | None) -> None:
        """Record ``error`` on the current attempt span; add a ``"retry"`` event if retried."""
        span = trace.get_current_span()
        _record_error(span, error)
        if retry_in is not None:
            span.add_event("retry", {RETRY_DELAY: retry_in})
