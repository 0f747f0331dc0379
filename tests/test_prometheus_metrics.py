from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from taskmill import JobGroup, Trigger, one_shot, timer
from taskmill.prometheus import PrometheusMetrics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_job_runs_errors_and_triggers_are_exported() -> None:
    """After real job runs the registry holds the documented metric names and values."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    kick = Trigger()

    async def failing() -> None:
        await asyncio.sleep(0.2)
        raise ValueError("timer run fails")

    async def fine() -> None:
        await asyncio.sleep(0.3)

    kick.trigger()
    kick.trigger()
    kick.trigger()
    group = JobGroup(metrics=metrics)
    group.add(timer("reindex", failing, interval=60, trigger=kick))
    group.add(one_shot("migrate", fine))
    await asyncio.sleep(4)
    await group.start()
    await asyncio.sleep(1)
    await group.stop()

    run = "taskmill_job_run_duration_seconds"
    assert sample(registry, f"{run}_count", kind="timer", job="reindex") == 1.0
    assert sample(registry, f"{run}_sum", kind="timer", job="reindex") == pytest.approx(0.2)
    assert sample(registry, f"{run}_count", kind="one_shot", job="migrate") == 1.0
    assert sample(registry, f"{run}_sum", kind="one_shot", job="migrate") == pytest.approx(0.3)
    errors = "taskmill_job_errors_total"
    assert sample(registry, errors, kind="timer", job="reindex") == 1.0
    assert sample(registry, errors, kind="one_shot", job="migrate") is None
    latency = "taskmill_trigger_latency_seconds"
    assert sample(registry, f"{latency}_count", job="reindex") == 1.0
    assert sample(registry, f"{latency}_sum", job="reindex") == 4.0
    assert sample(registry, "taskmill_trigger_folded_total", job="reindex") == 2.0
    text = generate_latest(registry).decode()
    assert "# TYPE taskmill_job_run_duration_seconds histogram" in text
    assert "# TYPE taskmill_job_errors_total counter" in text
    assert "# TYPE taskmill_trigger_folded_total counter" in text


def test_namespace_and_repr() -> None:
    """The namespace prefixes every metric name."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, namespace="app")
    metrics.job_run("timer", "t", 0.1)
    metrics.trigger("t", 0.0, 0)
    assert sample(registry, "app_job_run_duration_seconds_count", kind="timer", job="t") == 1.0
    assert sample(registry, "app_trigger_folded_total", job="t") == 0.0
    assert repr(metrics) == "PrometheusMetrics(namespace='app')"


def test_missing_prometheus_client_gives_an_install_hint() -> None:
    """Without prometheus-client, importing taskmill.prometheus says what to install."""
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "import taskmill\n"
        "try:\n"
        "    import taskmill.prometheus\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'taskmill[prometheus]'" in out
