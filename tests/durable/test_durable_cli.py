"""``taskmill worker MODULE:ATTR`` as a real process: submit from here, SIGTERM, exit codes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import durable_tasks as tasks
import pytest

import taskmill as tm
from taskmill._cli_worker import load_registry
from taskmill.sqlite import SqliteStore

HERE = Path(__file__).parent


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskmill", "worker", *args],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.real_time
async def test_worker_process_runs_tasks_and_stops_on_sigterm(tmp_path: Path) -> None:
    """A submit from this process is run by the worker process; SIGTERM exits 0 within grace."""
    db = tmp_path / "tasks.db"
    grace = 2.0
    proc = spawn("durable_tasks:registry", "--db", str(db), "--grace", str(grace), "--lease", "5")
    try:
        async with await SqliteStore.open(db) as store:
            client = tm.DurableClient(store, tasks.registry)
            handle = await client.submit(tasks.add, 40, 2)
            assert 42 == await handle.result(timeout=20)
            long = await client.submit(tasks.sleeper, 600.0)
            while await long.status() != "running":  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            returncode = await asyncio.to_thread(proc.wait, grace + 5)
            took = time.monotonic() - began
            assert 0 == returncode
            assert took <= grace + 1.0
            # Released, not failed: back in the queue with the same attempt number.
            assert "queued" == await long.status()
            await long.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.real_time
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:registry", "cannot import module 'no_such_module'"),
        ("durable_tasks:missing", "has no attribute 'missing'"),
        ("durable_tasks:add", "not a taskmill.TaskRegistry"),
        ("durable_tasks", "expected MODULE:ATTR"),
    ],
)
def test_bad_target_is_one_line_and_exit_2(tmp_path: Path, target: str, message: str) -> None:
    """A bad MODULE:ATTR prints one clear line (no traceback) and exits 2."""
    proc = spawn(target, "--db", str(tmp_path / "t.db"))
    _, err = proc.communicate(timeout=30)
    assert 2 == proc.returncode
    assert message in err
    assert "Traceback" not in err
    assert 1 == len(err.strip().splitlines())


def test_load_registry_accepts_object_with_registry() -> None:
    """An object with a .registry attribute is accepted."""
    assert tasks.registry is load_registry("durable_tasks:app")
    assert tasks.registry is load_registry("durable_tasks:registry")
