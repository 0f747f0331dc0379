"""A traced ``DurableWorker`` process over ``RedisStore`` that writes its spans as JSON on exit.

The worker records spans with the OpenTelemetry SDK's in-memory exporter and runs
the product's worker loop (``_serve_alone``: SIGTERM stops it gracefully). After it
stopped, every finished span is written to SPANS, one JSON object per line, so the
test process can compare them with its own submit spans.

Usage: python traced_worker.py URL SPANS
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskmill as tm
from taskmill._cli_worker import _serve_alone
from taskmill.otel import DurableTracing
from taskmill.redis import RedisStore

# This script's directory is on sys.path when it runs; the tests import it as tests.otel.otel_tasks.
registry: tm.TaskRegistry = importlib.import_module("otel_tasks").registry


def as_json(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_span_id": None if parent is None else parent.span_id,
        "parent_remote": None if parent is None else parent.is_remote,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [[event.name, dict(event.attributes or {})] for event in span.events],
    }


async def main(url: str) -> list[str]:
    """Run the worker until SIGTERM; return its finished spans as JSON lines."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with await RedisStore.open(url, lease=5.0) as store:
        worker = tm.DurableWorker(
            store,
            registry,
            lease=5.0,
            grace=5.0,
            max_poll_interval=0.05,
            tracing=DurableTracing(provider),
        )
        await _serve_alone(worker, None)
    return [json.dumps(as_json(span)) + "\n" for span in exporter.get_finished_spans()]


if __name__ == "__main__":
    Path(sys.argv[2]).write_text("".join(asyncio.run(main(sys.argv[1]))), encoding="utf-8")
