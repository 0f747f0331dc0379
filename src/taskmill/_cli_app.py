"""Click commands behind ``taskmill`` (imported only when the CLI runs)."""

from __future__ import annotations

import asyncio

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
def demo(speed: float) -> None:
    """Run a short tour of taskmill with example tasks, printing what happens."""
    from taskmill._demo import run_demo  # noqa: PLC0415 - keep `taskmill --help` fast

    console = Console(highlight=False)
    asyncio.run(run_demo(console, speed=speed))
