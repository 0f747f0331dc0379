"""OpenTelemetry tracing: manager middleware spans and durable submit -> worker traces."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import taskmill as tm
from taskmill.otel import DurableTracing, extract, inject, tracing_middleware
from taskmill.sqlite import SqliteStore
from taskmill.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.virtual_time(wall_start=1_700_000_000.0)

registry = tm.TaskRegistry()
runs: list[int] = []


@registry.task(name="double")
async def double(x: int) -> int:
    return 2 * x


@registry.task(name="flaky", retry=tm.Retry(max_attempts=3, backoff=tm.Constant(5.0)))
async def flaky() -> str:
    runs.append(1)
    if len(runs) < 2:
        raise ValueError("not yet")
    return "ok"


@registry.task(name="broken")
async def broken() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    runs.clear()
    memory = InMemorySpanExporter()
    yield memory
    memory.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


async def run_worker(
    store: SqliteStore, provider: TracerProvider, handle: tm.DurableHandle[Any]
) -> object:
    """Run a traced worker until ``handle`` finished; return its result or error."""
    worker = tm.DurableWorker(store, registry, lease=10.0, tracing=DurableTracing(provider))
    running = asyncio.create_task(worker.run())
    try:
        return await handle.result(timeout=60)
    except tm.TaskFailed as exc:
        return exc
    finally:
        await worker.stop()
        await running


def attr(span: ReadableSpan, key: str) -> object:
    """Return one attribute of a finished span."""
    return (span.attributes or {})[key]


def ids(span: ReadableSpan | None) -> tuple[int, int]:
    """Return (trace id, span id) of a span's context."""
    assert span is not None
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


