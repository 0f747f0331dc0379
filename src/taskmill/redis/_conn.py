"""Connecting to Redis: URL checks, client options, error mapping, the epoch marker."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskmill._errors import BackendError, BackendUnavailable, ConfigurationError

__all__ = ["backend_errors", "connect", "insecure", "new_epoch", "redact"]

logger = logging.getLogger(__name__)

_SCHEMES: Final = ("redis", "rediss", "unix")


def redact(url: str) -> str:
    """Return ``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure(url: str) -> bool:
    """Whether ``url`` reaches a non-loopback server without a password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return False
    return parts.password is None and not _loopback(parts.hostname or "")


def connect(url: str, *, socket_timeout: float, retries: int, max_connections: int | None) -> Redis:
    """Return a client for ``url`` (credentials from the URL are used as given).

    Raises:
        ConfigurationError: for a URL that is not ``redis://``, ``rediss://`` or ``unix://``.
    """
    if urlsplit(url).scheme not in _SCHEMES:
        raise ConfigurationError(
            f"Redis URL must start with redis://, rediss:// or unix://: {url!r}"
        )
    if insecure(url):
        logger.warning(
            "Redis at %s is not on loopback and the URL has no password: anyone who can reach "
            "it can read and change every task. Use redis://user:password@host or rediss://",
            redact(url),
        )
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(EqualJitterBackoff(cap=1.0, base=0.05), retries),
        "max_connections": max_connections,
        "timeout": socket_timeout,
    }
    pool = BlockingConnectionPool.from_url(url, **options)
    return Redis(connection_pool=pool)


@contextlib.contextmanager
def backend_errors(url: str, what: str) -> Iterator[None]:
    """Map redis-py errors to taskmill's: unreachable -> BackendUnavailable, else BackendError."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BackendUnavailable(
            f"Redis at {redact(url)} is unreachable during {what}: {exc}", backend="redis"
        ) from exc
    except RedisError as exc:
        raise BackendError(f"Redis failed during {what}: {exc}", backend="redis") from exc


def new_epoch() -> str:
    """Return a fresh epoch marker value."""
    return secrets.token_hex(8)
