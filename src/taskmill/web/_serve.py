"""Serving a dashboard with uvicorn: loopback by default, a token required anywhere else."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any, final

import uvicorn
from starlette.applications import Starlette

from taskmill._errors import ConfigurationError

from ._context import Dashboard

__all__ = ["DashboardServer", "check_bind", "is_loopback", "serve_dashboard"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _dashboard(app: Starlette) -> Dashboard:
    dashboard = getattr(app.state, "taskmill", None)
    if not isinstance(dashboard, Dashboard):
        raise ConfigurationError(f"{app!r} is not a dashboard from taskmill.web.create_dashboard")
    return dashboard


def check_bind(app: Starlette, host: str) -> None:
    """Refuse to serve a dashboard without a token on an address other than loopback.

    Raises:
        ConfigurationError: ``host`` is not loopback and the dashboard has no token.
    """
    if not is_loopback(host) and _dashboard(app).guard.token is None:
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host}, which is not a loopback address, "
            "without a token: pass token=... (CLI: --token or TASKMILL_DASHBOARD_TOKEN), "
            "or bind 127.0.0.1"
        )


@final
class DashboardServer(uvicorn.Server):
    """A uvicorn server that ends the dashboard's event streams when it shuts down.

    uvicorn waits for open responses before it runs the lifespan shutdown, and an
    event stream never ends by itself: closing the monitor first lets them finish.
    With ``handle_signals=False`` it leaves signal handling to its host (a worker, a test).
    """

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool = True) -> None:
        super().__init__(config)
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.app
        dashboard = getattr(getattr(app, "state", None), "taskmill", None)
        if isinstance(dashboard, Dashboard):
            await dashboard.monitor.close()
        await super().shutdown(sockets=sockets)


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket (raises OSError, unlike uvicorn's own, which exits)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def server_for(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 8765, handle_signals: bool = True
) -> DashboardServer:
    """Return a (not yet started) server for ``app``, after :func:`check_bind`."""
    check_bind(app, host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    return DashboardServer(config, handle_signals=handle_signals)


async def serve_dashboard(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    handle_signals: bool = True,
    on_listen: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` (from :func:`~taskmill.web.create_dashboard`) until stopped.

    Args:
        app: The dashboard.
        host: Address to bind; anything but loopback needs a dashboard with a token.
        port: TCP port (0: any free port).
        handle_signals: Stop on SIGINT/SIGTERM (leave ``False`` inside a program
            that handles them, and cancel this coroutine to stop).
        on_listen: Called with the dashboard's URL once the socket listens.

    Raises:
        ConfigurationError: Off loopback without a token.
        OSError: The address cannot be bound (e.g. the port is in use).
    """
    server = server_for(app, host=host, port=port, handle_signals=handle_signals)
    sock = _bind(host, port, server.config.backlog)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if on_listen is not None:
        on_listen(f"http://{shown}:{bound}/")
    waiter = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(waiter)
    except asyncio.CancelledError:
        server.should_exit = True
        await waiter
        raise
    finally:
        sock.close()
