"""What changes things (POST only, each behind the CSRF check), login, and the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from taskmill._errors import StateError, TaskNotFound

from ._context import dashboard_of, render, url_for
from ._security import AUTH_COOKIE, CSRF_COOKIE, cookie_header, cookies_of

__all__ = ["MAX_STREAM", "cancel", "events", "login", "login_form", "logout", "purge", "requeue"]

_MAX_FORM: Final = 64 * 1024
MAX_STREAM: Final = 300.0
"""Seconds one event stream lasts before the browser reconnects (lets servers drain)."""
_SESSION_AGE: Final = 12 * 3600


async def read_form(request: Request) -> dict[str, list[str]]:
    """Read a url-encoded form and check its CSRF token (403 when missing or wrong)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise HTTPException(413, "form too large")
    text = body.decode("utf-8", "replace")
    form = parse_qs(text, keep_blank_values=True) if text else {}
    submitted = request.headers.get("x-csrf-token") or _first(form, "csrf_token")
    cookie = cookies_of(request.headers).get(CSRF_COOKIE, "")
    guard = dashboard_of(request).guard
    if not submitted or not cookie or not guard.csrf_matches(cookie, submitted):
        raise HTTPException(403, "missing or invalid CSRF token: reload the page and try again")
    return form


def _first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def _back(request: Request, name: str, **query: str) -> RedirectResponse:
    return RedirectResponse(url_for(request, name, dict(query)), status_code=303)


async def requeue(request: Request) -> Response:
    """Queue a dead letter again."""
    form = await read_form(request)
    task_id = _first(form, "id")
    if not task_id:
        raise HTTPException(400, "which dead letter? (form field 'id')")
    try:
        done = await dashboard_of(request).store.requeue_dead(task_id)
    except StateError as exc:
        raise HTTPException(409, str(exc)) from None
    return _back(request, "dead", notice="requeued" if done else "not_dead", id=task_id)


async def purge(request: Request) -> Response:
    """Delete one or all dead letters; needs ``confirm=yes`` from the confirmation page."""
    form = await read_form(request)
    if _first(form, "confirm") != "yes":
        raise HTTPException(400, "purging needs confirmation (confirm=yes)")
    everything = _first(form, "all") == "1"
    ids = [task_id for task_id in form.get("id", []) if task_id]
    if everything == bool(ids):
        raise HTTPException(400, "name the dead letters to purge (id=...) or all=1, not both")
    store = dashboard_of(request).store
    count = await store.purge_dead(*ids, everything=everything)
    return _back(request, "dead", notice="purged", count=str(count))


async def cancel(request: Request) -> Response:
    """Cancel a task: at once if it has not started, by request if it runs."""
    form = await read_form(request)
    task_id = _first(form, "id")
    try:
        outcome = await dashboard_of(request).store.cancel(task_id)
    except TaskNotFound:
        raise HTTPException(404, f"no task with id {task_id!r}") from None
    url = url_for(
        request, "task", {"notice": "cancelled", "outcome": str(outcome)}, task_id=task_id
    )
    return RedirectResponse(url, status_code=303)


# --------------------------------------------------------------------------- login


def _safe_next(request: Request, target: str) -> str:
    """Only a path inside this dashboard (no scheme, no host, no ``//``)."""
    root = request.scope.get("root_path", "") or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = "/"
    return root + target


async def login_form(request: Request) -> Response:
    """The token form (a dashboard without a token goes straight to the overview)."""
    if dashboard_of(request).guard.token is None:
        return _back(request, "overview")
    return render(request, "login.html", next=request.query_params.get("next", "/"), failed=False)


async def login(request: Request) -> Response:
    """Check the token; set the HttpOnly, SameSite=Strict session cookie."""
    form = await read_form(request)
    guard = dashboard_of(request).guard
    target = _first(form, "next") or "/"
    if guard.token is None:
        return _back(request, "overview")
    if not guard.token_matches(_first(form, "token")):
        return render(request, "login.html", next=target, failed=True, status_code=401)
    response = RedirectResponse(_safe_next(request, target), status_code=303)
    root = request.scope.get("root_path", "") or ""
    secure = request.url.scheme == "https"
    value = guard.session_value()
    cookie = cookie_header(AUTH_COOKIE, value, path=root + "/", secure=secure, max_age=_SESSION_AGE)
    response.raw_headers.append((b"set-cookie", cookie))
    return response


async def logout(request: Request) -> Response:
    """Forget the session cookie."""
    await read_form(request)
    response = _back(request, "login_form")
    root = request.scope.get("root_path", "") or ""
    cookie = cookie_header(AUTH_COOKIE, "", path=root + "/", secure=False, max_age=0)
    response.raw_headers.append((b"set-cookie", cookie))
    return response


# --------------------------------------------------------------------------- events


async def events(request: Request) -> Response:
    """Server-sent events: one ``stats`` event per poll.

    A stream ends when the client goes away, when the dashboard shuts down, or after
    :data:`MAX_STREAM` seconds (the browser's EventSource then reconnects by itself).
    """
    monitor = dashboard_of(request).monitor
    until = asyncio.get_running_loop().time() + MAX_STREAM
    retry = max(1000, int(monitor.refresh * 1000))

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {retry}\n\n"
        async for snapshot in monitor.updates(until=until):
            yield f"event: stats\ndata: {json.dumps(snapshot.as_event())}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
