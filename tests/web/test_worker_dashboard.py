"""`taskmill worker --dashboard-port`: the worker process serves the dashboard over its store."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

import taskmill as tm
from taskmill.redis import RedisStore
from taskmill.sqlite import SqliteStore

from . import worker_dashboard_tasks as tasks

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(60)]

HERE = Path(__file__).parent
SCRUBBED = ("TASKMILL_DASHBOARD_TOKEN", "TASKMILL_DB", "TASKMILL_REDIS_URL")


async def spawn(*args: str, token: str | None = None) -> asyncio.subprocess.Process:
    """Start ``taskmill worker`` on the test tasks (``token``: TASKMILL_DASHBOARD_TOKEN)."""
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED}
    if token is not None:
        env["TASKMILL_DASHBOARD_TOKEN"] = token
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmill",
        "worker",
        "worker_dashboard_tasks:registry",
        *args,
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def dashboard_url(process: asyncio.subprocess.Process) -> str:
    """Read the worker's log until it says where the dashboard listens."""
    assert process.stderr is not None
    seen: list[str] = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        if not line:
            raise AssertionError(f"the worker exited before serving the dashboard: {seen}")
        seen.append(line)
        if " dashboard on " in line:
            return line.rsplit(" ", 1)[1].strip()


@pytest.fixture(params=["sqlite", "redis"])
async def store_args(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AbstractAsyncContextManager[SqliteStore | RedisStore], list[str]]]:
    """(an opened store for the test, the worker's store options) for SQLite and Redis."""
    if request.param == "sqlite":
        db = tmp_path / "tasks.db"
        yield await SqliteStore.open(db), ["--db", str(db)]
    else:
        url = request.getfixturevalue("redis_url")
        yield await RedisStore.open(url), ["--redis", url]


async def test_worker_serves_the_dashboard_over_its_store(
    store_args: tuple[AbstractAsyncContextManager[SqliteStore | RedisStore], list[str]],
) -> None:
    """GET / answers 200 and shows the worker's running task and a queue it does not consume."""
    opened, args = store_args
    async with opened as store:
        client = tm.DurableClient(store, tasks.registry)
        running = await client.submit(tasks.hold, 600.0)
        await client.with_options(queue="elsewhere").submit(tasks.hold, 1.0)
        process = await spawn(*args, "--dashboard-port", "0", "--grace", "0.2", "--lease", "5")
        try:
            url = await dashboard_url(process)
            assert url.startswith("http://127.0.0.1:")
            while await running.status() != "running":  # noqa: ASYNC110 - a real process
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                page = await http.get("/")
            assert 200 == page.status_code
            assert "elsewhere" in page.text  # the queue the worker leaves alone
            assert running.id in page.text  # the task the worker runs, on the overview
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 20)
            assert 0 == process.returncode, err.decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        with pytest.raises(httpx.ConnectError):  # the dashboard stopped with the worker
            async with httpx.AsyncClient(base_url=url, timeout=2) as http:
                await http.get("/")


async def test_off_loopback_without_token_is_refused(tmp_path: Path) -> None:
    """Binding another address without a token: one Error line, exit 2, nothing served."""
    process = await spawn("--db", str(tmp_path / "t.db"), "--dashboard-port", "0",
                          "--dashboard-host", "0.0.0.0")  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert 2 == process.returncode
    expected = (
        "Error: --dashboard-host 0.0.0.0 is not a loopback address: a token is required there "
        "(--dashboard-token or TASKMILL_DASHBOARD_TOKEN), or bind 127.0.0.1"
    )
    assert [expected] == err.decode().splitlines()
    assert not (tmp_path / "t.db").exists()  # refused before the store was opened


async def test_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    """A dashboard port already taken stops the worker at start with exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await spawn("--db", str(tmp_path / "t.db"), "--dashboard-port", str(port))
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert 2 == process.returncode
    last = err.decode().splitlines()[-1]
    assert last.startswith(f"Error: --dashboard-port: cannot listen on 127.0.0.1:{port}: ")


async def test_token_from_the_environment_guards_the_dashboard(tmp_path: Path) -> None:
    """TASKMILL_DASHBOARD_TOKEN reaches the worker's dashboard: 401 without it, 200 with it."""
    db = str(tmp_path / "t.db")
    process = await spawn("--db", db, "--dashboard-port", "0", token="worker-secret-1")
    try:
        url = await dashboard_url(process)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert 401 == (await http.get("/")).status_code
            bearer = {"authorization": "Bearer worker-secret-1"}
            assert 200 == (await http.get("/", headers=bearer)).status_code
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 20)
    assert 0 == process.returncode
