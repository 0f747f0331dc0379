"""Click commands behind ``taskmill`` (imported only when the CLI runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from taskmill._cli_store import StoreTarget, store_options
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
@store_options
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queues", default="default", show_default=True, help="Comma-separated queues.")
@click.option("--grace", type=click.FloatRange(min=0.0), default=30.0, show_default=True)
@click.option("--lease", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
@click.option("--tasks", default=None, metavar="MODULE:ATTR", help="The registry, for an App.")
@click.option(
    "--health-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve GET /health on 127.0.0.1:PORT (default: off).",
)
@click.option("--check", is_flag=True, help="Query --health-port and exit 0 (healthy) or 1.")
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (needs taskmill[prometheus]).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address --metrics-port binds (0.0.0.0: every interface).",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve the web dashboard over the same store on HOST:PORT (needs taskmill[web]).",
)
@click.option(
    "--dashboard-host",
    default="127.0.0.1",
    show_default=True,
    help="The address --dashboard-port binds; off loopback it needs --dashboard-token.",
)
@click.option(
    "--dashboard-token",
    envvar="TASKMILL_DASHBOARD_TOKEN",
    default=None,
    help="Require this token (at least 8 characters) on the dashboard. "
    "Env: TASKMILL_DASHBOARD_TOKEN.",
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (stderr).")
def worker(
    target: str,
    *,
    store: StoreTarget,
    concurrency: int,
    queues: str,
    grace: float,
    lease: float,
    tasks: str | None,
    health_port: int | None,
    check: bool,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    dashboard_port: int | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_token: str | None = None,
    log_json: bool = False,
) -> None:
    """Run registered tasks from the store; SIGTERM stops gracefully (twice: at once).

    The store is the SQLite file --db (default taskmill.db, created if missing) or the
    Redis server --redis URL.

    MODULE:ATTR names a taskmill.TaskRegistry (or an object with a .registry), or a
    taskmill.App whose module has a `registry` (or `tasks`) TaskRegistry, or --tasks.
    Exit code 0 after a clean stop, 1 when the app stopped on an error, 2 on bad input.
    """
    import logging  # noqa: PLC0415 - keep `taskmill --help` fast

    from taskmill._cli_worker import WorkerOptions, load_target, serve  # noqa: PLC0415
    from taskmill._errors import ConfigurationError  # noqa: PLC0415

    if check:
        if health_port is None:
            click.echo("Error: --check needs --health-port", err=True)
            raise SystemExit(2)
        _probe(health_port, timeout=5.0)
    if dashboard_port is not None:
        _check_dashboard_bind(dashboard_host, dashboard_token)
    try:
        found = load_target(target, tasks)
        names = tuple(name.strip() for name in queues.split(",") if name.strip())
        options = WorkerOptions(
            db=str(store.db or "taskmill.db"),
            redis=store.redis,
            queues=names,
            concurrency=concurrency,
            grace=grace,
            lease=lease,
            health_port=health_port,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            dashboard_port=dashboard_port,
            dashboard_host=dashboard_host,
            dashboard_token=dashboard_token or None,
        )
    except ConfigurationError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    if log_json:
        from taskmill._logging import configure_logging  # noqa: PLC0415

        configure_logging(logging.INFO, json=True)
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    try:
        code = asyncio.run(serve(found.registry, options, found.app))
    except ConfigurationError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    raise SystemExit(code)


@cli.command()
@click.option("--port", type=click.IntRange(min=1, max=65535), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.01), default=5.0, show_default=True)
def check(port: int, host: str, timeout: float) -> None:
    """Query a worker's health endpoint: exit 0 when healthy (HTTP 200), else 1."""
    _probe(port, host=host, timeout=timeout)


_SHELLS = ("bash", "zsh", "fish")


@cli.command()
@click.argument("shell", type=click.Choice(_SHELLS), required=False)
def completion(shell: str | None) -> None:
    """Print the shell completion script for SHELL (default: from $SHELL).

    Enable it for bash with: eval "$(taskmill completion bash)" (in ~/.bashrc).
    """
    import os  # noqa: PLC0415 - keep `taskmill --help` fast

    from click.shell_completion import get_completion_class  # noqa: PLC0415

    if shell is None:
        shell = Path(os.environ.get("SHELL", "")).name
        if shell not in _SHELLS:
            raise click.UsageError(f"name the shell: taskmill completion {{{'|'.join(_SHELLS)}}}")
    complete = get_completion_class(shell)
    assert complete is not None  # the choices are click's built-in shells
    script = complete(cli, {}, "taskmill", "_TASKMILL_COMPLETE").source()
    click.echo(script)


from taskmill._cli_inspect import COMMANDS as _INSPECT_COMMANDS  # noqa: E402 - after the group

for _command in _INSPECT_COMMANDS:
    cli.add_command(_command)

from taskmill._cli_dashboard import dashboard as _dashboard  # noqa: E402 - after the group

cli.add_command(_dashboard)


def _check_dashboard_bind(host: str, token: str | None) -> None:
    """Exit 2 with one line when the web extra is missing or a host off loopback has no token."""
    try:
        from taskmill.web import is_loopback  # noqa: PLC0415 - optional extra
    except ImportError:
        click.echo(
            "Error: --dashboard-port needs the 'web' extra: pip install 'taskmill[web]'", err=True
        )
        raise SystemExit(2) from None
    if not token and not is_loopback(host):
        click.echo(
            f"Error: --dashboard-host {host} is not a loopback address: a token is required "
            "there (--dashboard-token or TASKMILL_DASHBOARD_TOKEN), or bind 127.0.0.1",
            err=True,
        )
        raise SystemExit(2)


def _probe(port: int, *, host: str = "127.0.0.1", timeout: float) -> None:
    from taskmill._health_server import check_health  # noqa: PLC0415 - keep --help fast

    try:
        status, body = asyncio.run(check_health(port, host=host, timeout=timeout))
    except (OSError, TimeoutError) as exc:
        click.echo(f"unhealthy: {host}:{port}: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(body.decode(errors="replace"))
    raise SystemExit(0 if status == 200 else 1)
