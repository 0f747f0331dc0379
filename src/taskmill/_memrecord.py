"""The memory backend's mutable task record and argument checks (see :mod:`taskmill._memory`)."""

from __future__ import annotations

import math
from typing import Any, Final, final

from ._backend import LIVE_STATUSES, Claim, ErrorText, NewTask, RecordStatus, TaskRecord
from ._errors import ConfigurationError

__all__ = [
    "DEAD",
    "FAIL_STATUSES",
    "QUEUED",
    "RETRYING",
    "RUNNING",
    "SCHEDULED",
    "Rec",
    "seconds",
    "text",
]

QUEUED: Final = RecordStatus.QUEUED
SCHEDULED: Final = RecordStatus.SCHEDULED
RUNNING: Final = RecordStatus.RUNNING
RETRYING: Final = RecordStatus.RETRYING
DEAD: Final = RecordStatus.DEAD
FAIL_STATUSES: Final = {
    "failed": RecordStatus.FAILED,
    "timed_out": RecordStatus.TIMED_OUT,
    "cancelled": RecordStatus.CANCELLED,
}


def text(value: object, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty str, got {value!r}")


def seconds(value: object, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number of seconds, got {value!r}")


@final
class Rec:
    """A mutable stored task (snapshots are TaskRecords)."""

    __slots__ = (
        "attempt",
        "cancel_requested",
        "dead_reason",
        "deliveries",
        "enqueued_at",
        "error",
        "expires_at",
        "finished_at",
        "lease_until",
        "name",
        "payload",
        "priority",
        "queue",
        "result",
        "run_at",
        "seq",
        "started_at",
        "status",
        "task_id",
        "token",
        "unique_key",
        "worker",
        "worker_lost",
    )

    def __init__(self, task: NewTask, task_id: str, now: float, seq: int) -> None:
        self.task_id = task_id
        self.seq = seq
        self.name = task.name
        self.queue = task.queue
        self.priority = task.priority
        self.payload = task.payload
        self.unique_key = task.unique_key
        self.enqueued_at = now
        self.run_at = now if task.run_at is None else task.run_at
        self.status = QUEUED if self.run_at <= now else SCHEDULED
        self.attempt = 1
        self.deliveries = self.worker_lost = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.expires_at: float | None = None
        self.worker: str | None = None
        self.token: str | None = None
        self.lease_until = 0.0
        self.cancel_requested = False
        self.result: Any = None
        self.error: ErrorText | None = None
        self.dead_reason: str | None = None

    def snapshot(self) -> TaskRecord:
        return TaskRecord(
            task_id=self.task_id,
            name=self.name,
            queue=self.queue,
            priority=self.priority,
            status=self.status,
            payload=self.payload,
            attempt=self.attempt,
            deliveries=self.deliveries,
            worker_lost=self.worker_lost,
            enqueued_at=self.enqueued_at,
            run_at=self.run_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            expires_at=self.expires_at,
            unique_key=self.unique_key if self.status in LIVE_STATUSES else None,
            worker=self.worker,
            cancel_requested=self.cancel_requested,
            result=self.result,
            error=self.error,
            dead_reason=self.dead_reason,
        )

    def claim(self) -> Claim:
        assert self.token is not None
        return Claim(
            task_id=self.task_id,
            token=self.token,
            payload=self.payload,
            name=self.name,
            queue=self.queue,
            priority=self.priority,
            attempt=self.attempt,
            deliveries=self.deliveries,
            worker_lost=self.worker_lost,
            enqueued_at=self.enqueued_at,
            run_at=self.run_at,
            unique_key=self.unique_key,
            lease_until=self.lease_until,
        )
