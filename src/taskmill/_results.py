"""Result subscriptions: :class:`TaskResult` and the :class:`ResultStream` async iterator.

Every terminal transition of every task (succeeded, failed, cancelled, timed out)
produces exactly one :class:`TaskResult`, delivered to every open stream. A stream
buffers at most ``buffer`` results; when a result arrives at a full buffer the
stream's policy decides which one is lost:

* ``"drop_oldest"`` (default): the oldest buffered result is discarded, so a slow
  reader always sees the most recent outcomes;
* ``"drop_newest"``: the arriving result is discarded, so a slow reader sees an
  unbroken prefix.

Drops are counted per stream (:meth:`ResultStream.statistics`) and in the
manager's statistics (``results_dropped``). A stream never blocks the manager.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, final

from ._errors import ConfigurationError, TaskCancelled, TaskFailed
from ._handle import TaskStatus

__all__ = ["DropPolicy", "ResultStream", "ResultStreamStatistics", "TaskResult"]

DropPolicy = Literal["drop_oldest", "drop_newest"]
"""Which result a full :class:`ResultStream` discards."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """The outcome of one task, as delivered by :meth:`TaskManager.results`.

    Attributes:
        id: The task id.
        name: The task name.
        status: Its terminal status.
        value: What it returned (``None`` unless it succeeded).
        error: The final error (the original exception) for failed and timed-out
            tasks; ``None`` otherwise.
        attempts: How many attempts it started.
        submitted_at: When it was accepted (aware UTC).
        started_at: When its last attempt started, if it ever started.
        finished_at: When it reached its terminal status.
    """

    id: str
    name: str
    status: TaskStatus
    value: Any
    error: BaseException | None
    attempts: int
    submitted_at: _dt.datetime
    started_at: _dt.datetime | None
    finished_at: _dt.datetime

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status is TaskStatus.SUCCEEDED

    def unwrap(self) -> Any:
        """Return the value, or raise what awaiting the task's handle would raise.

        Raises:
            TaskFailed: The task failed or timed out.
            TaskCancelled: The task was cancelled.
        """
        if self.status is TaskStatus.SUCCEEDED:
            return self.value
        if self.status is TaskStatus.CANCELLED:
            raise TaskCancelled(self.id, self.name)
        error = self.error
        raise TaskFailed(
            self.id,
            self.name,
            error_type=type(error).__qualname__,
            message=str(error),
            cause=error,
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResultStreamStatistics:
    """A snapshot of one :class:`ResultStream`.

    Attributes:
        buffered: Results waiting to be read.
        buffer: The buffer's capacity.
        delivered: Results handed to the reader so far.
        dropped: Results lost to the drop policy so far.
        policy: The drop policy.
        closed: Whether the stream accepts no more results.
    """

    buffered: int
    buffer: int
    delivered: int
    dropped: int
    policy: DropPolicy
    closed: bool


@final
class ResultStream:
    """An async iterator over task results with a bounded buffer (see the module doc).

    Created by :meth:`TaskManager.results`; it is subscribed from that moment. Use
    it as ``async with mgr.results() as stream: async for result in stream: ...``
    or iterate it directly and call :meth:`aclose` when done. Iteration ends after
    :meth:`aclose`, or once the manager has stopped and the buffer is empty.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_delivered",
        "_dropped",
        "_on_close",
        "_on_drop",
        "_policy",
        "_size",
        "_waiter",
    )

    def __init__(
        self,
        buffer: int,
        policy: DropPolicy,
        *,
        on_close: Callable[[ResultStream], None],
        on_drop: Callable[[], None],
    ) -> None:
        size: object = buffer
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"buffer must be an int >= 1, got {buffer!r}")
        if policy not in ("drop_oldest", "drop_newest"):
            raise ConfigurationError(
                f"policy must be 'drop_oldest' or 'drop_newest', got {policy!r}"
            )
        self._buffer: deque[TaskResult] = deque()
        self._size = buffer
        self._policy: DropPolicy = policy
        self._closed = False
        self._delivered = 0
        self._dropped = 0
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self._on_drop = on_drop

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ResultStream {state} buffered={len(self._buffer)}/{self._size} "
            f"dropped={self._dropped} policy={self._policy}>"
        )

    def push(self, result: TaskResult) -> None:
        """Offer one result (called by the manager; never blocks)."""
        if self._closed:
            return
        buffer = self._buffer
        if len(buffer) >= self._size:
            self._dropped += 1
            self._on_drop()
            if self._policy == "drop_newest":
                return
            buffer.popleft()
        buffer.append(result)
        self._wake()

    def end(self) -> None:
        """Accept no more results; the reader still gets what is buffered."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> TaskResult:
        buffer = self._buffer
        while not buffer:
            if self._closed:
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self._delivered += 1
        return buffer.popleft()

    async def aclose(self) -> None:
        """Unsubscribe and drop whatever is buffered; iteration ends."""
        if not self._closed:
            self._on_close(self)
        self._closed = True
        self._buffer.clear()
        self._wake()

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def statistics(self) -> ResultStreamStatistics:
        """Return a snapshot of this stream."""
        return ResultStreamStatistics(
            buffered=len(self._buffer),
            buffer=self._size,
            delivered=self._delivered,
            dropped=self._dropped,
            policy=self._policy,
            closed=self._closed,
        )