class TestManagerMiddleware:
    async def test_span_per_attempt_with_attributes(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """Each attempt gets its own span; the failed one records the error."""
        attempts: list[int] = []

        async def task() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise ValueError("first fails")
            return "ok"

        async with tm.TaskManager(retry=tm.Retry(max_attempts=2, backoff=tm.Constant(1))) as mgr:
            mgr.use(tracing_middleware(provider))
            handle = await mgr.submit(task)
            assert "ok" == await handle
        spans = exporter.get_finished_spans()
        assert [f"taskmill.run {handle.name}"] * 2 == [span.name for span in spans]
        assert [1, 2] == [attr(span, "taskmill.attempt") for span in spans]
        assert {handle.id} == {attr(span, "taskmill.task_id") for span in spans}
        assert [StatusCode.ERROR, StatusCode.UNSET] == [span.status.status_code for span in spans]
        assert "exception" == spans[0].events[0].name
        assert "ValueError" == dict(spans[0].events[0].attributes or {})["exception.type"]

    async def test_cancellation_is_not_an_error(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """A cancelled attempt ends its span without ERROR status or exception event."""
        async with tm.TaskManager() as mgr:
            mgr.use(tracing_middleware(provider))
            handle = await mgr.submit(asyncio.sleep, 3600)
            await wait_all_tasks_blocked()
            handle.cancel()
            assert tm.TaskStatus.CANCELLED == await handle.wait()
        (span,) = exporter.get_finished_spans()
        assert StatusCode.UNSET == span.status.status_code
        assert () == tuple(span.events)
        assert attr(span, "taskmill.cancelled") is True

    async def test_user_spans_nest_under_the_attempt(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """A span opened by the task is a child of the attempt span."""
        tracer = provider.get_tracer("user")

        async def task() -> None:
            with tracer.start_as_current_span("inner"):
                await asyncio.sleep(1)

        async with tm.TaskManager() as mgr:
            mgr.use(tracing_middleware(provider))
            await (await mgr.submit(task))
        inner, outer = exporter.get_finished_spans()
        assert inner.parent is not None
        assert ids(outer)[1] == inner.parent.span_id


class TestPropagation:
    def test_inject_extract_round_trip(self, provider: TracerProvider) -> None:
        """The carrier is W3C traceparent and extracts to the same span context."""
        from opentelemetry import trace

        with provider.get_tracer("t").start_as_current_span("s") as span:
            carrier = inject()
        assert {"traceparent"} == set(carrier)
        extracted = trace.get_current_span(extract(carrier)).get_span_context()
        assert span.get_span_context().trace_id == extracted.trace_id
        assert span.get_span_context().span_id == extracted.span_id

    def test_empty_carrier_has_no_parent(self) -> None:
        """Nothing to extract gives an invalid (absent) parent span context."""
        from opentelemetry import trace

        assert not trace.get_current_span(extract({})).get_span_context().is_valid


class TestDurable:
    async def test_worker_attempt_is_child_of_submit(
        self, store: SqliteStore, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """The trace context travels in the envelope: attempt span's parent is the submit span."""
        client = tm.DurableClient(store, registry, tracing=DurableTracing(provider))
        handle = await client.submit(double, 21)
        assert 42 == await run_worker(store, provider, handle)
        (submit,) = named(exporter, "taskmill.submit double")
        (attempt,) = named(exporter, "taskmill.run double")
        assert attempt.parent is not None
        assert ids(submit)[0] == ids(attempt)[0]
        assert ids(submit)[1] == attempt.parent.span_id
        assert attempt.parent.is_remote
        assert (SpanKind.PRODUCER, SpanKind.CONSUMER) == (submit.kind, attempt.kind)
        assert handle.id == attr(submit, "taskmill.task_id")
        assert {
            "taskmill.task_id": handle.id,
            "taskmill.name": "double",
            "taskmill.attempt": 1,
        } == dict(attempt.attributes or {})

    async def test_retry_is_a_span_event_with_the_delay(
        self, store: SqliteStore, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """A failed attempt records its error and a "retry" event; both attempts share the trace."""
        client = tm.DurableClient(store, registry, tracing=DurableTracing(provider))
        handle = await client.with_options(priority=1).submit("flaky")
        assert "ok" == await run_worker(store, provider, handle)
        (submit,) = named(exporter, "taskmill.submit flaky")
        first, second = named(exporter, "taskmill.run flaky")
        assert [1, 2] == [attr(first, "taskmill.attempt"), attr(second, "taskmill.attempt")]
        assert StatusCode.ERROR == first.status.status_code
        assert ["exception", "retry"] == [event.name for event in first.events]
        assert 5.0 == dict(first.events[1].attributes or {})["taskmill.retry.delay"]
        assert StatusCode.UNSET == second.status.status_code
        trace_ids = {ids(span)[0] for span in (submit, first, second)}
        assert 1 == len(trace_ids)

    async def test_final_failure_recorded_without_retry_event(
        self, store: SqliteStore, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """The last failing attempt has ERROR status and no "retry" event."""
        client = tm.DurableClient(store, registry, tracing=DurableTracing(provider))
        handle = await client.submit(broken)
        assert isinstance(await run_worker(store, provider, handle), tm.TaskFailed)
        (attempt,) = named(exporter, "taskmill.run broken")
        assert StatusCode.ERROR == attempt.status.status_code
        assert ["exception"] == [event.name for event in attempt.events]

    async def test_untraced_client_gives_root_attempt_span(
        self, store: SqliteStore, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """Without client tracing the envelope carries no context: the attempt span is a root."""
        handle = await tm.DurableClient(store, registry).submit(double, 1)
        assert 2 == await run_worker(store, provider, handle)
        (attempt,) = exporter.get_finished_spans()
        assert attempt.parent is None

    async def test_unknown_task_fails_at_submit(
        self, store: SqliteStore, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """An unregistered callable raises UnknownTask before any span opens."""
        client = tm.DurableClient(store, registry, tracing=DurableTracing(provider))
        with pytest.raises(tm.UnknownTask):
            await client.submit(print)
        assert () == tuple(exporter.get_finished_spans())


@pytest.mark.real_time
def test_import_taskmill_does_not_import_opentelemetry() -> None:
    """``import taskmill`` (and durable use) stays free of opentelemetry."""
    code = (
        "import sys, taskmill; assert not any(m.startswith('opentelemetry') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
