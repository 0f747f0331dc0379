"""Click commands behind ``taskmill`` (imported only when the CLI runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from taskmill._version import __version__

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskmill")
def cli() -> None:
    """taskmill: background work for asyncio that keeps running."""


@cli.command()
@click.option(
    "--speed",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Time multiplier: 2 runs the demo twice as fast.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for the durable part (default: a temporary file, removed afterwards).",
)
def demo(speed: float, db: Path | None) -> None:
    """Run a short tour of taskmill with example tasks, printing what happens."""
    from taskmill._demo import run_demo  # noqa: PLC0415 - keep `taskmill --help` fast

    console = Console(highlight=False)
    asyncio.run(run_demo(console, speed=speed, db=db))


@cli.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option("--db", default="taskmill.db", show_default=True, help="The SQLite store file.")
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queues", default="default", show_default=True, help="Comma-separated queues.")
@click.option("--grace", type=click.FloatRange(min=0.0), default=30.0, show_default=True)
@click.option("--lease", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
def worker(
    target: str, *, db: str, concurrency: int, queues: str, grace: float, lease: float
) -> None:
    """Run registered tasks from the SQLite store; SIGTERM stops gracefully (twice: at once).

    MODULE:ATTR names a taskmill.TaskRegistry (or an object with a .registry).
    """
    import logging  # noqa: PLC0415 - keep `taskmill --help` fast

    from taskmill._cli_worker import WorkerOptions, load_registry, serve  # noqa: PLC0415
    from taskmill._errors import ConfigurationError  # noqa: PLC0415

    try:
        registry = load_registry(target)
        names = tuple(name.strip() for name in queues.split(",") if name.strip())
        options = WorkerOptions(
            db=db, queues=names, concurrency=concurrency, grace=grace, lease=lease
        )
    except ConfigurationError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(registry, options))
