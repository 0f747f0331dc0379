"""Who may see the dashboard, and which POSTs are genuine: token auth, CSRF, headers.

* Token (optional): a request is allowed with ``Authorization: Bearer <token>`` or
  with the session cookie the login form sets (an HMAC of the token, HttpOnly,
  SameSite=Strict). Everything is compared in constant time. Without a token the
  dashboard is open to whoever reaches it, which is why it binds 127.0.0.1 and
  :func:`~taskmill.web.serve_dashboard` refuses other addresses without one.
* CSRF: every POST carries a ``csrf_token`` form field (or ``X-CSRF-Token`` header)
  equal to the ``taskmill_csrf`` cookie, and the token is signed with a key only this
  dashboard knows (signed double submit). Missing or wrong: 403.
* Headers on every response: a Content-Security-Policy without inline scripts or
  styles, ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``nosniff``,
  ``no-referrer``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Final, final
from urllib.parse import quote

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "CSRF_SCOPE_KEY",
    "SECURITY_HEADERS",
    "Guard",
    "SecurityMiddleware",
]

AUTH_COOKIE: Final = "taskmill_auth"
CSRF_COOKIE: Final = "taskmill_csrf"
CSRF_SCOPE_KEY: Final = "taskmill.csrf"
_OPEN_PATHS: Final = ("/login", "/static/")

SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        (
            b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@final
@dataclass(frozen=True, slots=True)
class Guard:
    """The secrets of one dashboard: its token (if any) and its CSRF signing key."""

    token: str | None
    key: bytes

    @classmethod
    def create(cls, token: str | None) -> Guard:
        """Return a guard with a fresh random CSRF key."""
        return cls(token, secrets.token_bytes(32))

    def session_value(self) -> str:
        """The login cookie's value: an HMAC of the token (the token itself never leaves)."""
        assert self.token is not None
        return _mac(self.token.encode(), "taskmill-dashboard-session")

    def token_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token (constant time)."""
        if self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def authenticated(self, headers: Headers, cookies: dict[str, str]) -> bool:
        """Whether the request carries the bearer token or the session cookie."""
        if self.token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = cookies.get(AUTH_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session_value().encode())

    def new_csrf(self) -> str:
        """Return a fresh signed CSRF token."""
        nonce = secrets.token_hex(16)
        return f"{nonce}.{_mac(self.key, nonce)}"

    def csrf_valid(self, value: str) -> bool:
        """Whether ``value`` is a CSRF token this guard signed."""
        nonce, _, mac = value.partition(".")
        return bool(nonce) and hmac.compare_digest(mac.encode(), _mac(self.key, nonce).encode())

    def csrf_matches(self, cookie: str, submitted: str) -> bool:
        """Whether a POST's submitted token equals its (validly signed) cookie."""
        same = hmac.compare_digest(cookie.encode(), submitted.encode())
        return same and self.csrf_valid(cookie)


def cookies_of(headers: Headers) -> dict[str, str]:
    """Parse the Cookie header (bad cookies are ignored)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed Cookie header means "no cookies"
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def relative_path(scope: Scope) -> str:
    """The request path below the dashboard's mount point (``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def cookie_header(
    name: str, value: str, *, path: str, secure: bool, max_age: int | None = None
) -> bytes:
    """One Set-Cookie value: HttpOnly, SameSite=Strict, scoped to the dashboard's path."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


@final
class SecurityMiddleware:
    """Pure ASGI middleware (safe for streaming responses): headers, auth, CSRF cookie.

    The CSRF check itself runs where the form is read (:func:`~._forms.read_form`);
    this middleware makes sure every page has a signed token to put in its forms.
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookies = cookies_of(headers)
        csrf = cookies.get(CSRF_COOKIE, "")
        fresh = not self.guard.csrf_valid(csrf)
        if fresh:
            csrf = self.guard.new_csrf()
        scope[CSRF_SCOPE_KEY] = csrf
        root = scope.get("root_path", "") or ""
        secure = scope.get("scheme") == "https"

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    out.raw.append((name, value))
                if fresh:
                    cookie = cookie_header(CSRF_COOKIE, csrf, path=root + "/", secure=secure)
                    out.raw.append((b"set-cookie", cookie))
            await send(message)

        path = relative_path(scope)
        if path.startswith(_OPEN_PATHS) or self.guard.authenticated(headers, cookies):
            await self.app(scope, receive, send_secured)
            return
        await _refuse(scope, headers, path)(scope, receive, send_secured)


def _refuse(scope: Scope, headers: Headers, path: str) -> Response:
    """401 for scripts; a redirect to the login form for a browser asking for a page."""
    wants_page = scope.get("method") == "GET" and "text/html" in headers.get("accept", "")
    if wants_page:
        root = scope.get("root_path", "") or ""
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        return RedirectResponse(f"{root}/login?next={quote(target, safe='')}", status_code=303)
    return PlainTextResponse(
        "authentication required: send 'Authorization: Bearer <token>' or log in",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="taskmill"'},
    )
