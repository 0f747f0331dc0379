"""``taskmill worker MODULE:APP``: a whole App around the durable worker, /health and --check."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import durable_tasks
import pytest
import worker_app_module as mod

import taskmill as tm
from taskmill._cli_worker import load_target
from taskmill._errors import ConfigurationError, StateError
from taskmill._health_server import HealthServer, app_probe, check_health, worker_probe
from taskmill.sqlite import SqliteStore

HERE = Path(__file__).parent
GRACE = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskmill", *args],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


async def wait_healthy(port: int, proc: subprocess.Popen[str]) -> tuple[int, bytes]:
    deadline = time.monotonic() + 20
    while True:
        try:
            return await check_health(port, timeout=2)
        except OSError:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=10)


@pytest.mark.real_time
async def test_worker_runs_app_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The app's jobs run next to the worker; /health is 200 JSON; SIGTERM exits 0 in time."""
    port = free_port()
    db = str(tmp_path / "t.db")
    proc = spawn("worker", "worker_app_module:app", "--db", db, "--health-port", str(port))
    # The worker's grace is min(--grace (30), 0.9 * the app's stop_timeout (5)) = 4.5 s.
    try:
        status, body = await wait_healthy(port, proc)
        assert 200 == status
        health = json.loads(body)
        assert "worker-app" == health["name"]
        names = {child["name"] for child in health["children"]}
        assert {"jobs", "durable-worker", "workers"} <= names
        async with await SqliteStore.open(db) as store:
            handle = await tm.DurableClient(store, mod.registry).submit(mod.double, 21)
            assert 42 == await handle.result(timeout=20)
        check = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "taskmill", "check", "--port", str(port)],
            capture_output=True,
            timeout=30,
        )
        assert 0 == check.returncode
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        returncode = await asyncio.to_thread(proc.wait, 4.5 + 5)
        assert 0 == returncode
        assert time.monotonic() - began <= 4.5 + 1.0
    finally:
        _, err = finish(proc)
    assert "Traceback" not in err


@pytest.mark.real_time
async def test_sigterm_with_running_task_releases_it_within_grace(tmp_path: Path) -> None:
    """A task still running at SIGTERM is released after the grace, and the exit is 0."""
    db = str(tmp_path / "t.db")
    proc = spawn("worker", "durable_tasks:registry", "--db", db, "--grace", str(GRACE))
    try:
        async with await SqliteStore.open(db) as store:
            client = tm.DurableClient(store, durable_tasks.registry)
            long = await client.submit(durable_tasks.sleeper, 600.0)
            while await long.status() != "running":  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            assert 0 == await asyncio.to_thread(proc.wait, GRACE + 5)
            assert time.monotonic() - began <= GRACE + 1.0
            assert "queued" == await long.status()
    finally:
        finish(proc)


@pytest.mark.real_time
def test_fatal_job_error_exits_1(tmp_path: Path) -> None:
    """A shutdown_on_failure job that fails stops the app; the worker exits with code 1."""
    proc = spawn(
        "worker",
        "worker_app_module:app",
        "--db",
        str(tmp_path / "t.db"),
        env={"WORKER_APP_FATAL": "1"},
    )
    _, err = proc.communicate(timeout=30)
    assert 1 == proc.returncode
    assert "fatal job error" in err


@pytest.mark.real_time
def test_check_exits_1_when_nothing_listens() -> None:
    """``taskmill check`` and ``worker --check`` fail (exit 1) with no endpoint."""
    port = str(free_port())
    check = spawn("check", "--port", port)
    check.communicate(timeout=30)
    assert 1 == check.returncode
    flag = spawn("worker", "ignored:target", "--check", "--health-port", port)
    flag.communicate(timeout=30)
    assert 1 == flag.returncode


@pytest.mark.real_time
def test_check_needs_health_port() -> None:
    """``--check`` without ``--health-port`` is a usage error (exit 2)."""
    proc = spawn("worker", "worker_app_module:app", "--check")
    _, err = proc.communicate(timeout=30)
    assert 2 == proc.returncode
    assert "--check needs --health-port" in err


# -- target resolution ---------------------------------------------------------------------
def test_load_target_app_takes_the_module_registry() -> None:
    """An App target runs with its module's ``registry``."""
    found = load_target("worker_app_module:app")
    assert mod.app is found.app
    assert mod.registry is found.registry


def test_load_target_tasks_option_wins() -> None:
    """``--tasks`` names the registry explicitly."""
    found = load_target("worker_app_module:app", "durable_tasks:registry")
    assert mod.app is found.app
    assert durable_tasks.registry is found.registry


def test_load_target_registry_has_no_app() -> None:
    """A registry target runs without an app."""
    found = load_target("worker_app_module:registry")
    assert found.app is None
    assert mod.registry is found.registry


def test_load_target_app_without_registry_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """An App whose module has no registry asks for --tasks."""
    monkeypatch.delattr(mod, "registry")
    with pytest.raises(ConfigurationError, match="pass --tasks"):
        load_target("worker_app_module:app")


# -- the health server ---------------------------------------------------------------------
async def get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


@pytest.mark.real_time
async def test_health_server_200_while_ok_and_503_when_degraded() -> None:
    """200 with the health JSON while nothing is DEGRADED; 503 once a scope is."""
    app = tm.App("probe-app")
    jobs = app.health.scope("jobs")
    jobs.ok("fine")
    one = jobs.scope("one")
    async with HealthServer(app_probe(app), port=0) as server:
        status, body = await check_health(server.port)
        assert 200 == status
        assert "probe-app" == json.loads(body)["name"]
        one.degraded("broken", RuntimeError("x"))
        status, body = await check_health(server.port)
        assert 503 == status
        assert "degraded" == json.loads(body)["level"]
        one.ok("again")
        assert 200 == (await check_health(server.port))[0]


@pytest.mark.real_time
async def test_health_server_other_paths_and_methods() -> None:
    """Another path is 404, another method 405."""
    app = tm.App("probe-app")
    async with HealthServer(app_probe(app), port=0) as server:
        assert (await get(server.port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        post = await get(server.port, b"POST /health HTTP/1.1\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405")
        assert "requests=2" in repr(server)


@pytest.mark.real_time
async def test_worker_probe_reports_statistics(tmp_path: Path) -> None:
    """Without an app, /health is the worker's statistics: 200 until it stops."""
    async with await SqliteStore.open(tmp_path / "t.db") as store:
        worker = tm.DurableWorker(store, mod.registry)
        async with HealthServer(worker_probe(worker), port=0) as server:
            status, body = await check_health(server.port)
            assert 200 == status
            assert ["default"] == json.loads(body)["queues"]
            await worker.stop()
            run = asyncio.create_task(worker.run())
            await run
            status, body = await check_health(server.port)
            assert 503 == status
            assert "stopped" == json.loads(body)["state"]


async def test_health_server_rejects_bad_port_and_double_start() -> None:
    """A bad port is a ConfigurationError at construction; a second start a StateError."""
    app = tm.App()
    with pytest.raises(ConfigurationError, match="port"):
        HealthServer(app_probe(app), port=70000)
    server = HealthServer(app_probe(app), port=0)
    await server.start()
    try:
        with pytest.raises(StateError):
            await server.start()
    finally:
        await server.stop()
