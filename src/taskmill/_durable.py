"""The producer side of durable tasks: submit to a store, await results from anywhere.

:class:`DurableClient` turns ``submit(fn, *args, **kwargs)`` into a safe payload
(:class:`~taskmill.payloads.PayloadCodec`) and enqueues it in a durable store
(:class:`~taskmill.sqlite.SqliteStore` or :class:`~taskmill.redis.RedisStore`).
:class:`DurableHandle` waits for the terminal record in any process. The worker
side lives in :mod:`taskmill._worker_runtime`. See docs/durable.md.

msgspec (behind :mod:`taskmill.payloads`) is imported only when a client or a
worker is created, so ``import taskmill`` stays light.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, final, overload

from ._errors import ConfigurationError, PayloadError, TaskCancelled, TaskFailed, TaskmillError

if TYPE_CHECKING:
    from ._codec import PayloadCodec
    from ._registry import TaskRegistry
    from .otel._hooks import DurableTracingHooks

__all__ = ["DurableClient", "DurableHandle", "DurableStore", "SubmitOptions", "make_codec"]

P = ParamSpec("P")
T = TypeVar("T")

_FAILED = frozenset({"failed", "timed_out"})


class _ErrorLike(Protocol):
    type: str
    message: str
    traceback: str


class _RecordLike(Protocol):
    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def result(self) -> bytes | None: ...
    @property
    def error(self) -> _ErrorLike | None: ...
    @property
    def dead_reason(self) -> str | None: ...


class _EnqueuedLike(Protocol):
    @property
    def task_id(self) -> str: ...
    @property
    def created(self) -> bool: ...


class DurableStore(Protocol):
    """What the durable client and worker need from a store (SQLite and Redis have it)."""

    async def enqueue(
        self,
        payload: bytes,
        *,
        name: str,
        queue: str = ...,
        priority: int = ...,
        run_at: float | _dt.datetime | None = ...,
        unique_key: str | None = ...,
        task_id: str | None = ...,
    ) -> Any: ...
    async def enqueue_many(self, tasks: Iterable[Any]) -> Sequence[Any]: ...
    async def cancel(self, task_id: str) -> Any: ...
    async def get(self, task_id: str) -> Any: ...
    async def wait(self, task_id: str, timeout: float | None = ...) -> Any: ...  # noqa: ASYNC109
    async def claim(
        self, queues: Sequence[str], *, worker: str, limit: int = ..., lease: float | None = ...
    ) -> Any: ...
    async def renew(self, task_id: str, token: str, *, lease: float | None = ...) -> Any: ...
    async def ack_many(self, acks: Iterable[tuple[str, str, bytes | None]]) -> Any: ...
    async def nack(
        self,
        task_id: str,
        token: str,
        *,
        error: Any,
        retry_at: float | _dt.datetime | None = ...,
        status: Any = ...,
    ) -> bool: ...
    async def release(self, task_id: str, token: str) -> bool: ...
    async def ack_cancelled(self, task_id: str, token: str) -> bool: ...
    async def dead_letter(self, task_id: str, token: str, reason: str) -> bool: ...
    async def run_reclaimer(self, interval: float = ..., *, limit: int = ...) -> Any: ...


def make_codec(registry: TaskRegistry, codec: PayloadCodec | None) -> PayloadCodec:
    """Return ``codec``, or a default JSON codec over ``registry`` (imports msgspec)."""
    from ._codec import PayloadCodec  # noqa: PLC0415 - msgspec only when used

    if codec is None:
        return PayloadCodec(registry)
    if not isinstance(codec, PayloadCodec):
        raise ConfigurationError(f"codec must be a PayloadCodec, got {codec!r}")
    return codec


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOptions:
    """Per-submit options of :meth:`DurableClient.with_options` (``None``: the task's default).

    Args:
        priority: Lower runs first.
        delay: Run no earlier than this many seconds from now.
        at: Run no earlier than this aware datetime.
        queue: The queue to send the task to.
        unique_key: While a live task holds this key, submit returns that task.
        task_id: Use this id (an existing id returns that task: an idempotency key).

    Raises:
        ConfigurationError: A value is invalid (naive ``at``, negative ``delay``,
            both ``delay`` and ``at``).
    """

    priority: int | None = None
    delay: float | None = None
    at: _dt.datetime | None = None
    queue: str | None = None
    unique_key: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        delay: object = self.delay
        if delay is not None and (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise ConfigurationError(f"delay must be a finite number >= 0, got {self.delay!r}")
        at: object = self.at
        if at is not None:
            if not isinstance(at, _dt.datetime) or at.utcoffset() is None:
                raise ConfigurationError(f"at must be an aware datetime, got {self.at!r}")
            if self.delay is not None:
                raise ConfigurationError("give delay or at, not both")


def _at_item(error: TaskmillError, index: int) -> TaskmillError:
    """Return ``error`` naming ``submit_many``'s item ``index`` (same type and fields)."""
    if isinstance(error, PayloadError):
        reason = f"submit_many item {index}: {error.reason}"
        named = type(error).__new__(type(error))
        named.__dict__.update(error.__dict__)
        named.args = (reason,)
        named.reason = reason
        return named
    error.add_note(f"in submit_many item {index}")
    return error


@final
class DurableHandle(Generic[T]):
    """A submitted durable task: its id, its status, its result (from any process).

    Awaiting :meth:`result` waits for the terminal record in the store.
    """

    __slots__ = ("_client", "_created", "_id", "_name")

    def __init__(self, client: DurableClient, task_id: str, name: str, *, created: bool) -> None:
        self._client = client
        self._id = task_id
        self._name = name
        self._created = created

    def __repr__(self) -> str:
        return f"<DurableHandle id={self._id!r} name={self._name!r} created={self._created}>"

    @property
    def id(self) -> str:
        """The task id."""
        return self._id

    @property
    def name(self) -> str:
        """The registered task name."""
        return self._name

    @property
    def created(self) -> bool:
        """False when a live task with the same unique key (or id) was returned instead."""
        return self._created

    async def status(self) -> str | None:
        """Return the task's status (``"queued"``, ``"running"``, ``"succeeded"``, ...).

        ``None`` when the store no longer knows the task (purged or expired).
        """
        record = await self._client.store.get(self._id)
        return None if record is None else str(record.status)

    async def cancel(self) -> str:
        """Cancel the task: at once if it has not started, by request if it runs.

        Returns:
            The store's outcome: ``"cancelled"``, ``"requested"`` or ``"finished"``.

        Raises:
            TaskNotFound: The store does not know the task.
        """
        return str(await self._client.store.cancel(self._id))

    async def result(self, timeout: float | None = None) -> T:  # noqa: ASYNC109 - like wait_for
        """Wait until the task finished (here or in any process) and return its result.

        Args:
            timeout: Seconds to wait at most (``None``: no limit).

        Raises:
            TaskFailed: The task failed, timed out or became a dead letter; the
                stored error text is on the exception.
            TaskCancelled: The task was cancelled.
            TimeoutError: ``timeout`` passed first.
            TaskNotFound: The store does not know the task.
        """
        record: _RecordLike = await self._client.store.wait(self._id, timeout)
        return self._client.outcome(record)  # type: ignore[no-any-return]


@final
class DurableClient:
    """Submit registered tasks to a durable store and get :class:`DurableHandle` back.

    Args:
        store: A :class:`~taskmill.sqlite.SqliteStore` or :class:`~taskmill.redis.RedisStore`.
        registry: The tasks that may be submitted (callables resolve by identity).
        codec: The payload codec (default: JSON over ``registry``).
        options: Per-submit options applied to every submit.
        tracing: Tracing hooks, e.g. :class:`taskmill.otel.DurableTracing` (``None``: off).

    Example:
        >>> client = DurableClient(store, registry)  # doctest: +SKIP
        >>> handle = await client.submit(add, 1, 2)  # doctest: +SKIP
        >>> await handle.result()  # doctest: +SKIP
        3
    """

    __slots__ = ("_codec", "_options", "_registry", "_store", "_submitted", "_tracing")

    def __init__(
        self,
        store: DurableStore,
        registry: TaskRegistry,
        *,
        codec: PayloadCodec | None = None,
        options: SubmitOptions | None = None,
        tracing: DurableTracingHooks | None = None,
    ) -> None:
        self._store = store
        self._tracing = tracing
        self._registry = registry
        self._codec = make_codec(registry, codec)
        self._options = SubmitOptions() if options is None else options
        self._submitted = 0

    def __repr__(self) -> str:
        return f"<DurableClient store={self._store!r} submitted={self._submitted}>"

    @property
    def store(self) -> DurableStore:
        """The store tasks go to."""
        return self._store

    @property
    def codec(self) -> PayloadCodec:
        """The payload codec."""
        return self._codec

    def with_options(self, **options: Any) -> DurableClient:
        """Return a client that submits with these :class:`SubmitOptions` (same store).

        Raises:
            ConfigurationError: An option is unknown or invalid.
        """
        try:
            merged = dataclasses.replace(self._options, **options)
        except TypeError as exc:
            raise ConfigurationError(f"unknown submit option: {exc}") from exc
        return DurableClient(
            self._store, self._registry, codec=self._codec, options=merged, tracing=self._tracing
        )

    @overload
    async def submit(
        self, task: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> DurableHandle[Any]: ...
    @overload
    async def submit(self, task: str, /, *args: Any, **kwargs: Any) -> DurableHandle[Any]: ...
    async def submit(self, task: Any, /, *args: Any, **kwargs: Any) -> DurableHandle[Any]:
        """Enqueue one registered task; when this returns, it survives any crash.

        Args:
            task: The registered callable (by identity) or its registered name.
            *args: Positional arguments (serialized: no pickle).
            **kwargs: Keyword arguments.

        Raises:
            UnknownTask: ``task`` is not registered.
            PayloadError: An argument cannot be serialized (the error names it).
        """
        if self._tracing is None:
            return await self._submit(task, args, kwargs, None)
        name = task if isinstance(task, str) else self._registry.name_of(task)
        with self._tracing.submit_span(name) as trace:
            handle = await self._submit(task, args, kwargs, trace)
            self._tracing.submitted(handle.id)
        return handle

    async def _submit(
        self,
        task: Any,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        trace: Mapping[str, str] | None,
    ) -> DurableHandle[Any]:
        payload, name, options = self._encode(task, args, kwargs, trace)
        enqueued: _EnqueuedLike = await self._store.enqueue(payload, name=name, **options)
        self._submitted += 1
        return DurableHandle(self, enqueued.task_id, name, created=enqueued.created)

    async def submit_many(
        self, calls: Iterable[tuple[Any, Sequence[object], Mapping[str, object]]]
    ) -> list[DurableHandle[Any]]:
        """Enqueue several ``(task, args, kwargs)`` with one store call (``enqueue_many``).

        Every payload is encoded first, so a bad item enqueues nothing; the error
        names the item's index (and the argument, for a payload error). The store
        writes the batch in one transaction (SQLite) or one atomic script per queue
        in one round trip (Redis). Handles come back in the order of ``calls``.

        Raises:
            UnknownTask: An item's task is not registered.
            PayloadError: An item's argument cannot be serialized.
            ConfigurationError: An item's option is invalid.
        """
        from ._backend import NewTask  # noqa: PLC0415 - light; only batches need it

        batch: list[NewTask] = []
        for index, call in enumerate(calls):
            try:
                task, args, kwargs = call
                payload, name, options = self._encode(task, args, kwargs)
            except TaskmillError as exc:
                named = _at_item(exc, index)
                if named is exc:
                    raise
                raise named from exc
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"submit_many item {index}: expected (task, args, kwargs), got {call!r}"
                ) from exc
            batch.append(NewTask(payload=payload, name=name, **options))
        if not batch:
            return []
        outcomes: Sequence[_EnqueuedLike] = await self._store.enqueue_many(batch)
        self._submitted += len(batch)
        return [
            DurableHandle(self, enqueued.task_id, task.name, created=enqueued.created)
            for task, enqueued in zip(batch, outcomes, strict=True)
        ]

    def handle(self, task_id: str, name: str = "") -> DurableHandle[Any]:
        """Return a handle for a task submitted elsewhere (e.g. by another process)."""
        return DurableHandle(self, task_id, name, created=False)

    def _encode(
        self,
        task: Any,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        trace: Mapping[str, str] | None = None,
    ) -> tuple[bytes, str, dict[str, Any]]:
        opts = self._options
        envelope = self._codec.build(
            task,
            args,
            kwargs,
            task_id=opts.task_id,
            priority=opts.priority,
            queue=opts.queue,
            unique_key=opts.unique_key,
            delay=opts.delay,
            at=opts.at,
            trace=trace,
        )
        payload = self._codec.encode(envelope)
        options = envelope.options
        store_options: dict[str, Any] = {
            "queue": options.queue,
            "priority": options.priority,
            "run_at": options.scheduled_at,
            "unique_key": options.unique_key,
            "task_id": envelope.id,
        }
        return payload, envelope.task, store_options

    def outcome(self, record: _RecordLike) -> Any:
        """Return the decoded result of a terminal record, or raise its failure.

        Raises:
            TaskFailed: ``failed``, ``timed_out`` or ``dead``.
            TaskCancelled: ``cancelled``.
        """
        status = str(record.status)
        if status == "succeeded":
            data = record.result
            return None if data is None else self._codec.decode_result(data, task=record.name)
        if status == "cancelled":
            raise TaskCancelled(record.task_id, record.name)
        if status == "dead":
            raise TaskFailed(
                record.task_id,
                record.name,
                error_type="DeadLetter",
                message=record.dead_reason or "dead letter",
            )
        error = record.error
        if status in _FAILED and error is not None:
            raise TaskFailed(
                record.task_id,
                record.name,
                error_type=error.type,
                message=error.message,
                traceback=error.traceback,
            )
        raise TaskFailed(record.task_id, record.name, error_type=status, message=status)
