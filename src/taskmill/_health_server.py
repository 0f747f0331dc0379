"""A tiny HTTP health endpoint for container probes (stdlib ``asyncio.start_server`` only).

``GET /health`` answers the JSON a probe function returns, with HTTP 200 when the
probe says healthy and 503 otherwise; any other path is 404, any other method 405.
:func:`check_health` is the client side behind ``taskmill check`` /
``taskmill worker --check``. Bound to 127.0.0.1 by default: it is for probes on
the same host (or pod), not for the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

from ._errors import ConfigurationError, StateError
from ._health import HealthLevel, HealthSnapshot

if TYPE_CHECKING:
    from ._app import App
    from ._worker_runtime import DurableWorker

__all__ = [
    "HealthServer",
    "app_probe",
    "check_health",
    "has_degraded",
    "worker_probe",
]

logger = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]
"""Returns ``(healthy, json_body)``."""

_REASONS: Final = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}
_READ_LIMIT: Final = 8192
_READ_TIMEOUT: Final = 5.0


def has_degraded(snapshot: HealthSnapshot) -> bool:
    """Whether ``snapshot`` or any scope below it reports DEGRADED itself."""
    if snapshot.own_level is HealthLevel.DEGRADED:
        return True
    return any(has_degraded(child) for child in snapshot.children)


def app_probe(app: App) -> Probe:
    """Probe an app: its health tree, healthy while no scope is DEGRADED."""

    def probe() -> tuple[bool, dict[str, Any]]:
        snapshot = app.health.snapshot()
        return not has_degraded(snapshot), snapshot.as_dict()

    return probe


def worker_probe(worker: DurableWorker) -> Probe:
    """Probe a durable worker: its statistics, healthy while idle or running."""

    def probe() -> tuple[bool, dict[str, Any]]:
        stats = worker.statistics()
        body = {slot: getattr(stats, slot) for slot in type(stats).__slots__}
        body["queues"] = list(stats.queues)
        return stats.state in ("idle", "running"), body

    return probe


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an int in 0..65535, got {port!r}")
    return port


@final
class HealthServer:
    """Serve ``GET /health`` from ``probe`` while started (``async with`` or start/stop).

    Args:
        probe: Returns ``(healthy, json_body)`` per request (see :func:`app_probe`).
        port: TCP port; 0 picks a free one (read it from :attr:`port` once started).
        host: Interface to bind (default: loopback only).

    Raises:
        ConfigurationError: ``port`` is not a valid port number.
    """

    def __init__(self, probe: Probe, *, port: int, host: str = "127.0.0.1") -> None:
        self._probe = probe
        self._port = _check_port(port)
        self._host = host
        self._server: asyncio.Server | None = None
        self._requests = 0

    def __repr__(self) -> str:
        state = "serving" if self._server is not None else "stopped"
        return f"<HealthServer {self._host}:{self._port} {state} requests={self._requests}>"

    @property
    def port(self) -> int:
        """The bound port (the real one after :meth:`start`, when 0 was asked for)."""
        return self._port

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            StateError: Already started.
            OSError: The port cannot be bound.
        """
        if self._server is not None:
            raise StateError(f"{self!r} is already started")
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("health endpoint on http://%s:%d/health", self._host, self._port)

    async def stop(self) -> None:
        """Stop serving (safe to call when not started)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body = self._respond(head)
            await _write(writer, status, body)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            logger.debug("health endpoint: bad or slow request", exc_info=True)
        finally:
            writer.close()

    def _respond(self, head: bytes) -> tuple[int, bytes]:
        self._requests += 1
        method, _, rest = head[:_READ_LIMIT].decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/health":
            return 404, b'{"error": "not found"}'
        if method != "GET":
            return 405, b'{"error": "method not allowed"}'
        healthy, body = self._probe()
        return (200 if healthy else 503), json.dumps(body).encode()


async def _write(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()


async def check_health(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 5.0,  # noqa: ASYNC109 - a probe command's one deadline
) -> tuple[int, bytes]:
    """``GET /health`` from a :class:`HealthServer`; return ``(status, body)``.

    Raises:
        ConfigurationError: ``port`` is not a valid port number.
        OSError: Nothing listens there.
        TimeoutError: No full answer within ``timeout`` seconds.
    """
    _check_port(port)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    return status, body
