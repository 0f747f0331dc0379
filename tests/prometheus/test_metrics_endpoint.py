"""The /metrics endpoint over real HTTP: store gauges at scrape time, bounded when slow."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import taskmill as tm
from taskmill.prometheus import MetricsServer, TaskMetrics
from taskmill.sqlite import SqliteStore

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(30)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(server: MetricsServer) -> tuple[Samples, float]:
    """GET /metrics from another thread (as Prometheus would); return samples and seconds."""

    def get() -> tuple[str, float]:
        began = time.monotonic()
        url = f"http://{server.host}:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert 200 == response.status
            return response.read().decode(), time.monotonic() - began

    text, took = await asyncio.to_thread(get)
    return parse(text), took


async def test_scrape_reads_the_store_gauges_by_queue(tmp_path: Path) -> None:
    """Queued, scheduled/retrying and running counts per queue, read when scraped."""
    metrics = TaskMetrics(CollectorRegistry())
    async with await SqliteStore.open(tmp_path / "g.db") as store:
        for _ in range(3):
            await store.enqueue(b"[]", name="a", queue="mail")
        await store.enqueue(b"[]", name="a", queue="mail", run_at=time.time() + 3600)
        await store.enqueue(b"[]", name="b", queue="default")
        await store.claim(["default"], worker="w")
        metrics.watch_store(store)
        with metrics.serve(0) as server:
            assert "127.0.0.1" == server.host
            samples, _ = await scrape(server)
            await store.enqueue(b"[]", name="a", queue="mail")
            again, _ = await scrape(server)
    assert 3.0 == samples[("taskmill_queue_depth", (("queue", "mail"),))]
    assert 1.0 == samples[("taskmill_tasks_scheduled", (("queue", "mail"),))]
    assert 1.0 == samples[("taskmill_tasks_running", (("queue", "default"),))]
    assert 1.0 == samples[("taskmill_store_up", ())]
    assert 4.0 == again[("taskmill_queue_depth", (("queue", "mail"),))]


class SlowStore:
    """A store whose statistics() never answers (a hung database)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def statistics(self) -> Any:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()


async def test_a_hung_store_does_not_hang_the_scrape() -> None:
    """After scrape_timeout the store's gauges are left out and store_up is 0."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry, scrape_timeout=0.3)
    metrics.attempt_finished("t", "default", "succeeded", 0.01)
    store = SlowStore()
    metrics.watch_store(store)
    with metrics.serve(0) as server:
        samples, took = await scrape(server)
    assert took < 3.0
    assert 0.0 == samples[("taskmill_store_up", ())]
    assert not [key for key in samples if key[0] == "taskmill_queue_depth"]
    labels = (("queue", "default"), ("status", "succeeded"), ("task", "t"))
    assert 1.0 == samples[("taskmill_tasks_total", labels)]  # the rest of the scrape is there
    await asyncio.wait_for(store.cancelled.wait(), 5)  # the abandoned read was cancelled


async def test_a_scrape_on_the_loop_thread_answers_from_the_last_read(tmp_path: Path) -> None:
    """An in-loop exporter (ASGI) cannot wait: it gets the previous read and starts the next."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    async with await SqliteStore.open(tmp_path / "l.db") as store:
        await store.enqueue(b"[]", name="a")
        metrics.watch_store(store)
        first = parse(generate_latest(registry).decode())
        assert not [key for key in first if key[0] == "taskmill_queue_depth"]
        for _ in range(100):
            await asyncio.sleep(0.01)
            second = parse(generate_latest(registry).decode())
            if ("taskmill_queue_depth", (("queue", "default"),)) in second:
                break
        assert 1.0 == second[("taskmill_queue_depth", (("queue", "default"),))]


def test_a_busy_port_is_a_configuration_error() -> None:
    metrics = TaskMetrics(CollectorRegistry())
    with metrics.serve(0) as server, pytest.raises(tm.ConfigurationError, match="cannot serve"):
        metrics.serve(server.port)
