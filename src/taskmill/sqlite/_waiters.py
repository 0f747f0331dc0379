"""Waiting for tasks to finish, across processes, without busy polling.

SQLite has no cross-process notification, so one poller per store serves every
waiter of that store:

* the cheap check is ``PRAGMA data_version``, which changes only when *another*
  connection commits; while it is unchanged nothing is re-read;
* when it changed (or this store itself committed a write, or a waiter joined),
  one query reads the status of every awaited id, and full records only for the
  ones that finished;
* the sleep between checks starts at ``min_interval`` and doubles up to
  ``max_interval`` while nothing finishes; a finish resets it;
* with no waiter, the poller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import final

from taskmill import _clock
from taskmill._errors import NotRunning, TaskNotFound

from . import _queries, _rows
from ._db import Database
from ._records import TERMINAL, TaskRecord

__all__ = ["Completions"]


@final
class Completions:
    """Resolve ``wait(task_id)`` calls when their tasks reach a terminal status."""

    def __init__(self, db: Database, *, min_interval: float, max_interval: float) -> None:
        self._db = db
        self._min = min_interval
        self._max = max_interval
        self._waiters: dict[str, list[asyncio.Future[TaskRecord]]] = {}
        self._wake = asyncio.Event()
        self._force = True
        self._poller: asyncio.Task[None] | None = None
        self.checks = 0

    @property
    def waiting(self) -> int:
        """How many task ids are awaited."""
        return len(self._waiters)

    def changed(self) -> None:
        """Note that this store committed a write that may finish a task: check now."""
        if self._waiters:
            self._force = True
            self._wake.set()

    async def wait(self, task_id: str) -> TaskRecord:
        """Return the terminal record of ``task_id`` once it has one.

        Raises:
            TaskNotFound: when no such task exists (or its record expired).
        """
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        self._force = True
        self._wake.set()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="taskmill-sqlite-completions")
        try:
            return await future
        finally:
            self._discard(task_id, future)

    def _discard(self, task_id: str, future: asyncio.Future[TaskRecord]) -> None:
        futures = self._waiters.get(task_id)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[task_id]

    async def close(self) -> None:
        """Stop polling; pending waiters get :class:`NotRunning`."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self._fail_all(NotRunning(f"the SQLite store for {self._db.path} was closed"))

    def _fail_all(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    async def _poll(self) -> None:
        interval = self._min
        version: int | None = None
        while self._waiters:
            if not self._force:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
            self._wake.clear()
            force, self._force = self._force, False
            try:
                current = await self._db.run(_queries.data_version)
                finished = force or current != version
                version = current
                if finished:
                    finished = await self._check()
            except Exception as exc:  # noqa: BLE001 - every waiter gets the backend's error
                self._fail_all(exc)
                return
            interval = self._min if finished else min(interval * 2, self._max)

    async def _check(self) -> bool:
        self.checks += 1
        ids = list(self._waiters)
        wall = _clock.wall_time()
        statuses = await self._db.run(_queries.statuses, ids, wall)
        done = [task_id for task_id in ids if statuses.get(task_id, "") in TERMINAL]
        missing = [task_id for task_id in ids if task_id not in statuses]
        rows = await self._db.run(_queries.rows_by_id, done, wall) if done else {}
        for task_id in missing:
            self._settle(task_id, TaskNotFound(task_id))
        for task_id, row in rows.items():
            try:
                self._settle(task_id, _rows.record(row))
            except Exception as exc:  # noqa: BLE001 - a malformed row fails only its waiters
                self._settle(task_id, exc)
        return bool(missing or rows)

    def _settle(self, task_id: str, outcome: TaskRecord | BaseException) -> None:
        for future in self._waiters.pop(task_id, []):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
