"""The store options every CLI command shares: ``--db PATH`` or ``--redis URL``, and opening it.

``--db`` (env ``TASKMILL_DB``) names a SQLite file, ``--redis`` (env
``TASKMILL_REDIS_URL``) a Redis server; they are mutually exclusive. An option on
the command line beats one from the environment; with neither, the SQLite file
``./taskmill.db`` is used. Opening maps every user mistake (a missing file, a bad
URL, an unreachable server, a missing extra) to :class:`UserError`: one
``Error: ...`` line with the fix and exit code 2.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar, final

import click
from click.core import ParameterSource

from taskmill._errors import BackendError, BackendUnavailable, ConfigurationError

__all__ = ["DEFAULT_DB", "StoreTarget", "UserError", "open_store", "store_options"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB: Final = Path("taskmill.db")
_EXAMPLE_URL: Final = "redis://127.0.0.1:6379/0"


class UserError(click.ClickException):
    """A mistake of the person at the terminal: one ``Error:`` line and exit code 2."""

    exit_code = 2


@final
@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Which store a command works on: a SQLite file or a Redis URL (exactly one)."""

    db: Path | None = None
    redis: str | None = None

    def __post_init__(self) -> None:
        if (self.db is None) == (self.redis is None):
            raise ConfigurationError("a StoreTarget names either db or redis")

    def __str__(self) -> str:
        if self.redis is not None:
            return _redact(self.redis)
        return str(self.db)


def _redact(url: str) -> str:
    """``url`` without its password (never echo credentials to a terminal or a log)."""
    try:
        from taskmill.redis._conn import redact  # noqa: PLC0415 - only with --redis

        return redact(url)
    except (ImportError, ValueError):  # no extra, or not even a URL: drop what may be secret
        return url.rpartition("@")[2]


def resolve_target(ctx: click.Context, db: Path | None, redis: str | None) -> StoreTarget:
    """Pick the store from ``--db`` / ``--redis`` (command line beats the environment).

    Raises:
        UserError: Both were given at the same level.
    """
    if db is not None and redis is not None:
        db_source = ctx.get_parameter_source("db")
        redis_source = ctx.get_parameter_source("redis_url")
        if db_source == redis_source:
            where = (
                "TASKMILL_DB and TASKMILL_REDIS_URL"
                if db_source == ParameterSource.ENVIRONMENT
                else "--db and --redis"
            )
            raise UserError(f"{where} name two stores; pass only one of them")
        if redis_source == ParameterSource.COMMANDLINE:
            db = None
        else:
            redis = None
    if redis is not None:
        return StoreTarget(redis=redis)
    return StoreTarget(db=DEFAULT_DB if db is None else db)


def store_options(fn: F) -> F:
    """Add ``--db`` and ``--redis`` to a command; it receives ``store: StoreTarget``."""

    @functools.wraps(fn)
    def with_store(*args: Any, db: Path | None, redis_url: str | None, **kwargs: Any) -> Any:
        target = resolve_target(click.get_current_context(), db, redis_url)
        return fn(*args, store=target, **kwargs)

    with_redis = click.option(
        "--redis",
        "redis_url",
        default=None,
        envvar="TASKMILL_REDIS_URL",
        metavar="URL",
        help=f"Use the Redis store at URL (e.g. {_EXAMPLE_URL}) instead of --db.",
    )(with_store)
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="TASKMILL_DB",
        help=f"The SQLite store file [default: {DEFAULT_DB}].",
    )(with_redis)  # type: ignore[return-value]  # the call signature, minus the store


@contextlib.asynccontextmanager
async def open_store(
    target: StoreTarget, *, create: bool = False, lease: float = 30.0, quick: bool = True
) -> AsyncIterator[Any]:
    """Open the store ``target`` names, yield it, close it.

    Args:
        target: The store.
        create: Create a missing SQLite file (otherwise a missing file is a UserError).
        lease: The store's default lease in seconds.
        quick: Give up on an unreachable Redis after one reconnect and 3 s (a command);
            ``False`` keeps the store's defaults (a worker rides out short outages).

    Raises:
        UserError: A missing file or extra, a bad URL, an unreachable server.
    """
    if target.redis is not None:
        store = await _open_redis(target.redis, lease, quick=quick)
    else:
        assert target.db is not None
        store = await _open_sqlite(target.db, lease, create=create)
    async with store:
        yield store


def _check_file(db: Path) -> None:
    if not db.is_file():
        raise UserError(
            f"no store at {db}: pass --db PATH or --redis URL (a worker or submit creates it)"
        )


async def _open_sqlite(db: Path, lease: float, *, create: bool) -> Any:
    if not create:
        _check_file(db)
    try:
        from taskmill.sqlite import SqliteStore  # noqa: PLC0415 - keep `taskmill --help` fast
    except ImportError:
        raise UserError(
            "the SQLite store needs the 'sqlite' extra: pip install 'taskmill[sqlite]'"
        ) from None
    return await SqliteStore.open(db, lease=lease)


async def _open_redis(url: str, lease: float, *, quick: bool) -> Any:
    try:
        from taskmill.redis import RedisStore  # noqa: PLC0415 - only with --redis
    except ImportError:
        raise UserError("--redis needs the 'redis' extra: pip install 'taskmill[redis]'") from None
    shown = _redact(url)
    try:
        if quick:
            return await RedisStore.open(url, lease=lease, retries=1, socket_timeout=3.0)
        return await RedisStore.open(url, lease=lease)
    except BackendUnavailable:
        raise UserError(
            f"cannot reach Redis at {shown}: start redis-server there, or fix --redis / "
            "TASKMILL_REDIS_URL"
        ) from None
    except ConfigurationError:
        raise UserError(
            f"bad --redis URL {shown}: it must start with redis://, rediss:// or unix:// "
            f"(e.g. {_EXAMPLE_URL})"
        ) from None
    except ValueError as exc:
        raise UserError(f"bad --redis URL {shown}: {exc} (e.g. {_EXAMPLE_URL})") from None
    except BackendError as exc:
        raise UserError(f"Redis at {shown} cannot serve as a store: {exc}") from None
