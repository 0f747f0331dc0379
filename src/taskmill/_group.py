"""Tagged task groups (sc-bos ``Group``): spawn by tag, watch, cancel, wait, prune.

Each :meth:`Group.spawn` runs a function under a unique tag, retried by the shared
retry core (:class:`~taskmill.Runner`) when given a :class:`~taskmill.Retry`. A
:class:`GroupTask` shows its state (pending, running, waiting between attempts,
stopped), its outcome and error once stopped, and its attempts; it can be
cancelled, waited for with a timeout (``-> bool``) or for its result.

Strategies: ``"isolate"`` (default) — a failure touches nobody else;
``"cancel_all"`` — the first failure cancels every other task and the group stops
accepting new ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, TypeVarTuple, final

from ._errors import ConfigurationError, NotRunning, TagExists
from ._group_task import GroupTask, GroupTaskOutcome, GroupTaskState, attempt, attempt_limit
from ._retry import Retry
from ._runner import Runner

__all__ = [
    "Group",
    "GroupStatistics",
    "GroupStrategy",
    "GroupTask",
    "GroupTaskOutcome",
    "GroupTaskState",
    "open_group",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

GroupStrategy = Literal["isolate", "cancel_all"]
_STRATEGIES: frozenset[str] = frozenset({"isolate", "cancel_all"})
_SINGLE = Retry(max_attempts=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStatistics:
    """A snapshot of a :class:`Group`.

    Attributes:
        name: The group's name.
        strategy: ``"isolate"`` or ``"cancel_all"``.
        tasks: Tasks held (not yet pruned).
        pending: Held tasks not started yet.
        running: Held tasks running an attempt.
        waiting: Held tasks waiting between attempts.
        stopped: Held tasks that finished.
        spawned: Tasks spawned since creation.
        succeeded: Tasks that succeeded since creation.
        failed: Tasks that failed since creation.
        cancelled: Tasks cancelled since creation.
        pruned: Finished tasks removed so far.
        closed: Whether the group refuses new tasks.
    """

    name: str
    strategy: GroupStrategy
    tasks: int
    pending: int
    running: int
    waiting: int
    stopped: int
    spawned: int
    succeeded: int
    failed: int
    cancelled: int
    pruned: int
    closed: bool


def _validate(strategy: str, retain_finished: int | None) -> None:
    if strategy not in _STRATEGIES:
        raise ConfigurationError(f"strategy must be 'isolate' or 'cancel_all', got {strategy!r}")
    if retain_finished is not None and retain_finished < 0:
        raise ConfigurationError(f"retain_finished must be None or >= 0, got {retain_finished!r}")


@final
class Group:
    """A set of tagged, retrying, watchable tasks. Use :func:`open_group`.

    Leaving ``async with`` waits for every task, like :class:`asyncio.TaskGroup`
    (call :meth:`cancel_all` first to stop long-running ones); if the body raised
    or was cancelled, the tasks are cancelled instead. Task errors are raised on
    exit as an :class:`ExceptionGroup` only when ``raise_errors`` is true — the
    default for ``"cancel_all"``; with ``"isolate"`` they stay on the tasks.
    Without ``async with``, call :meth:`aclose` (cancel and wait) or :meth:`join`.

    Args:
        name: Name for logs, task names and statistics.
        strategy: ``"isolate"`` or ``"cancel_all"``.
        raise_errors: Raise task errors on exit (default: strategy-dependent).
        retain_finished: Keep at most this many finished tasks, pruning the oldest
            first (default ``None``: keep all until :meth:`prune`).

    Raises:
        ConfigurationError: An unknown strategy or a negative ``retain_finished``.
    """

    __slots__ = (
        "_closed",
        "_counts",
        "_finished",
        "_raise_errors",
        "_retain",
        "_tasks",
        "name",
        "strategy",
    )

    def __init__(
        self,
        *,
        name: str = "group",
        strategy: GroupStrategy = "isolate",
        raise_errors: bool | None = None,
        retain_finished: int | None = None,
    ) -> None:
        _validate(strategy, retain_finished)
        self.name = name
        self.strategy: GroupStrategy = strategy
        self._raise_errors = strategy == "cancel_all" if raise_errors is None else raise_errors
        self._retain = retain_finished
        self._tasks: dict[str, GroupTask[Any]] = {}
        self._finished: list[str] = []
        self._closed = False
        self._counts = dict.fromkeys(("spawned", "pruned", *(o.value for o in GroupTaskOutcome)), 0)

    # -- spawning ------------------------------------------------------------------
    def spawn(
        self,
        tag: str,
        fn: Callable[[*Ts], Awaitable[T]],
        /,
        *args: *Ts,
        retry: Retry | None = None,
    ) -> GroupTask[T]:
        """Start ``fn(*args)`` under ``tag``, retried by ``retry`` (one attempt if None).

        Pass keyword arguments with :func:`functools.partial`. Raise a
        :class:`~taskmill.RetryDirective` from ``fn`` to steer its retries.

        Returns:
            The task's handle.

        Raises:
            TagExists: A task with this tag is held (the original is untouched).
            NotRunning: The group is closed (exited, closed, or aborted by a
                ``cancel_all`` failure).
        """
        if self._closed:
            raise NotRunning(f"group {self.name!r} is closed; it accepts no new tasks")
        if tag in self._tasks:
            raise TagExists(tag)
        handle: GroupTask[T] = GroupTask(tag)
        coro = self._drive(handle, fn, args, retry)
        task = asyncio.create_task(coro, name=f"{self.name}:{tag}")
        task.add_done_callback(functools.partial(self._task_done, handle))
        handle._task = task  # noqa: SLF001
        self._tasks[tag] = handle
        self._counts["spawned"] += 1
        return handle

    async def _drive(
        self,
        handle: GroupTask[T],
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        retry: Retry | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        policy = retry if retry is not None else _SINGLE
        runner = handle._runner = Runner(policy)  # noqa: SLF001
        try:
            await self._attempts(handle, fn, args, runner, loop)
        except asyncio.CancelledError:
            self._finish(handle, GroupTaskOutcome.CANCELLED, loop.time())
            raise
        except Exception as error:  # noqa: BLE001 - a failing hook of the policy
            handle._error = error  # noqa: SLF001
            self._finish(handle, GroupTaskOutcome.FAILED, loop.time())

    async def _attempts(
        self,
        handle: GroupTask[T],
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        runner: Runner,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        task = asyncio.current_task()
        policy = runner.policy
        while True:
            if task is not None and task.cancelling():  # never start after cancellation
                raise asyncio.CancelledError
            handle._state = GroupTaskState.RUNNING  # noqa: SLF001
            started = loop.time()
            if handle.started_at is None:
                handle.started_at = started
            try:
                value = await attempt(fn, args, attempt_limit(runner, started), runner.attempts + 1)
            except Exception as error:  # noqa: BLE001 - the Runner decides what is retried
                step = runner.step(error, started=started, finished=loop.time())
            else:
                runner.step(None, started=started, finished=loop.time())
                handle._value = value  # noqa: SLF001
                self._finish(handle, GroupTaskOutcome.SUCCEEDED, loop.time())
                return
            if not step.again:
                self._fail(handle, runner, retry_given=policy is not _SINGLE)
                return
            handle._state = GroupTaskState.WAITING  # noqa: SLF001
            await asyncio.sleep(step.delay)

    def _task_done(self, handle: GroupTask[Any], task: asyncio.Task[None]) -> None:
        """Settle a task cancelled before its first step (its coroutine never ran)."""
        if not handle.done:
            self._finish(handle, GroupTaskOutcome.CANCELLED, task.get_loop().time())

    def _fail(self, handle: GroupTask[Any], runner: Runner, *, retry_given: bool) -> None:
        error = runner.failure() if retry_given else runner.history[-1].error
        handle._error = error  # noqa: SLF001
        logger.warning("task %s of group %s failed", handle.tag, self.name, exc_info=error)
        self._finish(handle, GroupTaskOutcome.FAILED, asyncio.get_running_loop().time())
        if self.strategy == "cancel_all":
            self._closed = True
            self.cancel_all()

    def _finish(self, handle: GroupTask[Any], outcome: GroupTaskOutcome, now: float) -> None:
        handle._stop(outcome, now)  # noqa: SLF001
        self._counts[outcome.value] += 1
        if self._tasks.get(handle.tag) is not handle:
            return
        self._finished.append(handle.tag)
        if self._retain is not None:
            while len(self._finished) > self._retain:
                self._remove(self._finished[0])

    def _remove(self, tag: str) -> None:
        self._finished.remove(tag)
        del self._tasks[tag]
        self._counts["pruned"] += 1

    # -- inspection and control ------------------------------------------------------
    def tasks(self) -> dict[str, GroupTask[Any]]:
        """Return a copy of the tag -> task mapping (finished tasks until pruned)."""
        return dict(self._tasks)

    def __contains__(self, tag: object) -> bool:
        return tag in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def prune(self) -> list[str]:
        """Forget every finished task so its tag can be reused.

        Returns:
            The tags removed, oldest finished first.
        """
        tags = list(self._finished)
        for tag in tags:
            self._remove(tag)
        return tags

    def cancel_all(self) -> int:
        """Cancel every task that has not stopped.

        Returns:
            How many tasks were asked to cancel.
        """
        return sum(task.cancel() for task in list(self._tasks.values()))

    async def join(self) -> None:
        """Wait until every task has stopped (including tasks spawned meanwhile).

        If the caller is cancelled, every task is cancelled and awaited first.
        """
        try:
            await self._wait_running()
        except asyncio.CancelledError:
            await self._cancel_and_wait()
            raise

    def _running(self) -> list[asyncio.Task[None]]:
        tasks = (t._task for t in self._tasks.values() if not t.done)  # noqa: SLF001
        return [task for task in tasks if task is not None]

    async def _wait_running(self) -> None:
        while running := self._running():
            await asyncio.wait(running)

    async def _cancel_and_wait(self) -> None:
        """Cancel everything and wait, even through further cancellations."""
        self._closed = True
        while True:
            self.cancel_all()
            try:
                await self._wait_running()
            except asyncio.CancelledError:
                continue
            return

    async def aclose(self) -> None:
        """Close the group: refuse new tasks, cancel the running ones and wait."""
        await self._cancel_and_wait()

    async def __aenter__(self) -> Group:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._cancel_and_wait()
            return
        await self.join()
        self._closed = True
        errors = [t.error for t in self._tasks.values() if isinstance(t.error, Exception)]
        if self._raise_errors and errors:
            raise ExceptionGroup(f"tasks of group {self.name!r} failed", errors)

    # -- observability -----------------------------------------------------------------
    def statistics(self) -> GroupStatistics:
        """Return a snapshot of the group."""
        states = [t.state for t in self._tasks.values()]
        counts = self._counts
        return GroupStatistics(
            name=self.name,
            strategy=self.strategy,
            tasks=len(states),
            pending=states.count(GroupTaskState.PENDING),
            running=states.count(GroupTaskState.RUNNING),
            waiting=states.count(GroupTaskState.WAITING),
            stopped=states.count(GroupTaskState.STOPPED),
            spawned=counts["spawned"],
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            pruned=counts["pruned"],
            closed=self._closed,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Group {self.name!r} strategy={self.strategy} tasks={s.tasks} running={s.running} "
            f"waiting={s.waiting} stopped={s.stopped} closed={s.closed}>"
        )


def open_group(
    *,
    name: str = "group",
    strategy: GroupStrategy = "isolate",
    raise_errors: bool | None = None,
    retain_finished: int | None = None,
) -> Group:
    """Return a new :class:`Group`, meant for ``async with ... as group:``.

    See :class:`Group` for the arguments and what leaving the block does.

    Raises:
        ConfigurationError: An unknown strategy or a negative ``retain_finished``.
    """
    return Group(
        name=name, strategy=strategy, raise_errors=raise_errors, retain_finished=retain_finished
    )
