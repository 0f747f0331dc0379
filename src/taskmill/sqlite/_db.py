"""One SQLite connection on one dedicated thread.

Every call goes through ``loop.run_in_executor`` on a one-thread executor, so calls
run one at a time, in order, and the virtual-time test loop knows a query is in
flight (its clock holds still until the thread is done).

Inside the thread, ``database is locked`` / ``busy`` is retried with jittered
exponential backoff (on top of SQLite's own ``busy_timeout``), bounded in attempts
and in time; driver errors become taskmill errors: ``StorageFull`` for a full
database or disk, ``BackendUnavailable`` for a file that cannot be opened or
stays locked, ``BackendError`` for the rest (``__cause__`` is the driver's error).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, Final, ParamSpec, TypeVar, final

from taskmill import _clock
from taskmill._errors import BackendError, BackendUnavailable, NotRunning, StorageFull

from ._schema import Synchronous, connect, prepare

__all__ = ["Database"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)

_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_BUSY_RETRIES: Final = 8
_BUSY_FIRST: Final = 0.005
_BUSY_MAX: Final = 0.25


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _translate(exc: sqlite3.Error, what: str, path: str) -> BackendError:
    code = _primary_code(exc)
    if code == _SQLITE_FULL:
        return StorageFull(
            f"{what}: {path}: the database or disk is full; nothing was written", backend="sqlite"
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return BackendUnavailable(
            f"{what}: {path} stayed locked by another connection past the retry budget",
            backend="sqlite",
        )
    if code == _SQLITE_CANTOPEN:
        return BackendUnavailable(f"cannot open the database {path}: {exc}", backend="sqlite")
    return BackendError(f"{what}: {path}: {exc}", backend="sqlite")


@final
class Database:
    """A connection owned by one thread; ``await run(fn, *args)`` calls ``fn(conn, *args)``.

    Args:
        path: The database file.
        busy_timeout: SQLite's busy timeout, seconds (also bounds the retries).
        synchronous: ``PRAGMA synchronous`` for this connection.
    """

    def __init__(self, path: str, *, busy_timeout: float, synchronous: Synchronous) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.busy_retries = 0
        self.schema_version = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskmill-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._rng = random.Random()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or opening failed)."""
        return self._closed

    async def open(self) -> None:
        """Connect, switch to WAL and create or check the schema."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._retrying, "open", self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        if self._conn is None:
            self._conn = connect(self.path, busy_timeout=self.busy_timeout)
        self.schema_version = prepare(self._conn, self.synchronous)

    async def run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on the connection's thread.

        Raises:
            NotRunning: after :meth:`close`.
            BackendError: (or a subclass) when SQLite fails.
        """
        return await self.submit(fn, *args, **kwargs)

    def submit(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """Queue ``fn(conn, *args, **kwargs)`` on the thread; return its future.

        Raises:
            NotRunning: after :meth:`close`.
        """
        conn = self._conn
        if self._closed or conn is None:
            raise NotRunning(f"the SQLite store for {self.path} is closed")
        call = functools.partial(fn, conn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._retrying, fn.__name__, call)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        started = _clock.real_monotonic()
        for attempt in range(_BUSY_RETRIES + 1):
            try:
                return call()
            except sqlite3.Error as exc:
                budget_left = _clock.real_monotonic() - started < 2 * self.busy_timeout
                busy = _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED)
                if not (busy and budget_left and attempt < _BUSY_RETRIES):
                    raise _translate(exc, what, self.path) from exc
                self.busy_retries += 1
                delay = min(_BUSY_MAX, _BUSY_FIRST * 2**attempt) * self._rng.uniform(0.5, 1.5)
                logger.debug("%s: %s is locked, retry %d in %.3fs", what, self.path, attempt, delay)
                _clock.sleep_sync(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Close the connection (after calls already queued) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=False)
