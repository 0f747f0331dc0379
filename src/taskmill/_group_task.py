"""One tagged task of a group: its states, outcome, attempts, result (sc-bos ``GroupTask``)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, final

from ._errors import TaskCancelled, TaskTimeout, WouldBlock
from ._runner import Attempt, Runner

__all__ = ["GroupTask", "GroupTaskOutcome", "GroupTaskState", "attempt", "attempt_limit"]

T = TypeVar("T")


@final
class GroupTaskState(enum.Enum):
    """Where a :class:`GroupTask` is in its life (sc-bos ``task.State``)."""

    PENDING = "pending"
    """Spawned, not yet started."""
    RUNNING = "running"
    """An attempt is running."""
    WAITING = "waiting"
    """Waiting out the backoff before the next attempt (sc-bos ``Delay``)."""
    STOPPED = "stopped"
    """Finished for good; see :attr:`GroupTask.outcome`."""


@final
class GroupTaskOutcome(enum.Enum):
    """How a stopped :class:`GroupTask` ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


async def attempt(
    fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], limit: float | None, number: int
) -> T:
    """Run one attempt, under a fresh per-attempt time limit if there is one."""
    if limit is None:
        return await fn(*args)
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await fn(*args)
    except TimeoutError as error:
        if scope.expired():
            raise TaskTimeout(limit, number) from error
        raise


def attempt_limit(runner: Runner, started: float) -> float | None:
    """Seconds the next attempt may run: the per-attempt timeout cut to the deadline."""
    policy = runner.policy
    if policy.deadline is None:
        return policy.timeout
    first = runner.first_started
    left = policy.deadline - (started - (started if first is None else first))
    return left if policy.timeout is None else min(left, policy.timeout)


@final
class GroupTask(Generic[T]):
    """One tagged task of a :class:`Group`. Created by :meth:`Group.spawn`.

    ``await task.result()`` returns the result, or raises :attr:`error`, or
    :class:`~taskmill.TaskCancelled` if it was cancelled (the caller itself was
    not). :meth:`wait` never raises the task's error. (A handle is deliberately not
    awaitable itself, so spawning and forgetting it is not an "unused awaitable".)
    """

    __slots__ = (
        "_error",
        "_outcome",
        "_runner",
        "_state",
        "_task",
        "_value",
        "finished_at",
        "started_at",
        "tag",
    )

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._state = GroupTaskState.PENDING
        self._outcome: GroupTaskOutcome | None = None
        self._error: BaseException | None = None
        self._value: T | None = None
        self._runner: Runner | None = None
        self._task: asyncio.Task[None] | None = None
        self.started_at: float | None = None
        """Loop time the first attempt started."""
        self.finished_at: float | None = None
        """Loop time the task stopped."""

    # -- state ---------------------------------------------------------------------
    @property
    def state(self) -> GroupTaskState:
        """The current state."""
        return self._state

    @property
    def outcome(self) -> GroupTaskOutcome | None:
        """How it ended, once :attr:`state` is ``STOPPED`` (else ``None``)."""
        return self._outcome

    @property
    def done(self) -> bool:
        """Whether the task has stopped."""
        return self._state is GroupTaskState.STOPPED

    @property
    def error(self) -> BaseException | None:
        """The error it failed with — exactly what :func:`taskmill.run` would raise.

        With a retry policy that ran out of attempts (or its deadline) this is
        :class:`~taskmill.RetriesExhausted`; an error the policy does not retry,
        ``StopRetrying(err)``'s ``err``, or any error without a policy is raised
        as-is. ``None`` unless the outcome is ``FAILED``.
        """
        return self._error

    @property
    def last_error(self) -> BaseException | None:
        """The last attempt's own error (sc-bos' final error), even after a success."""
        history = self.history
        return history[-1].error if history else None

    @property
    def attempts(self) -> int:
        """Attempts started so far."""
        return self._runner.attempts if self._runner is not None else 0

    @property
    def history(self) -> tuple[Attempt, ...]:
        """Every finished attempt, in order."""
        return self._runner.history if self._runner is not None else ()

    # -- control -----------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel the task (during an attempt or a wait).

        Returns:
            ``False`` if it had already stopped, else ``True``.
        """
        if self.done or self._task is None:
            return False
        return self._task.cancel()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - returns bool
        """Wait until the task stops, at most ``timeout`` seconds.

        Returns:
            ``True`` if it has stopped, ``False`` if the timeout expired first.
        """
        if self._task is None:
            return self.done
        await asyncio.wait({self._task}, timeout=timeout)
        return self.done

    async def result(self) -> T:
        """Wait until the task stops and return its result.

        Raises:
            TaskCancelled: It was cancelled (the caller was not).
            BaseException: :attr:`error`, if it failed.
        """
        await self.wait()
        return self.result_nowait()

    def result_nowait(self) -> T:
        """Return the result of a task that has stopped, without waiting.

        Raises:
            WouldBlock: The task has not stopped yet.
            TaskCancelled: It was cancelled.
            BaseException: :attr:`error`, if it failed.
        """
        if self._outcome is None:
            raise WouldBlock(f"task {self.tag!r} has not finished ({self._state.value})")
        if self._outcome is GroupTaskOutcome.CANCELLED:
            raise TaskCancelled(self.tag, self.tag)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    # -- driven by the group -------------------------------------------------------
    def _stop(self, outcome: GroupTaskOutcome, now: float) -> None:
        self._outcome = outcome
        self._state = GroupTaskState.STOPPED
        self.finished_at = now

    def __repr__(self) -> str:
        outcome = f" outcome={self._outcome.value}" if self._outcome is not None else ""
        return (
            f"<GroupTask {self.tag!r} state={self._state.value}{outcome} attempts={self.attempts}>"
        )
