"""One delivery of a durable task: run it, decide its next step, group-commit acks.

Pure helpers for :class:`~taskmill.DurableWorker`: :func:`call` runs the registered
function under its per-attempt timeout and turns *every* outcome (including
``KeyboardInterrupt``, ``SystemExit`` and the task's own ``CancelledError``) into an
:class:`Outcome`; :func:`next_retry` asks the retry core when to try again;
:class:`AckBatcher` finishes several successes in one store transaction.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from ._errors import ConfigurationError, TaskTimeout
from ._retry import Retry
from ._runner import RetryState, Runner

if TYPE_CHECKING:
    from ._durable import DurableStore
    from ._envelope import Envelope
    from ._registry import TaskSpec

__all__ = [
    "SINGLE_ATTEMPT",
    "AckBatcher",
    "Outcome",
    "call",
    "error_text_type",
    "next_retry",
    "policy_for",
]

logger = logging.getLogger(__name__)

SINGLE_ATTEMPT: Final = Retry(max_attempts=1)
"""A task registered without a retry policy runs once (like the in-memory manager)."""


@final
@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: a value, or an error (never raised out of :func:`call`)."""

    value: Any = None
    error: BaseException | None = None
    started: float = 0.0
    finished: float = 0.0


def policy_for(spec: TaskSpec, envelope: Envelope) -> Retry:
    """Return the retry policy of one delivery: registered code, payload numbers."""
    base = spec.retry if spec.retry is not None else SINGLE_ATTEMPT
    summary = envelope.options.retry
    return base if summary is None else summary.apply_to(base)


async def call(
    spec: TaskSpec, envelope: Envelope, *, limit: float | None, attempt: int, pool: Executor
) -> Outcome:
    """Run one attempt of ``spec`` with the envelope's arguments; never raise its errors.

    Cancellation from outside (the worker cancelling this attempt) propagates; a
    ``CancelledError`` the task raised by itself is that attempt's failure.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(limit) as scope:
            if spec.is_async:
                value = await spec.fn(*envelope.args, **envelope.kwargs)
            else:
                job = functools.partial(spec.fn, *envelope.args, **envelope.kwargs)
                value = await loop.run_in_executor(pool, job)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return Outcome(error=exc, started=started, finished=loop.time())
    except TimeoutError as exc:
        error: BaseException = exc
        if scope.expired() and limit is not None:
            error = TaskTimeout(limit, attempt)
            error.__cause__ = exc
        return Outcome(error=error, started=started, finished=loop.time())
    except BaseException as exc:  # noqa: BLE001 - a task's KeyboardInterrupt/SystemExit is its failure
        return Outcome(error=exc, started=started, finished=loop.time())
    return Outcome(value=value, started=started, finished=loop.time())


def next_retry(
    policy: Retry,
    outcome: Outcome,
    *,
    attempt: int,
    since_enqueue: float,
    extra: Mapping[str, object] | None = None,
) -> tuple[BaseException, float | None]:
    """Return the error to record and the delay before the next attempt (``None``: final).

    The retry core is rebuilt from the attempt number: ``attempt - 1`` attempts
    came before this one, and the backoff index is that count (retry directives
    of earlier attempts are not persisted). The deadline counts from the first
    enqueue for a retried task. ``extra`` goes on the log record of a failing hook.
    """
    assert outcome.error is not None
    first = None if attempt <= 1 else outcome.started - max(0.0, since_enqueue)
    state = RetryState(
        attempt=attempt - 1,
        retries=max(0, attempt - 2),
        backoff_index=attempt - 1,
        first_started=first,
    )
    runner = Runner.restore(policy, state)
    try:
        step = runner.step(outcome.error, started=outcome.started, finished=outcome.finished)
    except Exception:
        logger.exception("the retry policy's hook failed; the task fails for good", extra=extra)
        return outcome.error, None
    error = step.error if step.error is not None else outcome.error
    return error, step.delay if step.again else None


def error_text_type(store: object) -> type[Any]:
    """Return the ``ErrorText`` class of ``store``'s package (``nack`` takes its own type).

    Raises:
        ConfigurationError: ``store``'s package has no ``ErrorText``.
    """
    module = type(store).__module__
    while module:
        found = getattr(importlib.import_module(module), "ErrorText", None)
        if isinstance(found, type):
            return found
        module = module.rpartition(".")[0]
    raise ConfigurationError(f"{store!r} is not a durable store (no ErrorText in its package)")


@final
class AckBatcher:
    """Group commit: successes that finish together are acked in one ``ack_many``."""

    __slots__ = ("_flusher", "_pending", "_store", "batches")

    def __init__(self, store: DurableStore) -> None:
        self._store = store
        self._pending: list[tuple[tuple[str, str, bytes | None], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0

    async def ack(self, task_id: str, token: str, result: bytes | None) -> bool:
        """Ack one claim with ``result``; ``False`` if its token is stale."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((task_id, token, result), future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="taskmill-durable-acks")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let completions of this loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit(batch)
        finally:
            self._flusher = None

    async def _commit(
        self, batch: Iterable[tuple[tuple[str, str, bytes | None], asyncio.Future[bool]]]
    ) -> None:
        items = list(batch)
        self.batches += 1
        try:
            done: list[bool] = await self._store.ack_many([item for item, _ in items])
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), ok in zip(items, done, strict=True):
            if not future.done():
                future.set_result(ok)
