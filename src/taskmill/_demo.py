"""``taskmill demo``: a short, real-time tour of what taskmill does, printed as it happens."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from rich.console import Console

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


async def run_demo(console: Console, *, speed: float = 1.0) -> None:
    """Run every section of the tour in order."""
    handler = _log_handler(console)
    logger = logging.getLogger("taskmill")
    logger.addHandler(handler)
    try:
        tour = _Tour(console, speed)
        console.print(f"[bold]taskmill {tm.__version__}[/bold] demo (speed x{speed:g})")
        await _retries(tour)
        await _groups(tour)
        await _jobs(tour)
        tour.heading("Done")
    finally:
        logger.removeHandler(handler)
