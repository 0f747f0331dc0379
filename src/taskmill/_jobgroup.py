"""Job groups (cilium hive ``job.Group``): start, watch and stop a set of jobs.

* Jobs added before :meth:`JobGroup.start` are queued and started, in the order
  they were added, by ``start()``; jobs added while the group runs start at once;
  adding after :meth:`JobGroup.stop` began raises :class:`~taskmill.NotRunning`.
* ``stop()`` cancels the jobs one at a time in **reverse start order**, waiting
  for each, within one overall timeout; when it expires the rest are cancelled too
  and :class:`~taskmill.StopTimeout` names the jobs still running (hive only
  logged it). No lock is held while jobs are awaited, so a job that calls
  ``add()`` during shutdown gets ``NotRunning`` at once instead of a deadlock.
* Each job reports to its own health scope under the group's node (or under a
  :meth:`JobGroup.scoped` sub-scope, also for jobs added before start). A job that
  finishes successfully closes its scope and unlinks itself; a failed job keeps
  its STOPPED node, with the error, in the tree.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import final

from ._errors import AlreadyStarted, ConfigurationError, NotRunning, StateError, StopTimeout
from ._health import Health
from ._jobs import Job, JobState, JobStatistics, Shutdown
from ._metrics import Metrics, NoopMetrics

__all__ = ["JobGroup", "JobGroupState", "JobGroupStatistics", "JobScope"]

logger = logging.getLogger(__name__)


@final
class JobGroupState(enum.StrEnum):
    """Where a :class:`JobGroup` is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobGroupStatistics:
    """A snapshot of a :class:`JobGroup`.

    Attributes:
        name: The group's name.
        state: The group's state.
        queued: Jobs waiting for the group to start.
        running: Jobs started and not ended.
        finished: Jobs that ended successfully (and unlinked themselves).
        failed: Jobs that ended with an error.
        stopped: Jobs cancelled (by ``stop()`` or otherwise).
        runs: Runs of all jobs, ended ones included.
        errors: Failed runs of all jobs, ended ones included.
        jobs: Snapshots of the jobs still linked (queued or running), in start order.
    """

    name: str
    state: JobGroupState
    queued: int
    running: int
    finished: int
    failed: int
    stopped: int
    runs: int
    errors: int
    jobs: tuple[JobStatistics, ...]


@final
class _Entry:
    """One job of a group; also its task's done callback (cheaper than a partial)."""

    __slots__ = ("core", "health", "job", "task")

    def __init__(self, core: _Core, job: Job, health: Health) -> None:
        self.core = core
        self.job = job
        self.health = health
        self.task: asyncio.Task[None] | None = None

    def __call__(self, task: asyncio.Task[None]) -> None:
        self.core.done(self, task)


