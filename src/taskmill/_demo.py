"""``taskmill demo``: a short, real-time tour of what taskmill does, printed as it happens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

import taskmill as tm

__all__ = ["run_demo"]


@dataclass
class _Tour:
    """Prints timestamped lines relative to the start of the tour."""

    console: Console
    speed: float
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = self.loop.time()

    def seconds(self, value: float) -> float:
        """Scale a demo duration by the speed factor."""
        return value / self.speed

    def say(self, text: str, style: str = "") -> None:
        """Print ``text`` with the elapsed (unscaled) time in front."""
        elapsed = (self.loop.time() - self.start) * self.speed
        self.console.print(f"[dim]{elapsed:6.2f}s[/dim]  {text}", style=style)

    def heading(self, text: str) -> None:
        """Print a section heading."""
        self.console.rule(f"[bold]{text}")


async def _retries(tour: _Tour) -> None:
    tour.heading("Retries with backoff")
    calls = 0

    async def fetch(url: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"{url} did not answer (call {calls})")
        return f"200 OK from {url}"

    def on_attempt(attempt: tm.Attempt) -> None:
        outcome = "ok" if attempt.error is None else f"failed: {attempt.error}"
        tour.say(f"attempt {attempt.number} {outcome}")

    policy = tm.Retry(
        max_attempts=5,
        backoff=tm.Exponential(tour.seconds(0.2), multiplier=2.0),
        on_attempt=on_attempt,
    )
    result = await policy.run(fetch, "https://inventory.internal")
    tour.say(f"[green]result:[/green] {result}")

    async def always_down() -> None:
        raise ConnectionRefusedError("payments service is down")

    give_up = tm.Retry(
        max_attempts=3, backoff=tm.Constant(tour.seconds(0.1)), on_attempt=on_attempt
    )
    try:
        await give_up.run(always_down)
    except tm.RetriesExhausted as exc:
        tour.say(f"[red]gave up:[/red] {exc}")
        for attempt in exc.attempts:
            tour.say(f"  history: attempt {attempt.number}, {attempt.duration * 1000:.1f} ms")


async def _groups(tour: _Tour) -> None:
    tour.heading("Tagged task groups and supervised workers")
    attempts = 0

    async def connect(host: str) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError(f"{host} refused the connection")
        return f"connected to {host}"

    async def export(name: str) -> str:
        await asyncio.sleep(tour.seconds(0.3))
        return f"exported {name}"

    async def forever() -> None:
        await asyncio.sleep(3600)

    policy = tm.Retry(max_attempts=5, backoff=tm.Constant(tour.seconds(0.15)))
    async with tm.open_group(name="demo") as group:
        connecting = group.spawn("connect-db", connect, "db.internal", retry=policy)
        exporting = group.spawn("export-report", export, "q3-report")
        stuck = group.spawn("slow-sync", forever)
        await asyncio.sleep(tour.seconds(0.05))
        for tag, task in sorted(group.tasks().items()):
            tour.say(f"{tag}: {task.state.name}")
        tour.say(f"slow-sync finished within 0.1 s? {await stuck.wait(timeout=tour.seconds(0.1))}")
        stuck.cancel()
        tour.say(f"connect-db: {await connecting.result()} after {connecting.attempts} attempts")
        tour.say(f"export-report: {await exporting.result()}")
    outcome = stuck.outcome.name if stuck.outcome else "-"
    tour.say(f"slow-sync after cancel(): {stuck.state.name}, {outcome}")

    runs = 0

    async def flaky_worker() -> None:
        nonlocal runs
        runs += 1
        tour.say(f"worker run {runs} starts")
        await asyncio.sleep(tour.seconds(0.05))
        raise RuntimeError("lost the upstream connection")

    supervised = tm.supervise(
        flaky_worker,
        tm.RestartPolicy(backoff=tm.Exponential(tour.seconds(0.1)), min_delay=tour.seconds(0.05)),
        name="feed-reader",
    )
    worker = asyncio.create_task(supervised.run())
    await asyncio.sleep(tour.seconds(0.6))
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    tour.say(f"supervisor restarted the worker with backoff: {runs} runs in 0.6 s")


async def _jobs(tour: _Tour) -> None:
    tour.heading("Periodic jobs, triggers and health")
    kick = tm.Trigger()
    reindexes = 0

    async def reindex() -> None:
        nonlocal reindexes
        reindexes += 1
        tour.say(f"reindex run {reindexes}")

    async def migrate() -> None:
        tour.say("migrate: schema is current")
        tm.current_health().ok("schema is current")

    failures = 0

    async def warm_cache() -> None:
        nonlocal failures
        failures += 1
        raise OSError(f"cache node unreachable (try {failures})")

    async with tm.JobGroup("indexer") as group:
        group.add(
            tm.timer("reindex", reindex, interval=tour.seconds(0.4)),
            tm.one_shot("migrate", migrate),
            tm.one_shot(
                "warm-cache",
                warm_cache,
                retry=tm.Retry(max_attempts=2, backoff=tm.Constant(tour.seconds(0.1))),
            ),
        )
        await asyncio.sleep(tour.seconds(0.5))
        tour.say("trigger: an extra reindex now, without touching the schedule")
        kick_timer = tm.timer("reindex-on-demand", reindex, interval=0, trigger=kick)
        group.add(kick_timer)
        kick.trigger()
        kick.trigger()  # coalesces with the one above: one run
        await asyncio.sleep(tour.seconds(0.45))
        snapshot = group.health.snapshot()
        tour.say(f"health of {snapshot.name!r}: {snapshot.level.name}")
        for child in snapshot.children:
            tour.say(f"  {child.name}: {child.level.name} — {child.message}")


class _OneLine(logging.Formatter):
    """Log lines for the tour: level and message, no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"[log {record.levelname.lower()}] {record.getMessage()}"


