"""RedisStore: the lease-based task store on Redis, the same API as the SQLite store.

The async facade: it checks arguments at the call, turns them into script arguments
and decodes replies. Every state change is one Lua script (:mod:`._scripts`) timed by
Redis' clock; :mod:`._ops` holds the argument builders and reply decoders, and
docs/redis.md explains the design.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as _dt
import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import Final, NoReturn, final

from redis.asyncio import Redis

from taskmill import _clock
from taskmill._backend import NewTask as ProtocolNewTask
from taskmill._errors import BackendError, ConfigurationError, QueueFull, TaskNotFound
from taskmill._storecheck import Failure, as_new_task

from . import _ops
from ._base import StoreCore
from ._batch import Coalescer
from ._conn import backend_errors, connect, new_epoch
from ._keys import Keys, check_queue, check_text
from ._limits import full_pause
from ._types import (
    CancelOutcome,
    Claim,
    Enqueued,
    ErrorText,
    NewTask,
    ReclaimReport,
    Renewal,
    UniqueScope,
)

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

_FAILED: Final = {"failed": "F", "timed_out": "T"}
_SCOPES: Final = {"queued": "q", "running": "r", "done": "d"}


@final
class RedisStore(StoreCore):
    """A task store on Redis, shared by any number of processes on any number of hosts.

    Open it with :meth:`open`. Producers :meth:`enqueue`; workers :meth:`claim` tasks
    with a lease (on Redis' clock) and a fencing token, :meth:`renew` while they work
    and finish with :meth:`ack`, :meth:`nack`, :meth:`release` or :meth:`dead_letter`;
    every worker also runs :meth:`run_reclaimer`.
    """

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
        super().__init__(
            client,
            url=url,
            keys=keys,
            lease=lease,
            max_worker_lost=max_worker_lost,
            results_ttl=results_ttl,
            block_limit=block_limit,
        )
        self._enqueuer: Coalescer[NewTask, Enqueued] = Coalescer(self._enqueue_batch)
        self._full_wait = 30.0
        self._acker: Coalescer[tuple[str, str, bytes | None], bool] = Coalescer(self.ack_many)

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        lease: float = 30.0,
        max_worker_lost: int = 3,
        results_ttl: float | None = 86400.0,
        prefix: str = "tm",
        socket_timeout: float = 5.0,
        retries: int = 3,
        max_connections: int = 100,
        full_wait: float = 30.0,
    ) -> RedisStore:
        """Connect, check the server and write (or read) the epoch marker.

        Args:
            url: ``redis://[user:password@]host:port/db``, ``rediss://`` or ``unix://``;
                a non-loopback URL without a password logs a warning.
            lease: Default lease in seconds for :meth:`claim` and :meth:`renew`.
            max_worker_lost: Dead-letter a task once this many of its workers were lost.
            results_ttl: Seconds a terminal record (dead letters excepted) is kept;
                ``None`` keeps them until :meth:`purge_results`.
            prefix: Key prefix (several stores may share a server under different ones).
            socket_timeout: Seconds before a silent server counts as unreachable.
            retries: Reconnect attempts (jittered backoff) before a call fails with
                :class:`~taskmill.BackendUnavailable`.
            max_connections: Connection pool bound; callers beyond it wait for a
                free connection (up to ``socket_timeout``).
            full_wait: How long a submit to a queue at its ``max_queued`` bound (see
                :meth:`configure_queue`) waits for room, retrying with backoff from
                5 ms to 250 ms, before :class:`~taskmill.QueueFull` (0: at once).

        Raises:
            ConfigurationError: for invalid options.
            BackendUnavailable: when the server cannot be reached.
            BackendError: when the server is older than Redis 6.2.
        """
        lease = _ops.seconds(lease, "lease")
        ttl = None if results_ttl is None else _ops.seconds(results_ttl, "results_ttl")
        timeout = _ops.seconds(socket_timeout, "socket_timeout")
        client = connect(
            url,
            socket_timeout=timeout,
            retries=_ops.count(retries, "retries", 0),
            max_connections=max_connections,
        )
        store = cls(
            client,
            url=url,
            keys=Keys(prefix),
            lease=lease,
            max_worker_lost=_ops.count(max_worker_lost, "max_worker_lost", 1),
            results_ttl=ttl,
            block_limit=max(0.05, timeout - 1.0),
        )
        store._full_wait = _ops.seconds(full_wait, "full_wait", allow_zero=True)
        try:
            await store._start()
        except BaseException:
            await client.aclose(close_connection_pool=True)
            raise
        return store

    async def _start(self) -> None:
        with backend_errors(self._url, "open"):
            info = await self._client.info("server")
            await self._client.set(self._keys.epoch, new_epoch(), nx=True)
            self._epoch = _ops.text(await self._client.get(self._keys.epoch))
        version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
        if version < (6, 2):
            raise BackendError(f"taskmill needs Redis >= 6.2, found {version}", backend="redis")

    async def close(self) -> None:
        """Close the store; pending :meth:`wait` calls are cancelled."""
        if self._closed:
            return
        self._closed = True
        await self._enqueuer.close()
        await self._acker.close()
        await self._completions.close()
        await self._client.aclose(close_connection_pool=True)

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
        unique_scope: UniqueScope = "running",
        unique_ttl: float | None = None,
    ) -> Enqueued:
        """Store one task (concurrent calls share round trips).

        Args:
            payload: Opaque bytes.
            name: The registered task name.
            queue: The queue to wait in.
            priority: Lower runs first; FIFO within a priority (|priority| <= 2**53).
            run_at: When it is due: POSIX seconds or an aware datetime (``None``: now),
                compared with Redis' clock.
            unique_key: While the key is held, enqueue returns the holder.
            task_id: Use this id; an existing id makes this a no-op (``created=False``).
            unique_scope: How long the key is held (see :data:`UniqueScope`).
            unique_ttl: Upper bound in seconds on holding the key (``"done"``: how long
                it outlives the task; default the results TTL).

        Raises:
            ConfigurationError: for invalid arguments.
            BackendUnavailable: when Redis cannot be reached.
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
        self._check_unique(unique_scope, unique_ttl)
        if unique_key is not None and (unique_scope != "running" or unique_ttl is not None):
            (outcome,) = await self.enqueue_many(
                [task], unique_scope=unique_scope, unique_ttl=unique_ttl
            )
            return outcome
        check_queue(queue)
        await self._remember(queue)
        return await self._enqueuer(task)

    async def enqueue_many(
        self,
        tasks: Iterable[NewTask | ProtocolNewTask],
        *,
        unique_scope: UniqueScope = "running",
        unique_ttl: float | None = None,
    ) -> builtins.list[Enqueued]:
        """Store several tasks: one script call per queue, pipelined (one round trip).

        Each queue's tasks are stored atomically; tasks of different queues are not
        one transaction (they live in different cluster slots).

        Raises:
            ConfigurationError: when an item is not a :class:`NewTask`.
        """
        batch = [as_new_task(task) for task in tasks]
        for task in batch:
            check_queue(task.queue)
            _ops.check_priority(task.priority)
        scope = self._check_unique(unique_scope, unique_ttl)
        if not batch:
            return []
        for queue in {task.queue for task in batch}:
            await self._remember(queue)
        return await self._enqueue_batch(batch, scope=scope)

    def _check_unique(self, scope: object, ttl: float | None) -> tuple[str, int]:
        if scope not in _SCOPES:
            raise ConfigurationError(f"unique_scope must be one of {tuple(_SCOPES)}: {scope!r}")
        seconds = None if ttl is None else _ops.seconds(ttl, "unique_ttl")
        if scope == "done" and seconds is None:
            seconds = self._results_ttl
            if seconds is None:
                raise ConfigurationError("unique_scope='done' needs unique_ttl or a results_ttl")
        return _SCOPES[str(scope)], 0 if seconds is None else max(1, round(seconds * 1000))

    async def _enqueue_batch(
        self, batch: Sequence[NewTask], *, scope: tuple[str, int] = ("r", 0)
    ) -> builtins.list[Enqueued]:
        groups: dict[str, builtins.list[int]] = {}
        for index, task in enumerate(batch):
            _ops.check_priority(task.priority)
            groups.setdefault(task.queue, []).append(index)
        ids = [task.task_id or secrets.token_urlsafe(9) for task in batch]
        outcomes: builtins.list[Enqueued | None] = [None] * len(batch)
        deadline: float | None = None
        attempt = 0
        while groups:
            replies = await self._fan_out(
                "ENQUEUE",
                {
                    queue: _ops.enqueue_args(
                        [batch[i] for i in members], [ids[i] for i in members], scope
                    )
                    for queue, members in groups.items()
                },
                "enqueue",
            )
            full: dict[str, builtins.list[int]] = {}
            for (queue, members), reply in zip(groups.items(), replies, strict=True):
                if _ops.is_full(reply):
                    full[queue] = members
                    continue
                for index, outcome in zip(members, _ops.enqueued(reply), strict=True):
                    outcomes[index] = outcome
            if full:
                deadline = _clock.monotonic() + self._full_wait if deadline is None else deadline
                remaining = deadline - _clock.monotonic()
                if remaining <= 0:
                    queue = next(iter(full))
                    _, queued, bound = replies[builtins.list(groups).index(queue)]
                    raise QueueFull(queue, int(bound), int(queued))
                attempt += 1
                await asyncio.sleep(min(remaining, full_pause(attempt)))
            groups = full
        return [outcome for outcome in outcomes if outcome is not None]

    async def _remember(self, queue: str) -> None:
        if queue in self._known:
            return
        self._known.add(queue)
        try:
            with backend_errors(self._url, "enqueue"):
                await self._client.sadd(self._keys.queues, queue)
        except BaseException:
            self._known.discard(queue)
            raise

    # -- workers --------------------------------------------------------------------------
    async def claim(
        self,
        queues: Sequence[str],
        *,
        worker: str,
        limit: int = 1,
        lease: float | None = None,
        block: float = 0.0,
    ) -> builtins.list[Claim]:
        """Claim up to ``limit`` due tasks (one script call per queue, queues in order).

        Due scheduled tasks are promoted first, in the same script. Each claim carries
        a new fencing token and a lease on Redis' clock. Malformed records met on the
        way are dead-lettered with a reason and skipped.

        Args:
            queues: Queue names to take from (a single string is one queue).
            worker: Who claims (recorded on the task, for inspection).
            limit: At most this many tasks.
            lease: Lease seconds for these claims.
            block: When nothing is due, wait up to this many seconds for a task
                (woken through a signal list or at the next due time, not by polling).
        """
        names = _ops.queue_names(queues)
        worker = check_text(worker, "worker")
        limit = _ops.count(limit, "limit", 1)
        lease_ms = round((self._lease if lease is None else _ops.seconds(lease, "lease")) * 1000)
        block = _ops.seconds(block, "block", allow_zero=True)
        deadline = _clock.monotonic() + block
        while True:
            claims, next_due = await self._claim_once(names, worker, limit, lease_ms)
            remaining = deadline - _clock.monotonic()
            if claims or remaining <= 0:
                return claims
            await self._block(names, min(remaining, next_due, self._block_limit))

    async def _claim_once(
        self, names: Sequence[str], worker: str, limit: int, lease_ms: int
    ) -> tuple[builtins.list[Claim], float]:
        claims: builtins.list[Claim] = []
        next_due = float("inf")
        for queue in names:
            args = (limit - len(claims), lease_ms, worker, max(100, limit), secrets.token_hex(4))
            reply = await self._call("CLAIM", queue, args, "claim")
            got, wait = _ops.claims(queue, reply)
            next_due = min(next_due, wait)
            for item in got:
                if isinstance(item, Claim):
                    claims.append(item)
                else:
                    await self._bury_bad_claim(*item)
            if len(claims) >= limit:
                break
        return claims, next_due

    async def _bury_bad_claim(self, task_id: str, token: str, queue: str, why: str) -> None:
        logger.warning("dead-lettering malformed task %s in queue %s: %s", task_id, queue, why)
        _, tok = _ops.token_parts(token)
        args = (0, task_id, tok, f"malformed record: {why}")
        await self._call("DEAD_LETTER", queue, args, "claim")

    async def _block(self, names: Sequence[str], seconds: float) -> None:
        if seconds <= 0:
            return
        keys = [self._keys.signal(queue) for queue in names]
        with backend_errors(self._url, "claim"):
            await self._client.blpop(keys, timeout=max(seconds, 0.001))

    async def renew(self, task_id: str, token: str, *, lease: float | None = None) -> Renewal:
        """Extend the lease of a claim; :attr:`Renewal.LOST` means stop working on it."""
        seconds = self._lease if lease is None else _ops.seconds(lease, "lease")
        queue, tok = _ops.token_parts(token)
        if not queue:
            return Renewal.LOST
        reply = await self._call("RENEW", queue, (task_id, tok, round(seconds * 1000)), "renew")
        return _ops.renewal(reply)

    async def ack(self, task_id: str, token: str, result: bytes | None = None) -> bool:
        """Finish a claim as ``succeeded``; ``False`` if the token is stale.

        Concurrent calls share round trips. A retried ack of the same claim (after a
        lost reply) returns ``True`` again.
        """
        _ops.check_result(result)
        return await self._acker((task_id, token, result))

    async def ack_many(self, acks: Iterable[tuple[str, str, bytes | None]]) -> builtins.list[bool]:
        """Acknowledge several claims: one script call per queue, pipelined; in order."""
        batch = builtins.list(acks)
        groups: dict[str, builtins.list[int]] = {}
        for index, (_, token, result) in enumerate(batch):
            _ops.check_result(result)
            queue, _ = _ops.token_parts(token)
            if queue:
                groups.setdefault(queue, []).append(index)
        done = [False] * len(batch)
        if not groups:
            return done
        replies = await self._fan_out(
            "ACK",
            {
                queue: _ops.ack_args(self._ttl_ms(), [batch[i] for i in members])
                for queue, members in groups.items()
            },
            "ack",
        )
        for members, reply in zip(groups.values(), replies, strict=True):
            for index, ok in zip(members, reply, strict=True):
                done[index] = bool(ok)
        return done

    async def _record_failure(
        self, task_id: str, token: str, *, error: ErrorText, due: float | None, status: Failure
    ) -> bool:
        """Store a failed attempt (:meth:`nack`, arguments already checked)."""
        due_ms = "" if due is None else round(due * 1000)
        queue, tok = _ops.token_parts(token)
        if not queue:
            return False
        args = (self._ttl_ms(), task_id, tok, due_ms, _FAILED[status], *_ops.error_args(error))
        return bool(await self._call("NACK", queue, args, "nack"))

    async def release(self, task_id: str, token: str) -> bool:
        """Give a claim back at once (graceful shutdown): first in line, no penalty."""
        return await self._owned_call("RELEASE", task_id, token, "release")

    async def ack_cancelled(self, task_id: str, token: str) -> bool:
        """Finish a claim as ``cancelled`` (its owner honoured a cancel request)."""
        return await self._owned_call("FINISH_CANCELLED", task_id, token, "ack_cancelled")

    async def dead_letter(self, task_id: str, token: str, reason: str) -> bool:
        """Dead-letter a claim with ``reason`` (e.g. its payload cannot be decoded)."""
        reason = check_text(reason, "reason", limit=4096)
        return await self._owned_call("DEAD_LETTER", task_id, token, "dead_letter", reason)

    async def _owned_call(
        self, script: str, task_id: str, token: str, what: str, *extra: object
    ) -> bool:
        queue, tok = _ops.token_parts(token)
        if not queue:
            return False
        args = (self._ttl_ms(), task_id, tok, *extra)
        return bool(await self._call(script, queue, args, what))

    async def reclaim(self, limit: int = 100) -> ReclaimReport:
        """Take back up to ``limit`` expired leases per queue; expire old results.

        Leases are compared with Redis' clock. A lost worker counts against its task:
        after ``max_worker_lost`` losses it is dead-lettered (``"worker lost N times"``),
        otherwise it goes back to the front of its queue. Also promotes due scheduled
        tasks and checks the epoch marker. Idempotent; run it continuously.

        Raises:
            BackendError: once, when Redis lost its data (the marker is then rewritten).
        """
        limit = _ops.count(limit, "limit", 1)
        await self.check_epoch()
        reports = []
        for queue in await self.queues():
            args = (limit, self._max_worker_lost, self._ttl_ms())
            reports.append(_ops.reclaimed(await self._call("RECLAIM", queue, args, "reclaim")))
        report = _ops.merge_reports(reports)
        if report.requeued or report.dead_lettered or report.cancelled:
            logger.info(
                "reclaimed %d expired leases (%d dead-lettered, %d cancelled)",
                len(report.requeued) + len(report.dead_lettered) + len(report.cancelled),
                len(report.dead_lettered),
                len(report.cancelled),
            )
        return report

    async def run_reclaimer(self, interval: float = 1.0, *, limit: int = 100) -> NoReturn:
        """Run :meth:`reclaim` every ``interval`` seconds until cancelled.

        A full batch is followed at once by the next. Backend errors (an outage, lost
        data) are logged and retried after a jittered pause, never raised.
        """
        interval = _ops.seconds(interval, "interval")
        limit = _ops.count(limit, "limit", 1)
        failures = 0
        while True:
            try:
                more = (await self.reclaim(limit)).more
                failures = 0
            except BackendError as exc:
                failures += 1
                logger.warning("reclaim sweep failed (%s); retrying", exc)
                await asyncio.sleep(_ops.jittered(interval, failures))
                continue
            if not more:
                await asyncio.sleep(interval)

    # -- anyone ---------------------------------------------------------------------------
    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task: at once if it has not started, by request if it runs.

        Raises:
            TaskNotFound: when no such task exists.
        """
        found = await self._find(task_id)
        if found is not None:
            reply = await self._call("CANCEL", found[0], (self._ttl_ms(), task_id), "cancel")
            if reply != b"missing":
                return CancelOutcome(_ops.text(reply) or "")
        raise TaskNotFound(task_id)

    # -- dead letters and housekeeping ----------------------------------------------------
