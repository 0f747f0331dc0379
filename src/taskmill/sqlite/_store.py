"""SqliteStore: the durable, lease-based task store on one SQLite file.

The async facade: it checks arguments at the call, reads the clocks on the event
loop (``taskmill._clock``: virtual in tests), and hands one transaction at a time
to the connection's thread (:mod:`._db`). The transactions are in :mod:`._sql`
and :mod:`._queries`; docs/sqlite.md explains the design.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as _dt
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Final, NoReturn, final

from taskmill import _backend, _clock
from taskmill._errors import BackendError, ConfigurationError, TaskNotFound
from taskmill._storecheck import Failure, StoreFacade, check_purge, check_result

from . import _checks, _queries, _rows, _sql
from ._db import Database
from ._records import (
    CancelOutcome,
    Claim,
    Enqueued,
    ErrorText,
    NewTask,
    ReclaimReport,
    Renewal,
    Status,
    StoreStatistics,
    TaskRecord,
    as_new_task,
)
from ._schema import Synchronous
from ._waiters import Completions

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

_SYNCHRONOUS: Final = ("full", "normal", "off")
_MIN_POLL: Final = 0.005


@final
class SqliteStore(StoreFacade):
    """A durable task store in one SQLite file (WAL), shared by processes on one host.

    Open it with :meth:`open` (or ``async with await SqliteStore.open(path)``).
    Producers :meth:`enqueue`; workers :meth:`claim` tasks with a lease and a
    fencing token, :meth:`renew` the lease while they work and finish with
    :meth:`ack`, :meth:`nack`, :meth:`release` or :meth:`dead_letter`; every worker
    also runs :meth:`run_reclaimer`, which takes back the tasks of dead workers.
    """

    def __init__(
        self,
        db: Database,
        *,
        lease: float,
        max_worker_lost: int,
        results_ttl: float | None,
        max_poll_interval: float,
        boot_id: str | None,
    ) -> None:
        self._db = db
        self._lease = lease
        self._max_worker_lost = max_worker_lost
        self._results_ttl = results_ttl
        self._boot = boot_id
        self._completions = Completions(
            db, min_interval=min(_MIN_POLL, max_poll_interval), max_interval=max_poll_interval
        )
        self._malformed = 0
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        lease: float = 30.0,
        max_worker_lost: int = 3,
        synchronous: Synchronous = "normal",
        busy_timeout: float = 5.0,
        results_ttl: float | None = None,
        max_poll_interval: float = 0.25,
    ) -> SqliteStore:
        """Open (and create if needed) the store in ``path``.

        Args:
            path: The database file (created with its schema if missing).
            lease: Default lease in seconds for :meth:`claim` and :meth:`renew`.
            max_worker_lost: Dead-letter a task once this many of its workers were lost.
            synchronous: ``PRAGMA synchronous``: ``"full"`` survives power loss;
                ``"normal"`` (WAL) survives any process crash but may lose the last
                commits on power loss; ``"off"`` may corrupt on power loss.
            busy_timeout: How long a transaction waits for another process's lock.
            results_ttl: Seconds a terminal record (dead letters excepted) is kept;
                ``None`` keeps them until :meth:`purge_results`.
            max_poll_interval: Longest sleep between checks while :meth:`wait` waits.

        Raises:
            ConfigurationError: for invalid options.
            BackendError: when the file cannot be opened or holds a newer schema.
        """
        if synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {_SYNCHRONOUS}: {synchronous!r}")
        lease = _checks.seconds(lease, "lease")
        max_worker_lost = _checks.count(max_worker_lost, "max_worker_lost", 1)
        ttl = None if results_ttl is None else _checks.seconds(results_ttl, "results_ttl")
        poll = _checks.seconds(max_poll_interval, "max_poll_interval")
        db = Database(
            os.fspath(path),
            busy_timeout=_checks.seconds(busy_timeout, "busy_timeout", allow_zero=True),
            synchronous=synchronous,
        )
        await db.open()
        return cls(
            db,
            lease=lease,
            max_worker_lost=max_worker_lost,
            results_ttl=ttl,
            max_poll_interval=poll,
            boot_id=_checks.read_boot_id(),
        )

    async def close(self) -> None:
        """Close the store; pending :meth:`wait` calls raise :class:`~taskmill.NotRunning`."""
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self._completions.close()
        await self._db.close()

    def __repr__(self) -> str:
        state = "closed" if self._db.closed else "open"
        return (
            f"<SqliteStore {self._db.path!r} {state} lease={self._lease:g}s "
            f"synchronous={self._db.synchronous} waiting={self._completions.waiting}>"
        )

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    @property
    def lease(self) -> float:
        """The default lease in seconds."""
        return self._lease

    def _expires(self, wall: float) -> float | None:
        return None if self._results_ttl is None else wall + self._results_ttl

    # -- producers ------------------------------------------------------------------------
    async def enqueue(
        self,
        payload: bytes,
        *,
        name: str,
        queue: str = "default",
        priority: int = 0,
        run_at: float | _dt.datetime | None = None,
        unique_key: str | None = None,
        task_id: str | None = None,
    ) -> Enqueued:
        """Store one task; when this returns, the task survives any crash.

        Args:
            payload: Opaque bytes.
            name: The registered task name.
            queue: The queue to wait in.
            priority: Lower runs first; FIFO within a priority.
            run_at: When it is due: POSIX seconds or an aware datetime (``None``: now).
            unique_key: While a live task holds this key, enqueue returns that task.
            task_id: Use this id; an existing id makes this a no-op (``created=False``).

        Raises:
            ConfigurationError: for invalid arguments.
            StorageFull: when the database or disk is full (nothing was written).
        """
        task = NewTask(
            payload=payload,
            name=name,
            queue=queue,
            priority=priority,
            run_at=run_at,
            unique_key=unique_key,
            task_id=task_id,
        )
        (outcome,) = await self.enqueue_many([task])
        return outcome

    async def enqueue_many(
        self, tasks: Iterable[NewTask | _backend.NewTask]
    ) -> builtins.list[Enqueued]:
        """Store several tasks in one transaction: all of them, or none on error.

        Raises:
            ConfigurationError: when an item is not a :class:`NewTask` (the store's or
                :class:`taskmill.abc.NewTask`).
            StorageFull: when the database or disk is full (nothing was written).
        """
        batch = [as_new_task(task) for task in tasks]
        if not batch:
            return []
        ids = [task.task_id or uuid.uuid4().hex for task in batch]
        return await self._db.run(_sql.enqueue_many, batch, ids, _clock.wall_time())

    # -- workers --------------------------------------------------------------------------
    async def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        limit: int = 1,
        lease: float | None = None,
    ) -> builtins.list[Claim]:
        """Claim up to ``limit`` due tasks: lowest priority first, then enqueue order.

        Each claim carries a new fencing token and a lease of ``lease`` seconds
        (default: the store's) on the host's monotonic clock. Malformed rows met on
        the way are dead-lettered with a reason and skipped.

        Args:
            queues: Queue names to take from (a single string is one queue).
            worker: Who claims (recorded on the task, for inspection).
            limit: At most this many tasks.
            lease: Lease seconds for these claims.
        """
        names = _checks.queue_names(queues)
        worker = _checks.text(worker, "worker")
        limit = _checks.count(limit, "limit", 1)
        seconds = self._lease if lease is None else _checks.seconds(lease, "lease")
        while True:
            taking = self._db.submit(
                _sql.claim,
                names,
                worker=worker,
                limit=limit,
                wall=_clock.wall_time(),
                lease_until=_clock.monotonic() + seconds,
                boot=self._boot,
            )
            try:
                claims, malformed = await asyncio.shield(taking)
            except asyncio.CancelledError:
                self._give_back(taking)
                raise
            if malformed:
                self._malformed += malformed
                logger.warning("dead-lettered %d malformed rows in %s", malformed, self.path)
            # A batch of only malformed rows says nothing about what is left: go on.
            if claims or malformed < _sql.MALFORMED_BATCH:
                return claims

    def _give_back(self, taking: asyncio.Future[tuple[builtins.list[Claim], int]]) -> None:
        """A cancelled claim may still commit in the thread: release what it took at once."""

        async def give_back() -> None:
            try:
                claims, _ = await taking
                for claim in claims:
                    await self.release(claim.task_id, claim.token)
            except Exception:
                logger.warning("could not release a cancelled claim", exc_info=True)

        cleanup = asyncio.create_task(give_back(), name="taskmill-sqlite-give-back")
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def renew(self, task_id: str, token: str, *, lease: float | None = None) -> Renewal:
        """Extend the lease of a claim; :attr:`Renewal.LOST` means stop working on it."""
        seconds = self._lease if lease is None else _checks.seconds(lease, "lease")
        lease_until = _clock.monotonic() + seconds
        return await self._db.run(_sql.renew, task_id, token, lease_until, self._boot)

    async def ack(self, task_id: str, token: str, result: bytes | None = None) -> bool:
        """Finish a claim as ``succeeded`` with ``result``; ``False`` if the token is stale."""
        (done,) = await self.ack_many([(task_id, token, result)])
        return done

    async def ack_many(self, acks: Iterable[tuple[str, str, bytes | None]]) -> builtins.list[bool]:
        """Acknowledge several claims in one transaction (group commit), in order."""
        batch = builtins.list(acks)
        for _, _, result in batch:
            check_result(result)
        if not batch:
            return []
        wall = _clock.wall_time()
        done = await self._db.run(_sql.ack_many, batch, wall, self._expires(wall))
        self._completions.changed()
        return done

    async def _record_failure(
        self, task_id: str, token: str, *, error: ErrorText, due: float | None, status: Failure
    ) -> bool:
        """Store a failed attempt (:meth:`nack`, arguments already checked)."""
        wall = _clock.wall_time()
        done = await self._db.run(
            _sql.nack,
            task_id,
            token,
            error=error,
            retry_at=due,
            status=status,
            wall=wall,
            expires=self._expires(wall),
        )
        self._completions.changed()
        return done

    async def release(self, task_id: str, token: str) -> bool:
        """Give a claim back at once (graceful shutdown): due now, no attempt or loss counted."""
        wall = _clock.wall_time()
        done = await self._db.run(_sql.release, task_id, token, wall, self._expires(wall))
        self._completions.changed()
        return done

    async def ack_cancelled(self, task_id: str, token: str) -> bool:
        """Finish a claim as ``cancelled`` (its owner honoured a cancel request)."""
        wall = _clock.wall_time()
        done = await self._db.run(_sql.ack_cancelled, task_id, token, wall, self._expires(wall))
        self._completions.changed()
        return done

    async def dead_letter(self, task_id: str, token: str, reason: str) -> bool:
        """Dead-letter a claim with ``reason`` (e.g. its payload cannot be decoded)."""
        reason = _checks.text(reason, "reason")
        done = await self._db.run(_sql.dead_letter, task_id, token, reason, _clock.wall_time())
        self._completions.changed()
        return done

    async def reclaim(self, limit: int = 100) -> ReclaimReport:
        """Take back up to ``limit`` expired leases; delete records whose results TTL passed.

        A lost worker counts against its task: after ``max_worker_lost`` losses the
        task is dead-lettered (``"worker lost N times"``), otherwise it is queued
        again. Leases written before this host's last reboot count as expired.
        Idempotent; run it continuously (:meth:`run_reclaimer`).
        """
        limit = _checks.count(limit, "limit", 1)
        wall = _clock.wall_time()
        report = await self._db.run(
            _sql.reclaim,
            mono=_clock.monotonic(),
            boot=self._boot,
            wall=wall,
            max_worker_lost=self._max_worker_lost,
            limit=limit,
            expires=self._expires(wall),
        )
        if report.requeued or report.dead_lettered or report.cancelled:
            self._completions.changed()
            logger.info(
                "reclaimed %d expired leases (%d dead-lettered, %d cancelled)",
                len(report.requeued) + len(report.dead_lettered) + len(report.cancelled),
                len(report.dead_lettered),
                len(report.cancelled),
            )
        return report

    async def run_reclaimer(self, interval: float = 1.0, *, limit: int = 100) -> NoReturn:
        """Run :meth:`reclaim` every ``interval`` seconds until cancelled.

        A full batch is followed at once by the next; backend errors are logged and
        retried at the next interval, never raised (no crash loop).
        """
        interval = _checks.seconds(interval, "interval")
        limit = _checks.count(limit, "limit", 1)
        while True:
            try:
                more = (await self.reclaim(limit)).more
            except BackendError:
                logger.warning("reclaim sweep on %s failed", self.path, exc_info=True)
                more = False
            if not more:
                await asyncio.sleep(interval)

    # -- anyone ---------------------------------------------------------------------------
    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task: at once if it has not started, by request if it runs.

        Raises:
            TaskNotFound: when no such task exists.
        """
        wall = _clock.wall_time()
        outcome = await self._db.run(_sql.cancel, task_id, wall, self._expires(wall))
        if outcome is None:
            raise TaskNotFound(task_id)
        self._completions.changed()
        return outcome

    async def get(self, task_id: str) -> TaskRecord | None:
        """Return the task's record, or ``None`` (unknown, purged or expired)."""
        row = await self._db.run(_queries.get, task_id, _clock.wall_time())
        if row is None:
            return None
        record = _rows.record(row)
        if record.attempt > 1 or record.error is not None:
            past = await self._db.run(_queries.history, row[0])
            record = _rows.with_history(record, past)
        return record

    async def list(
        self,
        *,
        status: Status | str | Iterable[Status | str] | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records in enqueue order, optionally by status(es) and queue."""
        statuses = _checks.statuses(status)
        rows = await self._db.run(
            _queries.list_rows,
            statuses=statuses,
            queue=queue,
            limit=_checks.count(limit, "limit", 1),
            offset=_checks.count(offset, "offset", 0),
            wall=_clock.wall_time(),
        )
        return [_rows.record(row) for row in rows]

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - one knob, like asyncio.wait_for
    ) -> TaskRecord:
        """Wait until the task is terminal (finished here or in any process); return its record.

        Raises:
            TaskNotFound: when no such task exists.
            TimeoutError: when ``timeout`` seconds pass first.
        """
        seconds = None if timeout is None else _checks.seconds(timeout, "timeout", allow_zero=True)
        record = await self.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        if record.terminal:
            return record
        async with asyncio.timeout(seconds):
            return await self._completions.wait(task_id)

    # -- dead letters and housekeeping ----------------------------------------------------
    async def dead_letters(self, limit: int = 100, offset: int = 0) -> builtins.list[TaskRecord]:
        """List dead letters in enqueue order (``dead_reason`` says why)."""
        return await self.list(status=Status.DEAD, limit=limit, offset=offset)

    async def requeue_dead(self, task_id: str) -> bool:
        """Queue a dead letter again (due now, worker-lost count reset); ``False`` if not dead.

        Raises:
            StateError: when a live task now holds its unique key.
        """
        done = await self._db.run(_sql.requeue_dead, task_id, _clock.wall_time())
        self._completions.changed()
        return done

    async def purge_dead(self, *task_ids: str, everything: bool = False) -> int:
        """Delete the named dead letters, or all of them with ``everything=True``."""
        check_purge(task_ids, everything=everything)
        return await self._db.run(_sql.purge_dead, None if everything else builtins.list(task_ids))

    async def purge_results(self, older_than: float) -> int:
        """Delete terminal records (not dead letters) that finished ``older_than`` seconds ago."""
        cutoff = _clock.wall_time() - _checks.seconds(older_than, "older_than", allow_zero=True)
        return await self._db.run(_sql.purge_results, cutoff)

    async def statistics(self) -> StoreStatistics:
        """Count tasks by status and queue and read the schedule edges (one snapshot)."""
        wall = _clock.wall_time()
        counts = await self._db.run(
            _queries.statistics, wall=wall, mono=_clock.monotonic(), boot=self._boot
        )
        return counts.snapshot(
            path=self.path,
            synchronous=self._db.synchronous,
            wall=wall,
            busy_retries=self._db.busy_retries,
            malformed=self._malformed,
        )
