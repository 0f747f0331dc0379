"""``create_dashboard``: the dashboard as a Starlette application."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from taskmill._errors import ConfigurationError, TaskmillError
from taskmill.payloads import PayloadCodec

from . import _actions, _pages
from ._context import Dashboard, render
from ._monitor import Monitor
from ._security import Guard, SecurityMiddleware
from ._store import InspectableStore

if TYPE_CHECKING:
    from taskmill._app import App
    from taskmill._health import Health

__all__ = ["MIN_TOKEN_LENGTH", "create_dashboard"]

MIN_TOKEN_LENGTH: Final = 8
_STORE_CALLS: Final = (
    "statistics",
    "list",
    "get",
    "dead_letters",
    "requeue_dead",
    "purge_dead",
    "cancel",
)

_ROUTES: Final = [
    Route("/", _pages.overview, name="overview"),
    Route("/tasks", _pages.tasks, name="tasks"),
    Route("/tasks/{task_id:path}", _pages.task, name="task"),
    Route("/cancel", _actions.cancel, methods=["POST"], name="cancel"),
    Route("/scheduled", _pages.scheduled, name="scheduled"),
    Route("/workers", _pages.workers, name="workers"),
    Route("/health", _pages.health, name="health"),
    Route("/dead", _pages.dead, name="dead"),
    Route("/dead/requeue", _actions.requeue, methods=["POST"], name="requeue"),
    Route("/dead/purge", _pages.purge_confirm, methods=["GET"], name="purge_confirm"),
    Route("/dead/purge", _actions.purge, methods=["POST"], name="purge"),
    Route("/charts", _pages.charts, name="charts"),
    Route("/events", _actions.events, name="events"),
    Route("/login", _actions.login_form, methods=["GET"], name="login_form"),
    Route("/login", _actions.login, methods=["POST"], name="login"),
    Route("/logout", _actions.logout, methods=["POST"], name="logout"),
    Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
]


def _check(store: object, codec: object, token: object, title: object, refresh: object) -> None:
    missing = [name for name in _STORE_CALLS if not callable(getattr(store, name, None))]
    if missing:
        raise ConfigurationError(
            f"store must be a taskmill store (SqliteStore, RedisStore); {store!r} has no "
            f"{', '.join(missing)}"
        )
    if codec is not None and not isinstance(codec, PayloadCodec):
        raise ConfigurationError(f"codec must be a taskmill.payloads.PayloadCodec, got {codec!r}")
    if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH):
        raise ConfigurationError(
            f"token must be a string of at least {MIN_TOKEN_LENGTH} characters (or None)"
        )
    if not isinstance(title, str):
        raise ConfigurationError(f"title must be a string, got {title!r}")
    ok = isinstance(refresh, int | float) and not isinstance(refresh, bool)
    if not ok or not math.isfinite(float(refresh)) or float(refresh) < 0.1:  # type: ignore[arg-type]
        raise ConfigurationError(f"refresh must be a number of seconds >= 0.1, got {refresh!r}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        status=exc.status_code,
        message=exc.detail,
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    status = 400 if isinstance(exc, ConfigurationError) else 503
    message = f"{type(exc).__name__}: {exc}"
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse(message, status_code=status)
    return render(request, "error.html", status_code=status, status=status, message=message)


def create_dashboard(
    store: InspectableStore,
    *,
    codec: PayloadCodec | None = None,
    token: str | None = None,
    title: str = "taskmill",
    refresh: float = 2.0,
    health: Health | None = None,
    app: App | None = None,
) -> Starlette:
    """Return the dashboard for ``store`` as an ASGI application (mountable anywhere).

    Args:
        store: A :class:`~taskmill.sqlite.SqliteStore` or :class:`~taskmill.redis.RedisStore`
            (or any store with their inspection calls). The caller opens and closes it.
        codec: Decodes payloads and results for the task page (default: JSON, no
            registry, no signer; pass the workers' codec when they sign or use msgpack).
        token: Require this secret (at least 8 characters) as ``Authorization: Bearer``
            or through the login form. ``None``: no authentication (loopback only).
        title: Shown in the header and the page titles.
        refresh: Seconds between the store polls behind the live counters and charts.
        health: A health tree to show on the health page.
        app: An :class:`~taskmill.App` whose timer jobs (and health tree, when
            ``health`` is not given) the dashboard shows.

    Raises:
        ConfigurationError: An argument has the wrong type or value.
    """
    _check(store, codec, token, title, refresh)
    monitor = Monitor(store, refresh=float(refresh))
    guard = Guard.create(token)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        monitor.ensure_started()
        try:
            yield
        finally:
            await monitor.close()

    dashboard = Starlette(
        routes=_ROUTES,
        middleware=[Middleware(SecurityMiddleware, guard=guard)],
        exception_handlers={HTTPException: _http_error, TaskmillError: _store_error},
        lifespan=lifespan,
    )
    dashboard.state.taskmill = Dashboard(
        store=store,
        codec=codec or PayloadCodec(),
        monitor=monitor,
        guard=guard,
        title=title,
        health=health,
        app=app,
    )
    return dashboard
