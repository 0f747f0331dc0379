"""``taskmill worker --metrics-port`` as a real process (SQLite and Redis), scraped over HTTP."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import taskmill as tm
from taskmill.redis import RedisStore
from taskmill.sqlite import SqliteStore

from . import metrics_tasks as tasks

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(60)]

HERE = Path(__file__).parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskmill", "worker", "metrics_tasks:registry", *args],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def scrape(port: int, ready: Callable[[Samples], bool]) -> Samples:
    """Scrape http://127.0.0.1:PORT/metrics until ``ready`` holds (the worker is starting)."""

    def get() -> str:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    samples: Samples = {}
    for _ in range(200):
        try:
            text = await asyncio.to_thread(get)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        if ready(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"metrics never became ready: {samples}")


def total(queue: str, task: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = (("queue", queue), ("status", status), ("task", task))
    return ("taskmill_tasks_total", labels)


@pytest.fixture(params=["sqlite", "redis"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[list[str], Callable[[], AbstractAsyncContextManager[Any]]]:
    """The worker's store option and a way to open the same store here."""
    if request.param == "sqlite":
        db = tmp_path / "tasks.db"

        async def open_sqlite() -> Any:
            return await SqliteStore.open(db)

        return ["--db", str(db)], _opened(open_sqlite)
    url = request.getfixturevalue("redis_url")

    async def open_redis() -> Any:
        return await RedisStore.open(url)

    return ["--redis", url], _opened(open_redis)


def _opened(opener: Callable[[], Any]) -> Callable[[], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def opened() -> AsyncIterator[Any]:
        async with await opener() as store:
            yield store

    return opened


async def test_worker_exports_task_metrics_and_logs_its_drain(
    backend: tuple[list[str], Callable[[], AbstractAsyncContextManager[Any]]],
) -> None:
    """Counters from real attempts, store gauges, then a SIGTERM drain logged as it goes."""
    store_args, open_store = backend
    port = free_port()
    proc = spawn(*store_args, "--metrics-port", str(port), "--grace", "1.5", "--lease", "5")
    try:
        async with open_store() as store:
            client = tm.DurableClient(store, tasks.registry)
            assert "done" == await (await client.submit(tasks.ok)).result(timeout=20)
            assert "second time lucky" == await (await client.submit(tasks.flaky, "x")).result(
                timeout=20
            )
            with pytest.raises(tm.TaskFailed):
                await (await client.submit(tasks.boom)).result(timeout=20)
            await client.with_options(queue="nobody").submit(tasks.ok)
            samples = await scrape(port, lambda s: s.get(total("default", "boom", "failed")) == 1.0)
            assert 1.0 == samples[total("default", "ok", "succeeded")]
            assert 1.0 == samples[total("default", "flaky", "retried")]
            assert 1.0 == samples[total("default", "flaky", "succeeded")]
            retries = ("taskmill_task_retries_total", (("queue", "default"), ("task", "flaky")))
            assert 1.0 == samples[retries]
            assert 1.0 == samples[("taskmill_queue_depth", (("queue", "nobody"),))]
            assert 1.0 == samples[("taskmill_store_up", ())]
            long = await client.submit(tasks.ok, 600.0)
            while await long.status() != "running":  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
            running = await scrape(
                port, lambda s: s.get(("taskmill_tasks_running", (("queue", "default"),))) == 1
            )
            assert running
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(proc.communicate, timeout=20)
            assert 0 == proc.returncode, err
            assert "queued" == await long.status()  # released at the end of the grace
            await long.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err
    assert "draining: 1 task(s) still running, 0s since the stop" in err
    assert "draining: 1 task(s) still running, 1s since the stop" in err


def test_a_busy_metrics_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = spawn("--db", str(tmp_path / "t.db"), "--metrics-port", str(port))
        _, err = proc.communicate(timeout=30)
    assert 2 == proc.returncode
    assert [f"Error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"] == (
        err.strip().splitlines()
    )
