"""What the dashboard needs from a store: the inspection API both durable stores share.

:class:`~taskmill.sqlite.SqliteStore` and :class:`~taskmill.redis.RedisStore` fit
these protocols structurally; so does any store with the same calls.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Protocol

from taskmill._backend import CancelOutcome, RecordStatus, TaskRecord

__all__ = ["InspectableStore", "StoreStats"]


class StoreStats(Protocol):
    """The fields of a store's ``statistics()`` snapshot the dashboard reads."""

    @property
    def by_status(self) -> Mapping[str, int]:
        """Task count per status."""

    @property
    def by_queue(self) -> Mapping[str, Mapping[str, int]]:
        """Per queue, task count per status."""

    @property
    def total(self) -> int:
        """All stored tasks."""

    @property
    def running(self) -> int:
        """Tasks currently claimed."""

    @property
    def expired_leases(self) -> int:
        """Running tasks whose lease ended."""

    @property
    def dead_letters(self) -> int:
        """Dead-lettered tasks."""

    @property
    def oldest_due(self) -> float | None:
        """The earliest ``run_at`` among due, unclaimed tasks."""

    @property
    def lag(self) -> float:
        """Seconds since ``oldest_due``."""

    @property
    def next_scheduled(self) -> float | None:
        """The earliest ``run_at`` among tasks not yet due."""


class InspectableStore(Protocol):
    """The store calls the dashboard makes (both durable stores have them)."""

    async def statistics(self) -> StoreStats:
        """Return a snapshot of counts."""

    async def list(
        self,
        *,
        status: RecordStatus | str | Iterable[RecordStatus | str] | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records, optionally by status(es) and queue."""

    async def get(self, task_id: str) -> TaskRecord | None:
        """Return one record, or ``None``."""

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> builtins.list[TaskRecord]:
        """List dead letters."""

    async def requeue_dead(self, task_id: str) -> bool:
        """Queue a dead letter again; ``False`` if it is not dead."""

    async def purge_dead(self, *task_ids: str, everything: bool = False) -> int:
        """Delete dead letters; return how many."""

    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task."""