@final
class _Core:
    """What a group and its scoped views share."""

    __slots__ = (
        "entries",
        "errors",
        "failed",
        "finished",
        "health",
        "metrics",
        "name",
        "runs",
        "scopes",
        "shutdown",
        "state",
        "stopped",
    )

    def __init__(
        self, name: str, health: Health, metrics: Metrics, shutdown: Shutdown | None
    ) -> None:
        self.name = name
        self.health = health
        self.metrics = metrics
        self.shutdown = shutdown
        self.state = JobGroupState.PENDING
        self.entries: dict[_Entry, None] = {}  # an ordered set, in start order
        self.scopes: list[Health] = []
        self.finished = self.failed = self.stopped = self.runs = self.errors = 0

    def add(self, jobs: Iterable[Job], under: Health) -> None:
        if self.state in (JobGroupState.STOPPING, JobGroupState.STOPPED):
            raise NotRunning(f"job group {self.name!r} is {self.state}; it accepts no more jobs")
        batch = list(jobs)
        self._check(batch)
        for job in batch:
            job.claim()
            entry = _Entry(self, job, under.scope(job.name))
            self.entries[entry] = None
            if self.state is JobGroupState.RUNNING:
                self.launch(entry)

    @staticmethod
    def _check(batch: list[Job]) -> None:
        """Refuse the whole batch before adding any of it."""
        for job in batch:
            if not isinstance(job, Job):
                raise ConfigurationError(f"not a taskmill Job: {job!r}")
        if len(set(batch)) != len(batch):
            raise StateError("the same job was passed twice; jobs are single-use")
        for job in batch:
            if job.state is not JobState.PENDING:
                raise StateError(f"{job!r} has already run; jobs are single-use")

    def launch(self, entry: _Entry) -> None:
        job = entry.job
        coro = job.run(health=entry.health, metrics=self.metrics, shutdown=self.shutdown)
        task = asyncio.create_task(coro, name=job.name)
        entry.task = task
        task.add_done_callback(entry)

    def done(self, entry: _Entry, task: asyncio.Task[None]) -> None:
        self.entries.pop(entry, None)
        stats = entry.job.statistics()
        self.runs += stats.runs
        self.errors += stats.errors
        if task.cancelled():
            self.stopped += 1
            if entry.job.state is JobState.PENDING:  # cancelled before it began
                entry.health.stopped("stopped before it started")
        elif task.exception() is not None:
            self.failed += 1  # the job logged it and left its STOPPED node in the tree
        else:
            self.finished += 1
            entry.health.close()

    def drop_queued(self) -> None:
        for entry in [e for e in self.entries if e.task is None]:
            del self.entries[entry]
            self.stopped += 1
            entry.health.stopped("never started")

    def statistics(self) -> JobGroupStatistics:
        linked = [entry.job.statistics() for entry in self.entries]
        queued = sum(1 for entry in self.entries if entry.task is None)
        return JobGroupStatistics(
            name=self.name,
            state=self.state,
            queued=queued,
            running=len(linked) - queued,
            finished=self.finished,
            failed=self.failed,
            stopped=self.stopped,
            runs=self.runs + sum(s.runs for s in linked),
            errors=self.errors + sum(s.errors for s in linked),
            jobs=tuple(linked),
        )


@final
class JobScope:
    """An add-only view of a :class:`JobGroup` whose jobs report under a health sub-scope.

    Created by :meth:`JobGroup.scoped`. Jobs added here are owned, started and
    stopped by the group; only their health scope differs.
    """

    __slots__ = ("_core", "_health")

    def __init__(self, core: _Core, health: Health) -> None:
        self._core = core
        self._health = health

    @property
    def name(self) -> str:
        """The sub-scope's name."""
        return self._health.name

    @property
    def health(self) -> Health:
        """The sub-scope's health node."""
        return self._health

    def add(self, *jobs: Job) -> None:
        """Add jobs to the group, reporting under this scope (see :meth:`JobGroup.add`)."""
        self._core.add(jobs, self._health)

    def scoped(self, name: str) -> JobScope:
        """Return a nested add-only view with its own health sub-scope."""
        return _new_scope(self._core, self._health, name)

    def __repr__(self) -> str:
        return f"<JobScope {'/'.join(self._health.path)!r} group_state={self._core.state}>"


def _new_scope(core: _Core, parent: Health, name: str) -> JobScope:
    node = parent.scope(name)
    if core.state is JobGroupState.RUNNING:
        node.ok("running")
    core.scopes.append(node)
    return JobScope(core, node)