def _log_handler(console: Console) -> logging.Handler:
    handler = logging.StreamHandler(console.file)
    handler.setFormatter(_OneLine())
    handler.setLevel(logging.WARNING)
    return handler


def _durable_registry(tour: _Tour) -> tm.TaskRegistry:
    registry = tm.TaskRegistry()
    seen: dict[str, int] = {}

    @registry.task(name="demo.resize")
    async def resize(image: str, width: int) -> str:
        await asyncio.sleep(tour.seconds(0.1))
        return f"{image} resized to {width}px"

    @registry.task(
        name="demo.charge",
        retry=tm.Retry(max_attempts=3, backoff=tm.Constant(tour.seconds(0.2))),
    )
    async def charge(order: str) -> str:
        seen[order] = seen.get(order, 0) + 1
        if seen[order] < 2:
            raise ConnectionError(f"payment gateway timeout (attempt {seen[order]})")
        return f"{order} charged"

    @registry.task(name="demo.import_feed")
    def import_feed(url: str) -> int:  # sync tasks run in the worker's thread pool
        raise ValueError(f"{url}: feed is not valid XML")

    return registry


Probe = Callable[[str], Awaitable[None]]


@contextlib.asynccontextmanager
async def _dashboard(tour: _Tour, store: Any) -> AsyncIterator[str | None]:
    """Serve the web dashboard over ``store`` on a free loopback port; yield its URL.

    Without the ``web`` extra (or when it cannot listen) say so and yield ``None``:
    the demo goes on without it.
    """
    try:
        from taskmill.web import create_dashboard  # noqa: PLC0415 - an optional extra
    except ImportError:
        tour.say(
            "web dashboard: not installed; pip install 'taskmill\\[web]' to watch these "
            "tasks in a browser"
        )
        yield None
        return
    from taskmill._cli_worker import dashboard_running  # noqa: PLC0415

    app = create_dashboard(store, title="taskmill demo", refresh=0.5)
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(dashboard_running(app, "127.0.0.1", 0))
        except OSError as exc:
            tour.say(f"[yellow]web dashboard: cannot listen on 127.0.0.1: {escape(str(exc))}")
            yield None
            return
        tour.say(f"web dashboard (live while this worker runs): [bold]{url}[/bold]")
        yield url


async def _durable(tour: _Tour, path: Path, probe: Probe | None = None) -> None:
    from taskmill.sqlite import SqliteStore  # noqa: PLC0415 - an optional extra

    tour.heading("Durable tasks: a worker on the embedded SQLite store")
    registry = _durable_registry(tour)
    tour.say(f"store: {path}")
    async with (
        await SqliteStore.open(path, lease=tour.seconds(5)) as store,
        _dashboard(tour, store) as url,
    ):
        worker = tm.DurableWorker(store, registry, concurrency=4, grace=tour.seconds(2))
        running = asyncio.create_task(worker.run())
        client = tm.DurableClient(store, registry)
        resized = await client.submit("demo.resize", "cat.png", 320)
        charged = await client.submit("demo.charge", "order-17")
        later = await client.with_options(delay=tour.seconds(0.5)).submit(
            "demo.resize", "dog.png", 640
        )
        broken = await client.submit("demo.import_feed", "https://feeds.example/news.xml")
        tour.say(f"submitted 4 tasks; one scheduled: {await later.status()}")
        tour.say(f"[green]result:[/green] {await resized.result(timeout=tour.seconds(30))}")
        tour.say(f"[green]result:[/green] {await charged.result(timeout=tour.seconds(30))}")
        tour.say(f"[green]result:[/green] {await later.result(timeout=tour.seconds(30))}")
        try:
            await broken.result(timeout=tour.seconds(30))
        except tm.TaskFailed as exc:
            tour.say(f"[red]failed:[/red] {exc.error_type}: {exc.message}")
        if probe is not None and url is not None:
            await probe(url)
        await worker.stop()
        await running
        stats = worker.statistics()
        tour.say(
            f"worker: {stats.succeeded} succeeded, {stats.retried} retried, {stats.failed} failed"
        )
        counts = {k: v for k, v in sorted((await store.statistics()).by_status.items()) if v}
        tour.say(f"stored records by status: {counts}")


async def run_demo(
    console: Console,
    *,
    speed: float = 1.0,
    db: Path | None = None,
    dashboard_probe: Probe | None = None,
) -> None:
    """Run every section of the tour in order (the durable one on ``db``, or a temp file).

    ``dashboard_probe`` (for tests) is awaited with the dashboard's URL while the
    durable worker still runs, after its tasks finished.
    """
    handler = _log_handler(console)
    logger = logging.getLogger("taskmill")
    logger.addHandler(handler)
    try:
        tour = _Tour(console, speed)
        console.print(f"[bold]taskmill {tm.__version__}[/bold] demo (speed x{speed:g})")
        await _retries(tour)
        await _groups(tour)
        await _jobs(tour)
        with tempfile.TemporaryDirectory() as tmp:
            await _durable(tour, db or Path(tmp) / "taskmill-demo.db", dashboard_probe)
        tour.heading("Done")
        kept = db if db is not None else Path("demo.db")
        hint = "" if db is not None else f"taskmill demo --db {kept}, then "
        tour.say(f"browse the durable tasks afterwards: {hint}taskmill dashboard --db {kept}")
    finally:
        logger.removeHandler(handler)
