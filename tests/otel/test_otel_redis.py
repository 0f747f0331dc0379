"""OpenTelemetry across a real Redis round trip (the SDK's in-memory exporter, a real redis-server).

The client puts the submit span's W3C trace context into the envelope; the envelope
travels through Redis (as a MessagePack record) and the worker opens each attempt span
as a child of it. In process first (both sides export to one in-memory exporter), then
with the worker in its own process, which writes its spans to a file on exit.
"""

from __future__ import annotations

import asyncio
import json
import signal
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
from taskmill.otel import DurableTracing
from taskmill.payloads import PayloadCodec
from taskmill.redis import RedisStore

from . import otel_tasks as tasks

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(60)]

HERE = Path(__file__).parent


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    memory.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    async with await RedisStore.open(redis_url, lease=5.0) as opened:
        yield opened


def ids(span: ReadableSpan) -> tuple[int, int]:
    """Return (trace id, span id) of a finished span."""
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def spawn_worker(redis_url: str, spans_file: Path) -> subprocess.Popen[str]:
    """Start tests/otel/traced_worker.py (it writes its spans to ``spans_file`` on SIGTERM)."""
    return subprocess.Popen(
        [sys.executable, str(HERE / "traced_worker.py"), redis_url, str(spans_file)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def run_until_done(
    store: RedisStore, provider: TracerProvider, handles: list[tm.DurableHandle[Any]]
) -> list[object]:
    """Run a traced worker until every handle finished; return results (or TaskFailed)."""
    worker = tm.DurableWorker(
        store, tasks.registry, lease=5.0, max_poll_interval=0.05, tracing=DurableTracing(provider)
    )
    running = asyncio.create_task(worker.run())
    outcomes: list[object] = []
    try:
        for handle in handles:
            try:
                outcomes.append(await handle.result(timeout=30))
            except tm.TaskFailed as exc:
                outcomes.append(exc)
    finally:
        await worker.stop()
        await running
    return outcomes


async def test_trace_context_travels_through_redis(
    store: RedisStore, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The envelope stored in Redis carries the traceparent; the attempt is the submit's child."""
    client = tm.DurableClient(store, tasks.registry, tracing=DurableTracing(provider))
    handle = await client.submit(tasks.double, 21)
    (submit,) = named(exporter, "taskmill.submit double")
    stored = await store.get(handle.id)
    assert stored is not None
    trace = PayloadCodec(tasks.registry).decode(stored.payload).trace
    trace_id, span_id = ids(submit)
    assert {"traceparent"} == set(trace)
    version, carried_trace, carried_span, _flags = trace["traceparent"].split("-")
    assert ("00", f"{trace_id:032x}", f"{span_id:016x}") == (version, carried_trace, carried_span)

    assert [42] == await run_until_done(store, provider, [handle])
    (attempt,) = named(exporter, "taskmill.run double")
    assert attempt.parent is not None
    assert attempt.parent.is_remote
    assert ids(submit)[0] == ids(attempt)[0]
    assert ids(submit)[1] == attempt.parent.span_id
    assert (SpanKind.PRODUCER, SpanKind.CONSUMER) == (submit.kind, attempt.kind)
    assert handle.id == (submit.attributes or {})["taskmill.task_id"]
    assert {"taskmill.task_id": handle.id, "taskmill.name": "double", "taskmill.attempt": 1} == (
        dict(attempt.attributes or {})
    )


async def test_retry_is_an_event_and_every_attempt_shares_the_trace(
    store: RedisStore, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A retried task (stored again in Redis between attempts) keeps its trace; retry: an event."""
    client = tm.DurableClient(store, tasks.registry, tracing=DurableTracing(provider))
    handle = await client.submit(tasks.flaky, "in-process")
    assert ["ok"] == await run_until_done(store, provider, [handle])
    (submit,) = named(exporter, "taskmill.submit flaky")
    first, second = named(exporter, "taskmill.run flaky")
    assert [1, 2] == [(span.attributes or {})["taskmill.attempt"] for span in (first, second)]
    assert StatusCode.ERROR == first.status.status_code
    assert "ValueError: first attempt of in-process fails" == first.status.description
    assert ["exception", "retry"] == [event.name for event in first.events]
    assert "ValueError" == dict(first.events[0].attributes or {})["exception.type"]
    assert 0.05 == dict(first.events[1].attributes or {})["taskmill.retry.delay"]
    assert StatusCode.UNSET == second.status.status_code
    assert () == tuple(second.events)
    for attempt in (first, second):
        assert attempt.parent is not None
        assert ids(submit) == (ids(attempt)[0], attempt.parent.span_id)


async def test_final_failure_records_the_error_without_retry_event(
    store: RedisStore, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A task that fails for good ends its only attempt span with ERROR and the exception."""
    client = tm.DurableClient(store, tasks.registry, tracing=DurableTracing(provider))
    handle = await client.submit(tasks.broken)
    (outcome,) = await run_until_done(store, provider, [handle])
    assert isinstance(outcome, tm.TaskFailed)
    (attempt,) = named(exporter, "taskmill.run broken")
    assert StatusCode.ERROR == attempt.status.status_code
    assert "RuntimeError: always fails" == attempt.status.description
    (event,) = attempt.events
    assert "exception" == event.name
    assert "always fails" == dict(event.attributes or {})["exception.message"]


async def test_worker_in_another_process_continues_the_trace(
    store: RedisStore,
    redis_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    """Submit here, run in a worker process: its attempt spans are children of our submit spans."""
    spans_file = tmp_path / "spans.jsonl"
    worker = spawn_worker(redis_url, spans_file)
    try:
        client = tm.DurableClient(store, tasks.registry, tracing=DurableTracing(provider))
        handles = [
            await client.submit(tasks.double, 4),
            await client.submit(tasks.flaky, "subprocess"),
            await client.submit(tasks.broken),
        ]
        records = [await store.wait(handle.id, 30) for handle in handles]
        assert ["succeeded", "succeeded", "failed"] == [record.status for record in records]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(worker.communicate, timeout=30)
    assert 0 == worker.returncode, err
    remote = [json.loads(line) for line in spans_file.read_text(encoding="utf-8").splitlines()]

    submits = {
        (span.attributes or {})["taskmill.task_id"]: ids(span)
        for span in exporter.get_finished_spans()
    }
    assert {handle.id for handle in handles} == set(submits)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for span in remote:
        assert "CONSUMER" == span["kind"]
        assert span["parent_remote"] is True
        by_task.setdefault(span["attributes"]["taskmill.task_id"], []).append(span)
    assert [1, 2, 1] == [len(by_task[handle.id]) for handle in handles]
    for task_id, attempts in by_task.items():
        for span in attempts:
            assert submits[task_id] == (span["trace_id"], span["parent_span_id"])
    assert len({trace_id for trace_id, _ in submits.values()}) == 3  # one trace per submit

    (double,) = by_task[handles[0].id]
    first, second = by_task[handles[1].id]
    (broken,) = by_task[handles[2].id]
    assert ("UNSET", []) == (double["status"], double["events"])
    assert "ERROR" == first["status"]
    assert ["exception", "retry"] == [name for name, _ in first["events"]]
    assert {"taskmill.retry.delay": 0.05} == first["events"][1][1]
    assert ("UNSET", []) == (second["status"], second["events"])
    assert "ERROR" == broken["status"]
    assert ["exception"] == [name for name, _ in broken["events"]]
    assert "RuntimeError" == broken["events"][0][1]["exception.type"]
