"""The live web dashboard (``taskmill[web]``: Starlette, uvicorn and Jinja2; no build step).

:func:`create_dashboard` returns a Starlette application over a durable store
(SQLite or Redis) that can be mounted in any ASGI application or served by
:func:`serve_dashboard` / ``taskmill dashboard``. Pages are rendered on the server
with autoescaping; one small script file updates the live counters from
server-sent events. See docs/dashboard.md.

``import taskmill`` never imports this package.
"""

from __future__ import annotations

try:
    import jinja2 as _jinja2  # noqa: F401  (availability check)
    import starlette as _starlette  # noqa: F401
    import uvicorn as _uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"taskmill.web needs the 'web' extra ({exc.name} is missing): pip install 'taskmill[web]'"
    ) from exc

from ._actions import MAX_STREAM as MAX_STREAM
from ._app import create_dashboard as create_dashboard
from ._serve import DashboardServer as DashboardServer
from ._serve import check_bind as check_bind
from ._serve import is_loopback as is_loopback
from ._serve import serve_dashboard as serve_dashboard

__all__ = [
    "MAX_STREAM",
    "DashboardServer",
    "check_bind",
    "create_dashboard",
    "is_loopback",
    "serve_dashboard",
]

for _name in (
    "DashboardServer",
    "check_bind",
    "create_dashboard",
    "is_loopback",
    "serve_dashboard",
):
    globals()[_name].__module__ = __name__
del _name
