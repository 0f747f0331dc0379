"""The read side of :class:`~taskmill.redis.RedisStore`: lookups, waits, listings, housekeeping.

:class:`StoreCore` holds the connection, the registered scripts and the epoch marker;
the store in :mod:`._store` adds the producer and worker operations.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from taskmill._errors import BackendError, StateError, TaskNotFound
from taskmill._storecheck import StoreFacade, check_purge

from . import _ops, _scripts
from ._conn import backend_errors, new_epoch, redact
from ._keys import Keys, check_queue, check_text
from ._limits import FIELDS, QueueLimits, limit_fields, parse_limits
from ._notify import Completions
from ._types import (
    RedisStoreStatistics,
    Status,
    TaskRecord,
)

__all__ = ["StoreCore"]

logger = logging.getLogger(__name__)

_RECHECK: Final = 5.0


class StoreCore(StoreFacade):
    """Connection, scripts, epoch marker, and every operation that needs no claim."""

    def __init__(
        self,
        client: Redis,
        *,
        url: str,
        keys: Keys,
        lease: float,
        max_worker_lost: int,
        results_ttl: float | None,
        block_limit: float,
    ) -> None:
        self._client = client
        self._url = url
        self._keys = keys
        self._lease = lease
        self._max_worker_lost = max_worker_lost
        self._results_ttl = results_ttl
        self._block_limit = block_limit
        self._scripts = {
            name: client.register_script(getattr(_scripts, name)) for name in _scripts.__all__
        }
        self._known: set[str] = set()
        self._epoch: str | None = None
        self._epoch_losses = 0
        self._closed = False
        self._completions = Completions(client)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<RedisStore {redact(self._url)} prefix={self._keys.prefix!r} {state} "
            f"lease={self._lease:g}s waiting={self._completions.waiting}>"
        )

    @property
    def url(self) -> str:
        """The server URL, password removed."""
        return redact(self._url)

    @property
    def lease(self) -> float:
        """The default lease in seconds."""
        return self._lease

    @property
    def client(self) -> Redis:
        """The underlying redis-py client (for inspection and tests)."""
        return self._client

    @property
    def keys(self) -> Keys:
        """The key names this store uses."""
        return self._keys

    async def _call(self, name: str, queue: str, args: Sequence[object], what: str) -> Any:
        script: AsyncScript = self._scripts[name]
        with backend_errors(self._url, what):
            return await script(keys=[self._keys.records(queue)], args=args)  # type: ignore[arg-type]

    async def _fan_out(
        self, name: str, args: dict[str, builtins.list[object]], what: str
    ) -> builtins.list[Any]:
        """Run one script per queue, concurrently (one round trip for one queue)."""
        calls = [self._call(name, queue, queue_args, what) for queue, queue_args in args.items()]
        if len(calls) == 1:
            return [await calls[0]]
        return builtins.list(await asyncio.gather(*calls))

    async def configure_queue(
        self,
        queue: str,
        *,
        max_queued: int | None = None,
        max_running: int | None = None,
        rate: float | None = None,
        burst: int | None = None,
    ) -> QueueLimits:
        """Set the cluster-wide limits of ``queue``, replacing its previous ones.

        The limits live in Redis: every producer and worker obeys them from its next
        enqueue or claim. ``None`` removes a limit; with no arguments the queue is
        unlimited again. See :class:`QueueLimits` for what each one bounds.

        Raises:
            ConfigurationError: for an invalid limit or queue name.
        """
        limits = QueueLimits(max_queued=max_queued, max_running=max_running, rate=rate, burst=burst)
        kept = limit_fields(limits)
        key = self._keys.limits(check_queue(queue))
        with backend_errors(self._url, "configure_queue"):
            async with self._client.pipeline(transaction=True) as pipe:
                _ = pipe.hdel(key, *FIELDS)
                if kept:
                    _ = pipe.hset(key, mapping=kept)  # type: ignore[arg-type]
                await pipe.execute()
        return limits

    async def queue_limits(self, queue: str) -> QueueLimits:
        """Return the limits of ``queue`` as stored in Redis."""
        key = self._keys.limits(check_queue(queue))
        with backend_errors(self._url, "queue_limits"):
            values = await self._client.hmget(key, builtins.list(FIELDS))
        return parse_limits(values)

    def _ttl_ms(self) -> int:
        return 0 if self._results_ttl is None else round(self._results_ttl * 1000)

    async def check_epoch(self) -> None:
        """Check that Redis still holds this store's data (the epoch marker).

        Raises:
            BackendError: when the marker vanished or changed: Redis restarted empty
                (or was flushed) and every task it held is gone. The new marker is
                adopted, so the next check passes.
        """
        with backend_errors(self._url, "epoch check"):
            current = _ops.text(await self._client.get(self._keys.epoch))
            if current is None:
                await self._client.set(self._keys.epoch, new_epoch(), nx=True)
                current = _ops.text(await self._client.get(self._keys.epoch))
        if current == self._epoch:
            return
        previous, self._epoch = self._epoch, current
        self._epoch_losses += 1
        self._known.clear()
        message = (
            f"Redis at {redact(self._url)} lost its data: the epoch marker {previous!r} is "
            "gone (restarted empty or flushed); tasks it held are lost"
        )
        logger.error(message)
        raise BackendError(message, backend="redis")

    async def queues(self) -> builtins.list[str]:
        """Return the known queue names (every queue ever enqueued to)."""
        with backend_errors(self._url, "queues"):
            members = await self._client.smembers(self._keys.queues)
        names = sorted(_ops.text(member) or "" for member in members)
        self._known.update(names)
        return names

    async def _find(self, task_id: str) -> tuple[str, TaskRecord] | None:
        task_id = check_text(task_id, "task_id")
        queues = await self.queues()
        replies = await self._fan_out("GET", {queue: [task_id] for queue in queues}, "get")
        for queue, reply in zip(queues, replies, strict=True):
            if reply:
                return queue, _ops.found(task_id, queue, reply)
        return None

    async def get(self, task_id: str) -> TaskRecord | None:
        """Return the task's record, or ``None`` (unknown, purged or expired)."""
        found = await self._find(task_id)
        return None if found is None else found[1]

    async def list(
        self,
        *,
        status: Status | str | Iterable[Status | str] | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[TaskRecord]:
        """List records by status(es) and queue, in each index's order.

        Order: running (by lease), queued (priority, FIFO), scheduled and retrying
        (by due time), finished (by finish time), dead (by time). Each index scans at
        most 10,000 entries per call.
        """
        wanted = _ops.statuses(status)
        limit = _ops.count(limit, "limit", 1)
        offset = _ops.count(offset, "offset", 0)
        queues = [check_queue(queue)] if queue is not None else await self.queues()
        out: builtins.list[TaskRecord] = []
        for index, codes in _ops.list_plan(wanted):
            for name in queues:
                args = (index, codes, 0, offset + limit, 10_000)
                reply = await self._call("LIST", name, args, "list")
                out.extend(_ops.listed(name, reply))
        return out[offset : offset + limit]

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - one knob, like asyncio.wait_for
    ) -> TaskRecord:
        """Wait until the task is terminal (in any process); return its record.

        Subscribes to the task's completion channel first, then reads the record, so
        no completion is missed; nothing polls while it waits.

        Raises:
            TaskNotFound: when no such task exists (or its record expired meanwhile).
            TimeoutError: when ``timeout`` seconds pass first.
        """
        seconds = None if timeout is None else _ops.seconds(timeout, "timeout", allow_zero=True)
        async with asyncio.timeout(seconds):
            found = await self._find(task_id)
            if found is None:
                raise TaskNotFound(task_id)
            queue, record = found
            if record.terminal:
                return record
            channel = self._keys.channel(queue, task_id)
            async with self._completions.subscribed(channel) as event:
                while True:
                    record_or_none = await self.get(task_id)
                    if record_or_none is None:
                        raise TaskNotFound(task_id)
                    if record_or_none.terminal:
                        return record_or_none
                    event.clear()
                    try:
                        async with asyncio.timeout(_RECHECK):
                            await event.wait()
                    except TimeoutError:
                        continue

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> builtins.list[TaskRecord]:
        """List dead letters (``dead_reason`` says why), oldest first."""
        return await self.list(status=Status.DEAD, limit=limit, offset=offset)

    async def requeue_dead(self, task_id: str) -> bool:
        """Queue a dead letter again (due now, worker-lost count reset); ``False`` if not dead.

        Raises:
            StateError: when a live task now holds its unique key.
        """
        found = await self._find(task_id)
        if found is None:
            return False
        reply = await self._call("REQUEUE_DEAD", found[0], (task_id,), "requeue_dead")
        if reply == -1:
            raise StateError(f"cannot requeue {task_id!r}: a live task holds its unique key")
        return bool(reply == 1)

    async def purge_dead(self, *task_ids: str, everything: bool = False) -> int:
        """Delete the named dead letters, or all of them with ``everything=True``."""
        check_purge(task_ids, everything=everything)
        purged = 0
        for queue in await self.queues():
            if everything:
                while (n := await self._purge_dead(queue, ())) > 0:
                    purged += n
            else:
                purged += await self._purge_dead(queue, task_ids)
        return purged

    async def _purge_dead(self, queue: str, task_ids: Sequence[str]) -> int:
        reply = await self._call("PURGE_DEAD", queue, (1000, *task_ids), "purge_dead")
        return int(reply)

    async def purge_results(self, older_than: float) -> int:
        """Delete terminal records (not dead letters) that finished ``older_than`` seconds ago."""
        cutoff = round(_ops.seconds(older_than, "older_than", allow_zero=True) * 1000)
        purged = 0
        for queue in await self.queues():
            while True:
                reply = await self._call("PURGE_RESULTS", queue, (cutoff, 1000), "purge_results")
                purged += int(reply)
                if int(reply) < 1000:
                    break
        return purged

    async def statistics(self) -> RedisStoreStatistics:
        """Count tasks by status and queue and read the schedule edges."""
        queues = await self.queues()
        replies = [await self._call("STATS", queue, (), "statistics") for queue in queues]
        return _ops.statistics(
            url=redact(self._url),
            prefix=self._keys.prefix,
            queues=queues,
            replies=replies,
            epoch_losses=self._epoch_losses,
        )
