"""The durable worker: claim from a store in batches, run, renew leases, ack/nack.

One :class:`DurableWorker` runs a claim loop (up to ``concurrency`` tasks at a
time, claimed in batches of the free slots), a lease renewer (every ``lease / 3``)
and the store's reclaim sweep. Graceful stop: claiming stops at once, running
tasks get ``grace`` seconds, then they are cancelled and their leases released
(due again at once, no attempt counted). See docs/durable.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, final

from . import _clock
from ._backoff import Exponential
from ._durable import make_codec
from ._durable_exec import (
    SINGLE_ATTEMPT,
    AckBatcher,
    Outcome,
    call,
    error_text_type,
    next_retry,
    policy_for,
)
from ._errors import (
    AlreadyStarted,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    PayloadError,
    TaskTimeout,
)
from ._logging import ATTEMPT, QUEUE, TASK, TASK_ID, WORKER
from ._periodic import PeriodicScheduler, misfire_lateness

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._codec import PayloadCodec
    from ._durable import DurableStore
    from ._envelope import Envelope
    from ._registry import TaskRegistry
    from ._retry import Retry
    from .otel._hooks import DurableTracingHooks
    from .prometheus._hooks import DurableWorkerObserver

__all__ = ["DurableWorker", "DurableWorkerStatistics"]

logger = logging.getLogger(__name__)

_Interrupt = Literal["cancel", "lost", "shutdown"]
_RECONNECT: Final = Exponential(0.05, max=5.0, jitter="equal")  # claims during an outage
_RNG: Final = random.Random()  # jitter only
_INTERRUPTED: Final[dict[str, str]] = {
    "cancel": "cancelled",
    "shutdown": "released",
    "lost": "lost",
}
_COUNTERS: Final = (
    "claimed",
    "succeeded",
    "failed",
    "retried",
    "cancelled",
    "released",
    "lost",
    "dead_lettered",
    "renewals",
    "misfired",
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DurableWorkerStatistics:
    """A snapshot of a :class:`DurableWorker`.

    Attributes:
        worker_id: The id recorded on claimed tasks.
        state: ``"idle"`` (not started), ``"running"``, ``"stopping"`` or ``"stopped"``.
        queues: The queues it claims from, in order.
        concurrency: Most tasks run at once.
        running: Tasks held right now.
        claimed: Deliveries claimed so far.
        succeeded: Acked successes.
        failed: Terminal failures (``failed`` / ``timed_out``).
        retried: Failures sent back with a retry time.
        cancelled: Running tasks ended on a cancel request.
        released: Leases given back on shutdown (no attempt counted).
        lost: Tasks abandoned because their lease was lost.
        dead_lettered: Undecodable payloads dead-lettered.
        renewals: Successful lease renewals.
        ack_batches: ``ack_many`` transactions (successes are group-committed).
        misfired: Periodic instants skipped because they started past ``misfire_grace``.
    """

    worker_id: str
    state: str
    queues: tuple[str, ...]
    concurrency: int
    running: int
    claimed: int
    succeeded: int
    failed: int
    retried: int
    cancelled: int
    released: int
    lost: int
    dead_lettered: int
    renewals: int
    ack_batches: int
    misfired: int


@final
class _Delivery:
    """One claimed task while this worker holds it."""

    __slots__ = ("attempt", "claim", "interrupt", "supervisor")

    def __init__(self, claim: Any) -> None:
        self.claim = claim
        self.attempt: asyncio.Task[Outcome] | None = None
        self.supervisor: asyncio.Task[None] | None = None
        self.interrupt: _Interrupt | None = None

    def stop(self, reason: _Interrupt) -> None:
        """Cancel the running attempt (the first reason wins)."""
        if self.interrupt is None:
            self.interrupt = reason
        if self.attempt is not None:
            self.attempt.cancel()


async def _cancel_and_wait(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they end, cancelling again any that went on.

    On Python 3.11 ``asyncio.wait_for`` (redis-py wraps socket writes in it) swallows
    a cancellation that arrives just as the awaited call completes (CPython gh-86296),
    so one ``cancel()`` can leave a helper loop running and ``run()`` would never end.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())


def _default_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _seconds(value: float, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {value!r}")
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise ConfigurationError(f"{what} must be finite and > 0, got {value!r}")
    return float(value)


@final
class DurableWorker:
    """Run registered tasks claimed from a durable store until stopped.

    Args:
        store: A :class:`~taskmill.sqlite.SqliteStore` or :class:`~taskmill.redis.RedisStore`.
        registry: Only these tasks run; any other name is dead-lettered.
        queues: Queues to claim from.
        concurrency: Most tasks run at once (also the sync-task thread pool size).
        lease: Lease seconds per claim; renewed every ``lease / 3``.
        grace: On a graceful stop, seconds running tasks get before they are
            cancelled and released.
        worker_id: Recorded on claims (default: ``host:pid:random``).
        codec: The payload codec (default: JSON over ``registry``).
        poll_interval: First sleep after an empty claim; doubles while idle.
        max_poll_interval: Longest idle sleep (the worst-case pickup latency).
        reclaim_interval: Period of the store's reclaim sweep run by this worker.
        tracing: Tracing hooks, e.g. :class:`taskmill.otel.DurableTracing` (``None``: off).
        observer: Told how each attempt ended and what each reclaim sweep took back,
            e.g. :class:`taskmill.prometheus.TaskMetrics` (``None``: nothing is called).
        periodic: Keep the registry's periodic tasks of these queues enqueued, one
            task per instant across all workers (see docs/durable.md).

    Raises:
        ConfigurationError: An option is invalid.
    """

    def __init__(
        self,
        store: DurableStore,
        registry: TaskRegistry,
        *,
        queues: Sequence[str] = ("default",),
        concurrency: int = 10,
        lease: float = 30.0,
        grace: float = 30.0,
        worker_id: str | None = None,
        codec: PayloadCodec | None = None,
        poll_interval: float = 0.005,
        max_poll_interval: float = 0.5,
        reclaim_interval: float = 1.0,
        tracing: DurableTracingHooks | None = None,
        observer: DurableWorkerObserver | None = None,
        periodic: bool = True,
    ) -> None:
        names: object = queues
        if isinstance(names, str) or not queues or not all(isinstance(q, str) for q in queues):
            raise ConfigurationError(f"queues must be a non-empty sequence of names: {queues!r}")
        count: object = concurrency
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self._store = store
        self._registry = registry
        self._codec = make_codec(registry, codec)
        self._error_text = error_text_type(store)
        self._queues = tuple(queues)
        self._concurrency = concurrency
        self._lease = _seconds(lease, "lease")
        self._grace = _seconds(grace, "grace", allow_zero=True)
        self._poll = (
            _seconds(poll_interval, "poll_interval"),
            _seconds(max_poll_interval, "max_poll_interval"),
        )
        self._reclaim = _seconds(reclaim_interval, "reclaim_interval")
        self._id = worker_id or _default_id()
        self._state = "idle"
        self._held: dict[str, _Delivery] = {}
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._acks = AckBatcher(store)
        self._pool: ThreadPoolExecutor | None = None
        self._tracing = tracing
        self._observer = observer
        self._wake = asyncio.Event()
        served = [s for s in registry.periodic_specs() if registry.get(s.name).queue in queues]
        self._scheduler = (
            PeriodicScheduler(store, self._codec, served, wake=self._wake.set)
            if periodic and served
            else None
        )

    def __repr__(self) -> str:
        return (
            f"<DurableWorker id={self._id!r} state={self._state} queues={self._queues} "
            f"running={len(self._held)}/{self._concurrency}>"
        )

    @property
    def worker_id(self) -> str:
        """The id recorded on claimed tasks."""
        return self._id

    @property
    def scheduler(self) -> PeriodicScheduler | None:
        """The periodic scheduler of this worker (None without periodic tasks to keep)."""
        return self._scheduler

    def statistics(self) -> DurableWorkerStatistics:
        """Return a snapshot of this worker's counters."""
        return DurableWorkerStatistics(
            worker_id=self._id,
            state=self._state,
            queues=self._queues,
            concurrency=self._concurrency,
            running=len(self._held),
            ack_batches=self._acks.batches,
            **self._counts,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Claim and run tasks until :meth:`stop` (or cancellation) ends the worker.

        A cancelled ``run()`` stops at once: running tasks are cancelled and released.

        Raises:
            AlreadyStarted: ``run()`` was already called on this worker.
        """
        if self._state != "idle":
            raise AlreadyStarted(f"{self!r} already ran")
        self._state = "running"
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="taskmill-durable")
        reclaimer = (
            self._store.run_reclaimer(self._reclaim)
            if self._observer is None
            else self._observed_reclaimer(self._observer)
        )
        helpers = [
            asyncio.create_task(reclaimer, name="taskmill-reclaim"),
            asyncio.create_task(self._renew_forever(), name="taskmill-renew"),
        ]
        if self._scheduler is not None:
            helpers.append(asyncio.create_task(self._scheduler.run(), name="taskmill-periodic"))
        logger.info(
            "durable worker %s started on queues %s",
            self._id,
            ",".join(self._queues),
            extra={WORKER: self._id, QUEUE: ",".join(self._queues)},
        )
        try:
            await self._claim_until_stopped()
            self._state = "stopping"
            await self._drain()
        finally:
            self._state = "stopping"
            await self._release_all()
            await _cancel_and_wait(helpers)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._state = "stopped"
            self._done.set()
            logger.info("durable worker %s stopped", self._id, extra={WORKER: self._id})

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop claiming at once; let running tasks finish within ``grace`` (or not).

        Returns once the worker stopped when it is running (at once otherwise).

        Args:
            graceful: ``False`` cancels and releases running tasks without waiting.
        """
        self._stop.set()
        self._wake.set()
        if not graceful:
            self._abort.set()
        self._changed.set()
        if self._state in ("running", "stopping"):
            await self._done.wait()

    # -- claiming ----------------------------------------------------------------------------
    async def _claim_until_stopped(self) -> None:
        idle = self._poll[0]
        outage = 0
        while not self._stop.is_set():
            free = self._concurrency - len(self._held)
            if free <= 0:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                claims = await self._store.claim(
                    self._queues, worker=self._id, limit=free, lease=self._lease
                )
            except BackendUnavailable as exc:  # an outage: retry with jittered backoff
                outage += 1
                pause = _RECONNECT.delay(outage, _RNG)
                logger.warning(
                    "claiming failed (%s); trying again in %.2fs",
                    exc,
                    pause,
                    extra={WORKER: self._id},
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stop.wait()
                continue
            except Exception:
                logger.exception("claiming failed; the worker stops", extra={WORKER: self._id})
                raise
            if outage:
                logger.warning(
                    "claiming works again after %d failures", outage, extra={WORKER: self._id}
                )
                outage = 0
            for claim in claims:
                self._start(claim)
            if claims:
                idle = self._poll[0]
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self._wake.wait()  # set by stop() and when a periodic instant is due
            if self._wake.is_set():
                self._wake.clear()
                idle = self._poll[0]
            else:
                idle = min(idle * 2, self._poll[1])

    def _start(self, claim: Any) -> None:
        self._counts["claimed"] += 1
        delivery = _Delivery(claim)
        self._held[claim.task_id] = delivery
        delivery.supervisor = asyncio.create_task(
            self._supervise(delivery), name=f"taskmill-durable-{claim.task_id}"
        )

    # -- stopping ----------------------------------------------------------------------------
    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while self._held and not self._abort.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    async def _release_all(self) -> None:
        held = list(self._held.values())
        for delivery in held:
            delivery.stop("shutdown")
        supervisors = [d.supervisor for d in held if d.supervisor is not None]
        if supervisors:
            await asyncio.wait(supervisors)

    async def _observed_reclaimer(self, observer: DurableWorkerObserver) -> None:
        """The store's ``run_reclaimer`` loop, reporting each sweep to ``observer``."""
        store: Any = self._store  # both stores have reclaim(); the protocol needs only the loop
        while True:
            try:
                report = await store.reclaim()
            except BackendError:
                logger.warning("reclaim sweep failed", exc_info=True, extra={WORKER: self._id})
                more = False
            else:
                more = report.more
                if report.requeued or report.dead_lettered or report.cancelled:
                    observer.leases_reclaimed(
                        len(report.requeued), len(report.dead_lettered), len(report.cancelled)
                    )
            if not more:
                await asyncio.sleep(self._reclaim)

    def _observe(self, claim: Any, status: str, seconds: float | None) -> None:
        if self._observer is not None:
            self._observer.attempt_finished(claim.name, claim.queue, status, seconds)

    # -- renewing ----------------------------------------------------------------------------
    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            for delivery in list(self._held.values()):
                if delivery.interrupt is None and delivery.attempt is not None:
                    await self._renew(delivery)

    async def _renew(self, delivery: _Delivery) -> None:
        claim = delivery.claim
        try:
            renewal = await self._store.renew(claim.task_id, claim.token, lease=self._lease)
        except Exception:
            logger.warning(
                "could not renew the lease of %s",
                claim.task_id,
                exc_info=True,
                extra=self._extra(claim),
            )
            return
        verdict = str(getattr(renewal, "value", renewal))
        if verdict == "lost":
            logger.warning(
                "lost the lease of %s: abandoning this attempt",
                claim.task_id,
                extra=self._extra(claim),
            )
            delivery.stop("lost")
        elif verdict == "cancel_requested":
            delivery.stop("cancel")
        else:
            self._counts["renewals"] += 1

    # -- one delivery ------------------------------------------------------------------------
    async def _supervise(self, delivery: _Delivery) -> None:
        claim = delivery.claim
        try:
            envelope = await self._decode(claim)
            if envelope is not None and not await self._misfired(claim):
                await self._execute(delivery, envelope)
        except Exception:
            logger.exception(
                "settling task %s failed; its lease will be reclaimed",
                claim.task_id,
                extra=self._extra(claim),
            )
        finally:
            del self._held[claim.task_id]
            self._changed.set()

    async def _decode(self, claim: Any) -> Envelope | None:
        try:
            envelope = self._codec.decode(claim.payload)
        except PayloadError as exc:
            reason = exc.reason
        else:
            if envelope.task == claim.name:
                return envelope
            reason = f"payload names task {envelope.task!r} but was enqueued as {claim.name!r}"
        logger.warning("dead-lettering %s: %s", claim.task_id, reason, extra=self._extra(claim))
        self._counts["dead_lettered"] += 1
        await self._store.dead_letter(claim.task_id, claim.token, reason)
        self._observe(claim, "dead", None)
        return None

    async def _misfired(self, claim: Any) -> bool:
        """Skip (end ``cancelled``) a periodic instant whose first delivery is too late."""
        spec = self._registry.periodic_spec(claim.name)
        if spec is None:
            return False
        late = misfire_lateness(
            spec, claim.task_id, attempt=claim.attempt, deliveries=claim.deliveries
        )
        if late is None:
            return False
        logger.warning(
            "periodic task %s: skipping %s, %.3fs late (misfire_grace %.3fs)",
            claim.name,
            claim.task_id,
            late,
            spec.grace_ms / 1000,
            extra=self._extra(claim),
        )
        self._counts["misfired"] += 1
        await self._store.ack_cancelled(claim.task_id, claim.token)
        self._observe(claim, "cancelled", None)
        return True

    async def _execute(self, delivery: _Delivery, envelope: Envelope) -> None:
        if self._tracing is None:
            await self._attempt(delivery, envelope)
            return
        claim = delivery.claim
        with self._tracing.attempt_span(
            envelope.task, task_id=claim.task_id, attempt=claim.attempt, trace=envelope.trace
        ):
            await self._attempt(delivery, envelope)

    async def _attempt(self, delivery: _Delivery, envelope: Envelope) -> None:
        claim = delivery.claim
        spec = self._registry.get(envelope.task)
        policy = policy_for(spec, envelope)
        timeout = (
            envelope.options.timeout if envelope.options.timeout is not None else policy.timeout
        )
        assert self._pool is not None
        started = asyncio.get_running_loop().time()
        delivery.attempt = asyncio.create_task(
            call(spec, envelope, limit=timeout, attempt=claim.attempt, pool=self._pool)
        )
        if delivery.interrupt is not None:
            delivery.attempt.cancel()
        await asyncio.wait([delivery.attempt])
        if delivery.attempt.cancelled():
            await self._interrupted(delivery)
            if self._observer is not None:
                seconds = asyncio.get_running_loop().time() - started
                self._observe(claim, _INTERRUPTED[delivery.interrupt or "lost"], seconds)
            return
        outcome = delivery.attempt.result()
        if outcome.error is None:
            await self._succeed(claim, envelope, outcome)
        else:
            await self._fail(claim, policy, outcome)

    async def _interrupted(self, delivery: _Delivery) -> None:
        claim = delivery.claim
        if delivery.interrupt == "cancel":
            self._counts["cancelled"] += 1
            await self._store.ack_cancelled(claim.task_id, claim.token)
        elif delivery.interrupt == "shutdown":
            self._counts["released"] += 1
            logger.info(
                "shutdown: releasing %s unfinished", claim.task_id, extra=self._extra(claim)
            )
            await self._store.release(claim.task_id, claim.token)
        else:
            self._counts["lost"] += 1

    async def _succeed(self, claim: Any, envelope: Envelope, outcome: Outcome) -> None:
        try:
            result = self._codec.encode_result(outcome.value, task=envelope.task)
        except PayloadError as exc:
            bad = Outcome(error=exc, started=outcome.started, finished=outcome.finished)
            await self._fail(claim, SINGLE_ATTEMPT, bad)
            return
        if await self._acks.ack(claim.task_id, claim.token, result):
            self._counts["succeeded"] += 1
            self._observe(claim, "succeeded", outcome.finished - outcome.started)

    async def _fail(self, claim: Any, policy: Retry, outcome: Outcome) -> None:
        since = _clock.wall_time() - float(claim.enqueued_at)
        extra = self._extra(claim)
        error, delay = next_retry(
            policy, outcome, attempt=claim.attempt, since_enqueue=since, extra=extra
        )
        text = self._error_info(error)
        if self._tracing is not None:
            self._tracing.attempt_failed(error, retry_in=delay)
        if delay is not None:
            self._counts["retried"] += 1
            logger.info(
                "task %s (%s) attempt %d failed: %r; retrying in %.3fs",
                claim.task_id,
                claim.name,
                claim.attempt,
                error,
                delay,
                extra=extra,
            )
            retry_at = _clock.wall_time() + delay
            await self._store.nack(claim.task_id, claim.token, error=text, retry_at=retry_at)
            self._observe(claim, "retried", outcome.finished - outcome.started)
            return
        self._counts["failed"] += 1
        status = "timed_out" if isinstance(error, TaskTimeout) else "failed"
        logger.warning(
            "task %s (%s) %s on attempt %d",
            claim.task_id,
            claim.name,
            status.replace("_", " "),
            claim.attempt,
            exc_info=error,
            extra=extra,
        )
        await self._store.nack(claim.task_id, claim.token, error=text, status=status)
        self._observe(claim, status, outcome.finished - outcome.started)

    def _extra(self, claim: Any) -> dict[str, object]:
        return {
            TASK_ID: claim.task_id,
            TASK: claim.name,
            ATTEMPT: claim.attempt,
            QUEUE: claim.queue,
            WORKER: self._id,
        }

    def _error_info(self, error: BaseException) -> Any:
        from ._envelope import ErrorInfo  # noqa: PLC0415 - msgspec is loaded by now

        info = ErrorInfo.from_exception(error, max_chars=self._codec.limits.max_error_chars)
        return self._error_text(type=info.type, message=info.message, traceback=info.traceback)
