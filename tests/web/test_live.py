"""Live parts: server-sent events, the poller's history and charts, binding rules, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from taskmill._cli_app import cli
from taskmill._errors import ConfigurationError
from taskmill.sqlite import SqliteStore
from taskmill.web import check_bind, create_dashboard, is_loopback
from taskmill.web._monitor import Monitor

pytestmark = pytest.mark.timeout(30)


class EventStream:
    """Drives one GET /events through the raw ASGI interface (no buffering client)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.sent_request = False
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, Any]:
        if not self.sent_request:
            self.sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.messages.put(message)

    def start(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"dash.test")],
            "client": ("127.0.0.1", 50000),
            "server": ("dash.test", 80),
        }
        self.task = asyncio.create_task(self.app(scope, self.receive, self.send))  # type: ignore[arg-type]

    async def start_message(self) -> dict[str, Any]:
        message = await self.messages.get()
        assert "http.response.start" == message["type"]
        return message

    async def next_event(self) -> dict[str, Any]:
        while True:
            message = await self.messages.get()
            assert "http.response.body" == message["type"]
            text = message["body"].decode()
            if text.startswith("event: stats"):
                data = text.split("data: ", 1)[1]
                parsed: dict[str, Any] = json.loads(data)
                return parsed

    async def disconnected(self) -> None:
        """The app returns once the client is gone (starlette stops the stream)."""
        assert self.task is not None
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.gone.set()
        await self.task
        assert loop.time() - began < 1.0  # not the 300 s stream limit
        while not self.messages.empty():
            assert self.messages.get_nowait().get("more_body", True)

    async def ended(self) -> None:
        """The app finished the response itself (last body message, more_body False)."""
        assert self.task is not None
        await self.task
        last = None
        while not self.messages.empty():
            last = self.messages.get_nowait()
        assert last is not None
        assert last["more_body"] is False


@pytest.fixture
async def dash(store: SqliteStore) -> AsyncIterator[Starlette]:
    app = create_dashboard(store, refresh=0.5)
    async with app.router.lifespan_context(app):
        yield app


class TestEvents:
    async def test_counters_move_and_stream_ends_on_disconnect(
        self, dash: Starlette, store: SqliteStore
    ) -> None:
        """The first event comes at once; an enqueue shows in a later one; disconnect ends it."""
        stream = EventStream(dash)
        stream.start()
        start = await stream.start_message()
        assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
        first = await stream.next_event()
        assert 0 == first["by_status"]["queued"]
        await store.enqueue(b"[]", name="new")
        while (event := await stream.next_event())["by_status"]["queued"] != 1:
            pass
        assert 1 == event["total"]
        await stream.disconnected()

    async def test_stream_ends_on_shutdown(self, store: SqliteStore) -> None:
        """Lifespan shutdown (monitor closed) ends every open stream."""
        app = create_dashboard(store, refresh=0.5)
        async with app.router.lifespan_context(app):
            stream = EventStream(app)
            stream.start()
            await stream.start_message()
            await stream.next_event()
        await stream.ended()

    async def test_stream_ends_after_max_age(self, dash: Starlette) -> None:
        """A stream lasts MAX_STREAM seconds, then the browser reconnects."""
        stream = EventStream(dash)
        loop = asyncio.get_running_loop()
        began = loop.time()
        stream.start()
        await stream.start_message()
        await stream.ended()
        assert 300.0 <= loop.time() - began < 301.0


class TestMonitor:
    @pytest.mark.virtual_time(wall_start=1_800_000_000.0)
    async def test_throughput_and_latency_buckets(self, store: SqliteStore) -> None:
        """Finishes between polls land in the current minute; run times give p50 and p95."""
        monitor = Monitor(store, refresh=10.0)
        await monitor.poll()
        for seconds in (1.0, 2.0, 3.0, 4.0):
            task_id = (await store.enqueue(b"[]", name="t")).task_id
            [claim] = await store.claim(["default"], worker="w")
            await asyncio.sleep(seconds)
            await store.ack(task_id, claim.token, None)
        await monitor.poll()
        buckets = monitor.buckets()
        assert 60 == len(buckets)
        last = buckets[-1]
        assert 4 == last.finished
        assert 4 == last.samples
        assert 2.0 == last.p50
        assert 4.0 == last.p95
        assert 0 == sum(b.finished for b in buckets[:-1])
        rates = monitor.queue_rates()
        assert rates["default"] > 0

    async def test_failed_poll_is_published_not_raised(self, tmp_path: Path) -> None:
        """A store error becomes a snapshot with the reason (the page shows it)."""
        store = await SqliteStore.open(tmp_path / "gone.db")
        await store.close()
        monitor = Monitor(store, refresh=1.0)
        snapshot = await monitor.poll()
        assert snapshot.stats is None
        assert snapshot.error is not None
        assert {"at": snapshot.at, "error": snapshot.error} == snapshot.as_event()

    async def test_history_is_bounded(self, store: SqliteStore) -> None:
        """The ring buffer keeps about an hour of polls."""
        monitor = Monitor(store, refresh=60.0)
        for _ in range(200):
            await monitor.poll()
        assert 62 == len(monitor._history.points)


class TestBinding:
    @pytest.mark.parametrize(
        ("host", "loopback"),
        [
            ("127.0.0.1", True),
            ("127.3.4.5", True),
            ("localhost", True),
            ("::1", True),
            ("[::1]", True),
            ("0.0.0.0", False),
            ("::", False),
            ("192.168.1.10", False),
            ("example.com", False),
        ],
    )
    def test_is_loopback(self, host: str, loopback: bool) -> None:
        """Only loopback addresses (and the name localhost) count as loopback."""
        assert loopback == is_loopback(host)

    async def test_off_loopback_needs_a_token(self, store: SqliteStore) -> None:
        """check_bind refuses 0.0.0.0 without a token and allows it with one."""
        with pytest.raises(ConfigurationError, match="not a loopback address"):
            check_bind(create_dashboard(store), "0.0.0.0")
        check_bind(create_dashboard(store), "127.0.0.1")
        check_bind(create_dashboard(store, token="s3cret-token"), "0.0.0.0")

    def test_cli_refuses_off_loopback_without_token(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One Error line, exit code 2, nothing served."""
        monkeypatch.delenv("TASKMILL_DASHBOARD_TOKEN", raising=False)
        result = CliRunner().invoke(
            cli, ["dashboard", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"]
        )
        assert 2 == result.exit_code
        assert "a token is required" in result.output
        assert 1 == len(result.output.strip().splitlines())

    def test_cli_missing_store_file(self, tmp_path: Path) -> None:
        """A missing --db file is one Error line."""
        result = CliRunner().invoke(cli, ["dashboard", "--db", str(tmp_path / "none.db")])
        assert 2 == result.exit_code
        assert "no store at" in result.output

    def test_cli_db_and_redis_exclusive(self, tmp_path: Path) -> None:
        """--db and --redis together are refused."""
        args = ["dashboard", "--db", "x.db", "--redis", "redis://127.0.0.1:1/0"]
        result = CliRunner().invoke(cli, args)
        assert 2 == result.exit_code
        assert "--db and --redis name two stores" in result.output
