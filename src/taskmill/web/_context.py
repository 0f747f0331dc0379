"""The state one dashboard shares between its endpoints, and page rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from taskmill._backend import LIVE_STATUSES, RecordStatus

from . import _render
from ._monitor import Monitor
from ._security import CSRF_SCOPE_KEY, Guard
from ._store import InspectableStore

if TYPE_CHECKING:
    from taskmill._app import App
    from taskmill._health import Health
    from taskmill.payloads import PayloadCodec

__all__ = ["NAV", "STATUSES", "Dashboard", "dashboard_of", "render", "templates"]

_HERE: Final = Path(__file__).parent

NAV: Final = (
    ("overview", "Overview"),
    ("tasks", "Tasks"),
    ("scheduled", "Scheduled"),
    ("workers", "Workers"),
    ("dead", "Dead letters"),
    ("charts", "Charts"),
    ("health", "Health"),
)
STATUSES: Final = tuple(status.value for status in RecordStatus)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    """What every endpoint of one dashboard reads (kept in ``app.state.taskmill``)."""

    store: InspectableStore
    codec: PayloadCodec
    monitor: Monitor
    guard: Guard
    title: str
    health: Health | None
    app: App | None


def dashboard_of(request: Request) -> Dashboard:
    """The dashboard serving ``request``."""
    dashboard: Dashboard = request.app.state.taskmill
    return dashboard


def templates() -> Jinja2Templates:
    """A template set with autoescaping on for every template (``.html`` or not)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["timestamp"] = _render.timestamp
    env.filters["duration"] = _render.duration
    env.filters["ago"] = _render.ago
    return Jinja2Templates(env=env)


_TEMPLATES: Final = templates()


def url_for(
    request: Request, name: str, /, query: dict[str, Any] | None = None, **params: str
) -> str:
    """A root-relative link to route ``name`` that works under any mount prefix."""
    root = request.scope.get("root_path", "") or ""
    quoted = {key: quote(value, safe="/:") for key, value in params.items()}
    path = str(request.app.url_path_for(name, **quoted))
    kept = {key: value for key, value in (query or {}).items() if value not in (None, "")}
    return root + path + (f"?{urlencode(kept)}" if kept else "")


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``template`` with the common context (nav, links, CSRF token, live URL)."""
    dashboard = dashboard_of(request)

    def link(name: str, /, query: dict[str, Any] | None = None, **params: str) -> str:
        return url_for(request, name, query, **params)

    common = {
        "title": dashboard.title,
        "nav": NAV,
        "link": link,
        "csrf": request.scope[CSRF_SCOPE_KEY],
        "refresh": dashboard.monitor.refresh,
        "auth": dashboard.guard.token is not None,
        "live_statuses": [status.value for status in RecordStatus if status in LIVE_STATUSES],
        "statuses": STATUSES,
        "page": template.removesuffix(".html"),
        "notice": None,
    }
    response: HTMLResponse = _TEMPLATES.TemplateResponse(
        request, template, {**common, **context}, status_code=status_code
    )
    return response
