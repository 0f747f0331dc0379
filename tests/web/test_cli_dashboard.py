"""`taskmill dashboard` as a process: prints its URL, serves, stops on SIGINT mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from taskmill.sqlite import SqliteStore

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(60)]


async def test_serves_and_stops_with_an_event_stream_open(tmp_path: Path) -> None:
    """The URL line comes first; SIGINT ends the open SSE stream and the process promptly."""
    db = tmp_path / "tasks.db"
    async with await SqliteStore.open(db) as store:
        await store.enqueue(b"[]", name="cli.visible")
    env = {**os.environ, "TASKMILL_DASHBOARD_TOKEN": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmill",
        "dashboard",
        "--db",
        str(db),
        "--port",
        "0",
        "--refresh",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith(f"taskmill dashboard for {db}: http://127.0.0.1:")
        url = line.split(": ", 1)[1].split()[0]
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            page = await client.get("tasks")
            assert 200 == page.status_code
            assert "cli.visible" in page.text
            async with client.stream("GET", "events") as stream:
                lines = stream.aiter_lines()
                while not (await anext(lines)).startswith("event: stats"):
                    pass
                process.send_signal(signal.SIGINT)
                # Well before uvicorn's 5 s graceful-shutdown backstop: the monitor ended it.
                async with asyncio.timeout(3):
                    async for _ in lines:
                        pass
        assert 0 == await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
