"""Public protocols: what you implement to plug into taskmill.

* :class:`Backend`: where a task manager keeps tasks, schedules, leases, results
  and dead letters. :class:`taskmill.MemoryBackend` is the in-process
  implementation; the durable stores (``taskmill.sqlite``, ``taskmill.redis``) have
  the same operations. :mod:`taskmill.testing` ships the conformance suite every
  backend must pass (:class:`taskmill.testing.BackendConformance`).
* :class:`Backoff` (re-exported): delay functions for retries.
* :class:`Metrics` (re-exported): what jobs report to a metrics system.

The value types of the Backend protocol (:class:`Claim`, :class:`TaskRecord`, ...)
are defined here too. (The payload ``Serializer`` protocol lives in
``taskmill.payloads``, which needs the ``msgspec`` extra.)

The Backend contract, in short (every backend, same semantics):

* **enqueue**: ``queued`` (or ``scheduled`` with a future ``run_at``); a live
  ``unique_key`` or an existing ``task_id`` returns the existing id, ``created=False``.
* **claim**: due tasks only, lower priority first, FIFO within a priority; each
  delivery gets a new fencing *token* and a *lease*; ``deliveries`` counts them.
* **renew / ack / nack / release / dead_letter** are conditional on the token: a
  stale token (the lease was reclaimed, or the task finished) is refused and
  changes nothing (``False`` / :attr:`Renewal.LOST`).
* **nack** with ``retry_at`` -> ``retrying`` with ``attempt + 1``, due at
  ``retry_at`` (retries live in the backend); without -> terminal ``failed`` /
  ``timed_out`` / ``cancelled``. **release** -> ``queued`` at once with no attempt
  penalty (graceful shutdown).
* **cancel**: queued/scheduled/retrying -> ``cancelled`` at once; running -> a
  cancel request the owner sees on its next ``renew``; from any process.
* **reclaim**: expired leases -> ``worker_lost + 1`` -> back to ``queued``, or a
  dead letter (reason given) once ``worker_lost`` reaches the limit; a cancel
  request whose worker is lost ends ``cancelled``. Idempotent, bounded.
* unique keys are released at the terminal transition; terminal records expire
  after the results TTL; dead letters can be listed, requeued and purged.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ._backend import (
    AttemptError,
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
from ._backoff import Backoff
from ._metrics import Metrics

__all__ = [
    "AttemptError",
    "Backend",
    "BackendStatistics",
    "Backoff",
    "CancelOutcome",
    "Claim",
    "Enqueued",
    "ErrorText",
    "FailStatus",
    "Metrics",
    "NewTask",
    "ReclaimReport",
    "RecordStatus",
    "Renewal",
    "TaskRecord",
]


@runtime_checkable
class Backend(Protocol):
    """Where tasks live between submit and result (see the module doc for the contract).

    Every method is a coroutine and safe to call concurrently from one event loop.
    Times are float seconds: ``run_at`` / ``*_at`` are POSIX wall time, leases are
    timed by the backend's own clock.
    """

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
        """Store one task; due at ``run_at`` (``None`` = now)."""
        ...

    async def enqueue_many(self, tasks: Sequence[NewTask]) -> builtins.list[Enqueued]:
        """Store several tasks at once (one transaction where the backend has them)."""
        ...

    async def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        limit: int = 1,
        lease: float | None = None,
    ) -> builtins.list[Claim]:
        """Take up to ``limit`` due tasks from ``queues`` for ``worker``, each with a lease."""
        ...

    async def renew(self, task_id: str, token: str, *, lease: float | None = None) -> Renewal:
        """Extend a lease; says whether it is still held and whether a cancel was asked."""
        ...

    async def ack(self, task_id: str, token: str, result: Any) -> bool:
        """Finish a delivery as ``succeeded`` with ``result``; False if the token is stale."""
        ...

    async def ack_many(self, acks: Sequence[tuple[str, str, Any]]) -> builtins.list[bool]:
        """Acknowledge several ``(task_id, token, result)`` deliveries at once."""
        ...

    async def nack(
        self,
        task_id: str,
        token: str,
        *,
        error: ErrorText,
        retry_at: float | None = None,
        status: FailStatus = "failed",
    ) -> bool:
        """Report a failed attempt: retry at ``retry_at``, or end with ``status``."""
        ...

    async def release(self, task_id: str, token: str) -> bool:
        """Give a delivery back unrun: ``queued`` now, no attempt or worker-lost penalty."""
        ...

    async def dead_letter(self, task_id: str, token: str, reason: str) -> bool:
        """Move a delivery to the dead letters (e.g. its payload cannot be decoded)."""
        ...

    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task (at once if not running, else by request)."""
        ...

    async def get(self, task_id: str) -> TaskRecord | None:
        """Return a task's record, or None if unknown (or expired)."""
        ...

    async def list(
        self,
        *,
        status: RecordStatus | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records in enqueue order, optionally by status and queue."""
        ...

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109  # the store API's shape
    ) -> TaskRecord:
        """Wait until a task is terminal and return its record (TimeoutError after ``timeout``)."""
        ...

    async def reclaim(self, limit: int = 100) -> ReclaimReport:
        """Sweep expired leases (and expired results); bounded and idempotent."""
        ...

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> builtins.list[TaskRecord]:
        """List dead letters, oldest first."""
        ...

    async def requeue_dead(self, task_id: str) -> bool:
        """Give a dead letter another life (``queued``, worker-lost count reset)."""
        ...

    async def purge_dead(self, *task_ids: str, everything: bool = False) -> int:
        """Delete the named dead letters, or all with ``everything=True``; return how many.

        A bare ``purge_dead()`` is a ``ConfigurationError``: nothing is purged by accident.
        """
        ...

    async def purge_results(self, older_than: float) -> int:
        """Delete terminal (non-dead) records that finished ``older_than`` seconds ago or more."""
        ...

    async def statistics(self) -> Any:
        """Return a snapshot (counts by status and queue, at least)."""
        ...

    async def close(self) -> None:
        """Release resources; later calls fail."""
        ...


# The value types report their public home (reprs and docs say taskmill.abc.X).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "") == "taskmill._backend":
        _obj.__module__ = __name__
del _name, _obj
