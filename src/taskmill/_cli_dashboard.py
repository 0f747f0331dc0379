"""``taskmill dashboard``: serve the web dashboard over a SQLite or Redis store with uvicorn.

Binds 127.0.0.1 by default. Any other address needs a token (``--token`` or the
``TASKMILL_DASHBOARD_TOKEN`` environment variable); without one the command refuses
to start with one ``Error:`` line and exit code 2. The web extra is imported only
when the command runs, so ``taskmill --help`` stays fast.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from taskmill._cli_store import StoreTarget, UserError, open_store, store_options
from taskmill._errors import ConfigurationError, TaskmillError

__all__ = ["dashboard"]

_MISSING_WEB = "the dashboard needs the 'web' extra: pip install 'taskmill[web]'"


async def _serve(target: StoreTarget, options: dict[str, Any]) -> None:
    from taskmill.web import create_dashboard, serve_dashboard  # noqa: PLC0415

    async with open_store(target, quick=False) as store:
        app = create_dashboard(
            store, token=options["token"], title=options["title"], refresh=options["refresh"]
        )

        def announce(url: str) -> None:
            click.echo(f"taskmill dashboard for {target}: {url}  (Ctrl-C stops)")

        await serve_dashboard(app, host=options["host"], port=options["port"], on_listen=announce)


@click.command()
@store_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8765, show_default=True)
@click.option(
    "--token",
    envvar="TASKMILL_DASHBOARD_TOKEN",
    default=None,
    help="Require this token (at least 8 characters); needed off loopback. "
    "Env: TASKMILL_DASHBOARD_TOKEN.",
)
@click.option("--title", default="taskmill", show_default=True)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the live counters and charts read the store.",
)
def dashboard(
    *,
    store: StoreTarget,
    host: str,
    port: int,
    token: str | None,
    title: str,
    refresh: float,
) -> None:
    """Serve the live web dashboard for a SQLite (--db) or Redis (--redis) store."""
    try:
        from taskmill.web import is_loopback  # noqa: PLC0415 - optional extra
    except ImportError:
        raise UserError(_MISSING_WEB) from None
    if not token and not is_loopback(host):
        raise UserError(
            f"--host {host} is not a loopback address: a token is required there "
            "(--token or TASKMILL_DASHBOARD_TOKEN), or bind 127.0.0.1"
        )
    options = {
        "host": host,
        "port": port,
        "token": token or None,
        "title": title,
        "refresh": refresh,
    }
    try:
        asyncio.run(_serve(store, options))
    except KeyboardInterrupt:
        return
    except ConfigurationError as exc:
        raise UserError(str(exc)) from None
    except (TaskmillError, OSError) as exc:
        raise UserError(f"{type(exc).__name__}: {exc}") from None
