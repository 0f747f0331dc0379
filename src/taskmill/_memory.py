"""The in-process implementation of :class:`taskmill.abc.Backend`.

Payloads and results are kept as Python objects (no serialization, no I/O); the
structures are the manager's pure cores: one :class:`~taskmill._scheduler.ReadyQueue`
per queue, a :class:`~taskmill._scheduler.TimerHeap` of scheduled and retrying
tasks (by ``run_at``, wall clock), one of leases (by ``lease_until``, lease clock)
and one of results to expire. Entries that went stale (a cancelled task, a renewed
lease) are skipped when they surface, so every operation is O(log n) or better.

Clocks are injectable (defaults: :func:`taskmill._clock.monotonic` for leases,
:func:`taskmill._clock.wall_time` for ``run_at``), so on the virtual-time loop a
test moves both by sleeping.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets
from collections.abc import Callable, Sequence
from typing import Any, final

from . import _clock
from ._backend import (
    BackendStatistics,
    CancelOutcome,
    Claim,
    Enqueued,
    ErrorText,
    FailStatus,
    NewTask,
    ReclaimReport,
    RecordStatus,
    Renewal,
    TaskRecord,
)
from ._errors import ConfigurationError, NotRunning, TaskNotFound
from ._memrecord import (
    DEAD,
    FAIL_STATUSES,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    Rec,
    seconds,
    text,
)
from ._scheduler import ReadyQueue, TimerHeap

__all__ = ["MemoryBackend"]


@final
class MemoryBackend:
    """Tasks in this process's memory, with the full Backend semantics (no durability).

    Args:
        lease: Default lease length in seconds for ``claim`` and ``renew``.
        max_worker_lost: Deliveries that may end with a lost worker before the task
            is dead-lettered.
        results_ttl: Seconds terminal records are kept (``None`` = until purged).
        lease_clock: Lease clock (default: the running loop's clock).
        wall_clock: POSIX wall clock for ``run_at`` (default: follows virtual time).

    Raises:
        ConfigurationError: A parameter is invalid.
    """

    __slots__ = (
        "_closed",
        "_dead",
        "_expiry",
        "_lease",
        "_lease_clock",
        "_leases",
        "_max_lost",
        "_prefix",
        "_ready",
        "_records",
        "_seq",
        "_timers",
        "_ttl",
        "_unique",
        "_waiters",
        "_wall",
    )

    def __init__(
        self,
        *,
        lease: float = 30.0,
        max_worker_lost: int = 3,
        results_ttl: float | None = None,
        lease_clock: Callable[[], float] = _clock.monotonic,
        wall_clock: Callable[[], float] = _clock.wall_time,
    ) -> None:
        seconds(lease, "lease")
        if lease <= 0:
            raise ConfigurationError(f"lease must be > 0, got {lease!r}")
        lost: object = max_worker_lost
        if isinstance(lost, bool) or not isinstance(lost, int) or lost < 1:
            raise ConfigurationError(f"max_worker_lost must be an int >= 1, got {lost!r}")
        seconds(results_ttl, "results_ttl", optional=True)
        if results_ttl is not None and results_ttl < 0:
            raise ConfigurationError(f"results_ttl must be >= 0, got {results_ttl!r}")
        self._lease = float(lease)
        self._max_lost = max_worker_lost
        self._ttl = results_ttl
        self._lease_clock = lease_clock
        self._wall = wall_clock
        self._prefix = secrets.token_hex(4)
        self._seq = 0
        self._closed = False
        self._records: dict[str, Rec] = {}
        self._ready: dict[str, ReadyQueue[Rec]] = {}
        self._timers: TimerHeap[Rec] = TimerHeap()
        self._leases: TimerHeap[tuple[Rec, str, float]] = TimerHeap()
        self._expiry: TimerHeap[Rec] = TimerHeap()
        self._unique: dict[str, str] = {}
        self._dead: dict[str, None] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryBackend {state} records={len(self._records)} dead={len(self._dead)}>"

    async def __aenter__(self) -> MemoryBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- helpers --------------------------------------------------------------------
    def _open(self) -> None:
        if self._closed:
            raise NotRunning("this MemoryBackend is closed")

    def _queue(self, rec: Rec) -> None:
        rec.status = QUEUED
        rec.token = None
        self._ready.setdefault(rec.queue, ReadyQueue()).push(rec.priority, rec)

    def _owned(self, task_id: str, token: str) -> Rec | None:
        rec = self._records.get(task_id)
        if rec is None or rec.status is not RUNNING or rec.token != token:
            return None
        return rec

    def _end(self, rec: Rec, status: RecordStatus) -> None:
        """Make ``rec`` terminal: release its key and lease, wake waiters, arm expiry."""
        rec.status = status
        rec.token = None
        rec.finished_at = now = self._wall()
        key = rec.unique_key
        if key is not None and self._unique.get(key) == rec.task_id:
            del self._unique[key]
        if status is DEAD:
            self._dead[rec.task_id] = None
        elif self._ttl is not None:
            rec.expires_at = now + self._ttl
            self._expiry.push(rec.expires_at, rec)
        for future in self._waiters.pop(rec.task_id, ()):
            if not future.done():
                future.set_result(None)

    def _promote(self, now: float) -> None:
        """Move due scheduled and retrying tasks to their ready queues."""
        timers = self._timers
        while (rec := timers.pop_due(now)) is not None:
            if rec.status is SCHEDULED or rec.status is RETRYING:
                self._queue(rec)

    # -- enqueue ------------------------------------------------------------------------
    async def enqueue(
        self,
        payload: Any,
        *,
        name: str,
        queue: str = "default",
        priority: int = 0,
        run_at: float | None = None,
        unique_key: str | None = None,
        task_id: str | None = None,
    ) -> Enqueued:
        """Store one task (see :class:`taskmill.abc.Backend`)."""
        task = NewTask(
            payload=payload,
            name=name,
            queue=queue,
            priority=priority,
            run_at=run_at,
            unique_key=unique_key,
            task_id=task_id,
        )
        return self._enqueue(task)

    async def enqueue_many(self, tasks: Sequence[NewTask]) -> builtins.list[Enqueued]:
        """Store several tasks."""
        return [self._enqueue(task) for task in tasks]

    def _enqueue(self, task: NewTask) -> Enqueued:
        self._open()
        text(task.name, "name")
        text(task.queue, "queue")
        text(task.unique_key, "unique_key", optional=True)
        text(task.task_id, "task_id", optional=True)
        seconds(task.run_at, "run_at", optional=True)
        prio: object = task.priority
        if isinstance(prio, bool) or not isinstance(prio, int):
            raise ConfigurationError(f"priority must be an int, got {prio!r}")
        if task.task_id is not None and task.task_id in self._records:
            return Enqueued(task_id=task.task_id, created=False)
        key = task.unique_key
        if key is not None and key in self._unique:
            return Enqueued(task_id=self._unique[key], created=False)
        self._seq += 1
        task_id = task.task_id or f"{self._prefix}-{self._seq:010x}"
        rec = Rec(task, task_id, self._wall(), self._seq)
        self._records[rec.task_id] = rec
        if key is not None:
            self._unique[key] = rec.task_id
        if rec.status is SCHEDULED:
            self._timers.push(rec.run_at, rec)
        else:
            self._queue(rec)
        return Enqueued(task_id=rec.task_id, created=True)

    # -- claiming ------------------------------------------------------------------------
    async def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        limit: int = 1,
        lease: float | None = None,
    ) -> builtins.list[Claim]:
        """Take up to ``limit`` due tasks, best priority first, FIFO within a priority."""
        self._open()
        if isinstance(queues, str) or not queues:
            raise ConfigurationError(
                f"queues must be a non-empty sequence of names, got {queues!r}"
            )
        text(worker, "worker")
        count: object = limit
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"limit must be an int >= 1, got {count!r}")
        length = self._lease_length(lease)
        self._promote(self._wall())
        claims: list[Claim] = []
        while len(claims) < limit and (rec := self._pop_best(queues)) is not None:
            claims.append(self._deliver(rec, worker, length))
        return claims

    def _lease_length(self, lease: float | None) -> float:
        if lease is None:
            return self._lease
        seconds(lease, "lease")
        if lease <= 0:
            raise ConfigurationError(f"lease must be > 0, got {lease!r}")
        return float(lease)

    def _pop_best(self, queues: Sequence[str]) -> Rec | None:
        """Pop the best live entry across ``queues`` (losers go back to their fronts)."""
        heads: list[Rec] = []
        for name in queues:
            ready = self._ready.get(name)
            while ready is not None and (rec := ready.pop()) is not None:
                if rec.status is QUEUED:
                    heads.append(rec)
                    break
        if not heads:
            return None
        best = min(heads, key=lambda rec: (rec.priority, rec.seq))
        for rec in heads:
            if rec is not best:
                self._ready[rec.queue].push_front(rec.priority, rec)
        return best

    def _deliver(self, rec: Rec, worker: str, length: float) -> Claim:
        rec.status = RUNNING
        rec.deliveries += 1
        rec.worker = worker
        rec.token = f"{rec.task_id}.{rec.deliveries}.{secrets.token_hex(4)}"
        rec.started_at = self._wall()
        rec.lease_until = self._lease_clock() + length
        self._leases.push(rec.lease_until, (rec, rec.token, rec.lease_until))
        return rec.claim()

    async def renew(self, task_id: str, token: str, lease: float | None = None) -> Renewal:
        """Extend a lease (see :class:`taskmill.abc.Backend`)."""
        self._open()
        length = self._lease_length(lease)
        rec = self._owned(task_id, token)
        if rec is None or rec.lease_until <= self._lease_clock():
            return Renewal.LOST
        rec.lease_until = self._lease_clock() + length
        self._leases.push(rec.lease_until, (rec, token, rec.lease_until))
        return Renewal.CANCEL_REQUESTED if rec.cancel_requested else Renewal.HELD

    # -- outcomes --------------------------------------------------------------------------
    async def ack(self, task_id: str, token: str, result: Any) -> bool:
        """Finish a delivery as succeeded."""
        self._open()
        return self._ack(task_id, token, result)

    async def ack_many(self, acks: Sequence[tuple[str, str, Any]]) -> builtins.list[bool]:
        """Acknowledge several deliveries."""
        self._open()
        return [self._ack(task_id, token, result) for task_id, token, result in acks]

    def _ack(self, task_id: str, token: str, result: Any) -> bool:
        rec = self._owned(task_id, token)
        if rec is None:
            return False
        rec.result = result
        self._end(rec, RecordStatus.SUCCEEDED)
        return True

    async def nack(
        self,
        task_id: str,
        token: str,
        *,
        error: ErrorText,
        retry_at: float | None = None,
        status: FailStatus = "failed",
    ) -> bool:
        """Report a failed attempt: retry at ``retry_at`` or end with ``status``."""
        self._open()
        seconds(retry_at, "retry_at", optional=True)
        if status not in FAIL_STATUSES:
            raise ConfigurationError(
                f"status must be one of {sorted(FAIL_STATUSES)}, got {status!r}"
            )
        rec = self._owned(task_id, token)
        if rec is None:
            return False
        rec.error = error
        if retry_at is None:
            self._end(rec, FAIL_STATUSES[status])
            return True
        rec.status = RETRYING
        rec.token = None
        rec.attempt += 1
        rec.run_at = retry_at
        self._timers.push(retry_at, rec)
        return True

    async def release(self, task_id: str, token: str) -> bool:
        """Give a delivery back unrun (no attempt or worker-lost penalty)."""
        self._open()
        rec = self._owned(task_id, token)
        if rec is None:
            return False
        self._queue(rec)
        return True

    async def dead_letter(self, task_id: str, token: str, reason: str) -> bool:
        """Move a delivery to the dead letters with ``reason``."""
        self._open()
        rec = self._owned(task_id, token)
        if rec is None:
            return False
        rec.dead_reason = reason
        self._end(rec, DEAD)
        return True

    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task; raises TaskNotFound for an unknown id."""
        self._open()
        rec = self._records.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if rec.status.terminal:
            return CancelOutcome.FINISHED
        if rec.status is RUNNING:
            rec.cancel_requested = True
            return CancelOutcome.REQUESTED
        self._end(rec, RecordStatus.CANCELLED)
        return CancelOutcome.CANCELLED

    # -- reading -----------------------------------------------------------------------------
    async def get(self, task_id: str) -> TaskRecord | None:
        """Return a task's record, or None."""
        self._open()
        rec = self._records.get(task_id)
        return None if rec is None else rec.snapshot()

    async def list(
        self,
        *,
        status: RecordStatus | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records in enqueue order, optionally filtered."""
        self._open()
        wanted = None if status is None else RecordStatus(status)
        found = [
            rec
            for rec in self._records.values()
            if (wanted is None or rec.status is wanted) and (queue is None or rec.queue == queue)
        ]
        return [rec.snapshot() for rec in found[offset : offset + limit]]

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109  # the store API's shape
    ) -> TaskRecord:
        """Wait for a task's terminal record (TimeoutError after ``timeout``)."""
        self._open()
        rec = self._records.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if not rec.status.terminal:
            future = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(task_id, [])
            waiters.append(future)
            try:
                async with asyncio.timeout(timeout):
                    await future
            finally:
                if future in waiters:
                    waiters.remove(future)
        return rec.snapshot()

    # -- maintenance ---------------------------------------------------------------------------
    async def reclaim(self, limit: int = 100) -> ReclaimReport:
        """Sweep expired leases and expired results (at most ``limit`` of each)."""
        self._open()
        requeued: list[str] = []
        dead: list[str] = []
        cancelled: list[str] = []
        now = self._lease_clock()
        handled = 0
        while handled < limit and (entry := self._leases.pop_due(now)) is not None:
            rec, token, until = entry
            if rec.status is not RUNNING or rec.token != token or rec.lease_until != until:
                continue  # renewed, finished or released since
            handled += 1
            rec.worker_lost += 1
            if rec.cancel_requested:
                self._end(rec, RecordStatus.CANCELLED)
                cancelled.append(rec.task_id)
            elif rec.worker_lost >= self._max_lost:
                rec.dead_reason = f"worker lost {rec.worker_lost} times"
                self._end(rec, DEAD)
                dead.append(rec.task_id)
            else:
                self._queue(rec)
                requeued.append(rec.task_id)
        upcoming = self._leases.next_when()
        more = handled >= limit and upcoming is not None and upcoming <= now
        return ReclaimReport(
            requeued=tuple(requeued),
            dead_lettered=tuple(dead),
            cancelled=tuple(cancelled),
            expired=self._expire(limit),
            more=more,
        )

    def _expire(self, limit: int) -> int:
        now = self._wall()
        count = 0
        while count < limit and (rec := self._expiry.pop_due(now)) is not None:
            if self._records.get(rec.task_id) is rec and rec.expires_at is not None:
                del self._records[rec.task_id]
                count += 1
        return count

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> builtins.list[TaskRecord]:
        """List dead letters, oldest first."""
        self._open()
        ids = list(self._dead)[offset : offset + limit]
        return [self._records[task_id].snapshot() for task_id in ids]

    async def requeue_dead(self, task_id: str) -> bool:
        """Requeue a dead letter (worker-lost count reset; its unique key is not re-taken)."""
        self._open()
        rec = self._records.get(task_id)
        if rec is None or rec.status is not DEAD:
            return False
        del self._dead[task_id]
        rec.worker_lost = 0
        rec.dead_reason = None
        rec.finished_at = None
        rec.unique_key = None
        self._queue(rec)
        return True

    async def purge_dead(self, *task_ids: str, everything: bool = False) -> int:
        """Delete the named dead letters, or all with ``everything=True``; return how many."""
        self._open()
        if everything == bool(task_ids):
            raise ConfigurationError("purge_dead takes task ids, or everything=True (not both)")
        ids = list(self._dead) if everything else [t for t in task_ids if t in self._dead]
        for dead_id in ids:
            del self._dead[dead_id]
            del self._records[dead_id]
        return len(ids)

    async def purge_results(self, older_than: float) -> int:
        """Delete terminal (non-dead) records that finished ``older_than`` seconds ago or more."""
        self._open()
        seconds(older_than, "older_than")
        if older_than < 0:
            raise ConfigurationError(f"older_than must be >= 0, got {older_than!r}")
        cutoff = self._wall() - older_than
        doomed = [
            rec.task_id
            for rec in self._records.values()
            if rec.status.terminal
            and rec.status is not DEAD
            and rec.finished_at is not None
            and rec.finished_at <= cutoff
        ]
        for task_id in doomed:
            del self._records[task_id]
        return len(doomed)

    async def statistics(self) -> BackendStatistics:
        """Count tasks by status and queue."""
        self._open()
        by_status = dict.fromkeys((s.value for s in RecordStatus), 0)
        by_queue: dict[str, dict[str, int]] = {}
        now = self._lease_clock()
        expired = 0
        for rec in self._records.values():
            by_status[rec.status.value] += 1
            per_queue = by_queue.setdefault(rec.queue, {})
            per_queue[rec.status.value] = per_queue.get(rec.status.value, 0) + 1
            expired += rec.status is RUNNING and rec.lease_until <= now
        pending = [r.run_at for r in self._records.values() if r.status in (SCHEDULED, RETRYING)]
        return BackendStatistics(
            by_status=by_status,
            by_queue=by_queue,
            total=len(self._records),
            running=by_status[RUNNING.value],
            expired_leases=expired,
            dead_letters=len(self._dead),
            next_scheduled=min(pending, default=None),
        )

    async def close(self) -> None:
        """Close the backend; pending waiters are woken and later calls fail."""
        self._closed = True
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(NotRunning("the MemoryBackend was closed"))
        self._waiters.clear()