@final
class JobGroup:
    """A set of jobs started, watched and stopped together (cilium hive ``job.Group``).

    Args:
        name: The group's name (its health node's name when ``health`` is not given).
        health: The node the group reports under (default: a new root).
        metrics: Where jobs report runs (default: :class:`~taskmill.NoopMetrics`).
        shutdown: Called with the error when a ``shutdown_on_failure`` one-shot
            finally fails (an app passes its own shutdown here).

    Example:
        >>> group = JobGroup("indexer")
        >>> group.add(one_shot("migrate", migrate))  # doctest: +SKIP
        >>> async with group:
        ...     ...  # doctest: +SKIP
    """

    __slots__ = ("_core", "_done")

    def __init__(
        self,
        name: str = "",
        *,
        health: Health | None = None,
        metrics: Metrics | None = None,
        shutdown: Shutdown | None = None,
    ) -> None:
        node = health if health is not None else Health.root(name)
        self._core = _Core(name, node, metrics or NoopMetrics(), shutdown)
        self._done: asyncio.Event | None = None

    @property
    def name(self) -> str:
        """The group's name."""
        return self._core.name

    @property
    def state(self) -> JobGroupState:
        """Where the group is in its life."""
        return self._core.state

    @property
    def health(self) -> Health:
        """The group's health node (each job has a scope under it)."""
        return self._core.health

    def add(self, *jobs: Job) -> None:
        """Add jobs: queued before start, started at once while running.

        Raises:
            NotRunning: the group is stopping or stopped.
            StateError: a job was already added somewhere or has already run.
            ConfigurationError: an argument is not a :class:`~taskmill.Job`.
        """
        self._core.add(jobs, self._core.health)

    def scoped(self, name: str) -> JobScope:
        """Return an add-only view whose jobs report under the health sub-scope ``name``."""
        return _new_scope(self._core, self._core.health, name)

    async def start(self) -> None:
        """Start every queued job, in the order they were added.

        Raises:
            AlreadyStarted: the group was already started (or stopped).
        """
        core = self._core
        if core.state is not JobGroupState.PENDING:
            raise AlreadyStarted(f"job group {core.name!r} is already {core.state}")
        core.state = JobGroupState.RUNNING
        core.health.ok("running")
        for node in core.scopes:
            node.ok("running")
        for entry in list(core.entries):
            core.launch(entry)

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - reports StopTimeout
        """Cancel the jobs in reverse start order and wait for each.

        Queued jobs that never started are dropped. Calling ``stop()`` again (or
        concurrently) waits for the first call to finish.

        Args:
            timeout: Seconds for the whole stop (``None``: wait as long as it takes).

        Raises:
            StopTimeout: jobs were still running when ``timeout`` expired; they
                have all been cancelled, and ``pending`` names them.
            ConfigurationError: ``timeout`` is negative or NaN.
        """
        if timeout is not None and not timeout >= 0:
            raise ConfigurationError(f"timeout must be None or >= 0, got {timeout!r}")
        core = self._core
        if core.state is JobGroupState.STOPPING and self._done is not None:
            await self._done.wait()
            return
        if core.state is JobGroupState.STOPPED:
            return
        core.state = JobGroupState.STOPPING
        self._done = asyncio.Event()
        try:
            await self._stop_jobs(timeout)
        except StopTimeout as exc:
            core.health.stopped("stop timed out", exc)
            raise
        else:
            core.health.stopped("stopped")
        finally:
            core.state = JobGroupState.STOPPED
            for node in core.scopes:
                node.stopped("stopped")
            self._done.set()

    async def _stop_jobs(self, limit: float | None) -> None:
        core = self._core
        core.drop_queued()
        order = [entry for entry in reversed(core.entries) if entry.task is not None]
        tasks = [entry.task for entry in order if entry.task is not None]
        loop = asyncio.get_running_loop()
        deadline = None if limit is None or math.isinf(limit) else loop.time() + limit
        try:
            for task in tasks:
                task.cancel()
                left = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait({task}, timeout=left)
                if not done:
                    break
        finally:
            for task in tasks:  # on timeout, or if stop() itself is cancelled
                task.cancel()
        if all(task.done() for task in tasks):
            return
        await asyncio.sleep(0)  # one last chance for jobs that stop promptly
        pending = [entry.job.name for entry in order if entry.task and not entry.task.done()]
        if pending:
            assert limit is not None
            logger.error("job group %r: stop timed out; still running: %s", core.name, pending)
            raise StopTimeout(limit, pending)

    def statistics(self) -> JobGroupStatistics:
        """Return a snapshot: job counts by state, runs and errors, linked jobs."""
        return self._core.statistics()

    async def __aenter__(self) -> JobGroup:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        core = self._core
        return f"<JobGroup {core.name!r} state={core.state} jobs={len(core.entries)}>"
