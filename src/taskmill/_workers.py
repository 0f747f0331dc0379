"""Workers and run-once jobs, run together (rebuy ``runutil``).

A *worker* runs until it is cancelled; a *run-once job* runs once. Both are either
an object with the method (``async def run(self)`` / ``async def run_once(self)``)
or a plain async function taking no arguments; every function here accepts both.

* :func:`run_all_workers`: the first worker to exit cancels the rest; a clean early
  return is :class:`~taskmill.WorkerExitedPrematurely`; errors are raised together
  as an :class:`ExceptionGroup`; ``CancelledError`` during the shutdown is not an error.
* :func:`run_all_jobs`: all run, a failure cancels nothing, errors are grouped.
* :func:`repeat`: a worker running a job on the shared drift-free ticker.
* :func:`named`: a worker whose every run is a logging subsystem.
* :class:`WorkerRegistry`: components declare their own workers (rebuy
  ``WorkerConfiger`` without a DI framework).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, final, runtime_checkable

from ._errors import ConfigurationError, WorkerExitedPrematurely
from ._subsystem import enter, leave
from ._ticker import Ticker, wait_tick

__all__ = [
    "NamedWorker",
    "Repeat",
    "RepeatStatistics",
    "RunOnce",
    "RunOnceLike",
    "Worker",
    "WorkerLike",
    "WorkerProvider",
    "WorkerRegistry",
    "named",
    "repeat",
    "run_all_jobs",
    "run_all_workers",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Worker(Protocol):
    """Something that runs until it is cancelled (rebuy ``Worker``).

    Returning (or raising) from :meth:`run` while it is supposed to keep running is
    an exit that :func:`run_all_workers` reports.
    """

    async def run(self) -> None:
        """Run until cancelled."""


@runtime_checkable
class RunOnce(Protocol):
    """A unit of work that runs once and returns (rebuy ``Job``)."""

    async def run_once(self) -> None:
        """Do the work once."""


WorkerLike: TypeAlias = Worker | Callable[[], Awaitable[None]]
"""A :class:`Worker` or an async function taking no arguments."""

RunOnceLike: TypeAlias = RunOnce | Callable[[], Awaitable[None]]
"""A :class:`RunOnce` or an async function taking no arguments."""


def _runner_of(obj: object, method: str) -> Callable[[], Awaitable[None]]:
    bound = getattr(obj, method, None)
    if callable(bound):
        return bound  # type: ignore[no-any-return]
    if callable(obj):
        return obj
    raise ConfigurationError(f"{obj!r} has no {method}() and is not callable")


def worker_callable(w: WorkerLike) -> Callable[[], Awaitable[None]]:
    """Return the coroutine function that runs ``w`` (its ``run`` or ``w`` itself)."""
    return _runner_of(w, "run")


def job_callable(job: RunOnceLike) -> Callable[[], Awaitable[None]]:
    """Return the coroutine function that runs ``job`` once."""
    return _runner_of(job, "run_once")


def describe(obj: object) -> str:
    """Return a short human name for a worker, job or function (for logs and errors)."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(obj, functools.partial):
        return describe(obj.func)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname
    return type(obj).__qualname__


# ------------------------------------------------------------------ run all
@final
class _Cascade:
    """Shared state of one :func:`run_all_workers` call."""

    __slots__ = ("errors", "stopping", "tasks")

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []

    def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()


async def _guard_worker(run: Callable[[], Awaitable[None]], name: str, cascade: _Cascade) -> None:
    try:
        await run()
    except asyncio.CancelledError:
        if not cascade.stopping:  # it cancelled itself: still an exit nobody asked for
            cascade.errors.append(WorkerExitedPrematurely(name))
    except Exception as error:  # collected, raised as a group
        logger.debug("worker %s failed", name, exc_info=True)
        cascade.errors.append(error)
    else:
        if not cascade.stopping:
            cascade.errors.append(WorkerExitedPrematurely(name))
    finally:
        cascade.stop()


async def _wait_all(tasks: Sequence[asyncio.Task[None]], on_cancel: Callable[[], None]) -> bool:
    """Wait for every task; if the caller is cancelled, call ``on_cancel`` and keep waiting.

    Returns:
        Whether the caller was cancelled meanwhile (its CancelledError is then owed).
    """
    cancelled = False
    pending = {task for task in tasks if not task.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
            on_cancel()
    return cancelled


async def run_all_workers(*workers: WorkerLike) -> None:
    """Run every worker concurrently until the first one exits, then stop them all.

    Whenever a worker returns or raises, every other worker is cancelled and waited
    for. Zero workers return at once.

    Raises:
        ExceptionGroup: If any worker failed or exited early. It holds each worker's
            error, in completion order, and a :class:`~taskmill.WorkerExitedPrematurely`
            for every worker that returned before the shutdown began. A worker that
            returns or raises ``CancelledError`` during the shutdown is *not* an error
            (rebuy reports ``context.Canceled``; we do not).
        asyncio.CancelledError: If the caller was cancelled: all workers are cancelled
            and awaited first. Errors raised by workers while shutting down take
            precedence, as in :class:`asyncio.TaskGroup`.
    """
    if not workers:
        return
    cascade = _Cascade()
    for w in workers:
        name = describe(w)
        coro = _guard_worker(worker_callable(w), name, cascade)
        cascade.tasks.append(asyncio.create_task(coro, name=name))
    cancelled = await _wait_all(cascade.tasks, cascade.stop)
    if cascade.errors:
        raise ExceptionGroup("workers exited", cascade.errors)
    if cancelled:
        raise asyncio.CancelledError


async def _guard_job(
    run: Callable[[], Awaitable[None]], name: str, errors: list[Exception]
) -> None:
    try:
        await run()
    except Exception as error:  # collected, raised as a group
        logger.debug("job %s failed", name, exc_info=True)
        errors.append(error)


async def run_all_jobs(*jobs: RunOnceLike) -> None:
    """Run every job concurrently and wait for all; a failure cancels nothing.

    Raises:
        ExceptionGroup: Every job's error, in completion order.
        asyncio.CancelledError: If the caller was cancelled (all jobs are cancelled
            and awaited first; job errors take precedence, as in a TaskGroup).
    """
    errors: list[Exception] = []
    tasks = [
        asyncio.create_task(_guard_job(job_callable(j), describe(j), errors), name=describe(j))
        for j in jobs
    ]

    def cancel_all() -> None:
        for task in tasks:
            task.cancel()

    cancelled = await _wait_all(tasks, cancel_all)
    if errors:
        raise ExceptionGroup("jobs failed", errors)
    if cancelled:
        raise asyncio.CancelledError


# ------------------------------------------------------------------ repeat
@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatStatistics:
    """A snapshot of a :class:`Repeat` worker.

    Attributes:
        name: The worker's name.
        interval: Seconds between run starts.
        runs: Runs started (over every :meth:`Repeat.run`).
        missed: Ticks dropped because a run overran them.
        running: Whether a run is in progress.
        last_started: Loop time of the last run's start (``None`` before the first).
    """

    name: str
    interval: float
    runs: int
    missed: int
    running: bool
    last_started: float | None


@final
class Repeat:
    """A worker that runs a job on a drift-free start-to-start ticker (rebuy ``Repeat``).

    Build it with :func:`repeat`.
    """

    __slots__ = (
        "_immediate",
        "_interval",
        "_job",
        "_last_started",
        "_missed",
        "_running",
        "_runs",
        "name",
    )

    def __init__(self, interval: float, job: RunOnceLike, *, immediate: bool, name: str) -> None:
        Ticker(interval, start=0.0)  # validates the interval at the call that passed it
        self._interval = float(interval)
        self._job = job_callable(job)
        self._immediate = immediate
        self.name = name
        self._runs = 0
        self._missed = 0
        self._running = False
        self._last_started: float | None = None

    async def run(self) -> None:
        """Run the job on every tick until cancelled; a job error ends the worker."""
        loop = asyncio.get_running_loop()
        ticker = Ticker(self._interval, start=loop.time(), immediate=self._immediate)
        missed_before = 0
        while True:
            await wait_tick(ticker)
            self._missed += ticker.missed - missed_before
            missed_before = ticker.missed
            self._runs += 1
            self._last_started = loop.time()
            self._running = True
            try:
                await self._job()
            finally:
                self._running = False

    def statistics(self) -> RepeatStatistics:
        """Return a snapshot of this worker."""
        return RepeatStatistics(
            name=self.name,
            interval=self._interval,
            runs=self._runs,
            missed=self._missed,
            running=self._running,
            last_started=self._last_started,
        )

    def __repr__(self) -> str:
        return f"<Repeat {self.name!r} interval={self._interval:g} runs={self._runs}>"


def repeat(
    interval: float, job: RunOnceLike, *, immediate: bool = False, name: str | None = None
) -> Repeat:
    """Return a worker that runs ``job`` every ``interval`` seconds, start to start.

    Runs sit on the grid ``start + k * interval`` (no drift); a run that overruns is
    followed at once by the next and the ticks it overran are dropped, never queued.
    The first run is one interval after the worker starts, or at once with
    ``immediate=True`` (and the second is still on the grid, at ``start +
    interval`` — rebuy puts it one interval after the *end* of the first run). A job
    error ends the worker with that error; wrap it in :func:`~taskmill.supervise` to
    keep going.

    Args:
        interval: Seconds between run starts (> 0).
        job: What to run each tick.
        immediate: Run once as soon as the worker starts.
        name: The worker's name (default: the job's).

    Raises:
        ConfigurationError: ``interval`` is not a finite number > 0.
    """
    return Repeat(interval, job, immediate=immediate, name=name or describe(job))


# ------------------------------------------------------------------ naming
@final
class NamedWorker:
    """A worker whose every run is a nested logging subsystem (rebuy ``NamedWorker``).

    Each :meth:`run` enters :func:`~taskmill.subsystem` with this name, so logs from
    the worker (and from tasks it creates) carry ``subsystem="/outer/name"`` and a
    fresh trace id per run. Build it with :func:`named`.
    """

    __slots__ = ("_run", "name", "worker")

    def __init__(self, name: str, worker: WorkerLike) -> None:
        if not name:
            raise ConfigurationError("a worker name must not be empty")
        self.name = name
        self.worker = worker
        self._run = worker_callable(worker)

    async def run(self) -> None:
        """Run the wrapped worker inside this subsystem."""
        token = enter(self.name)
        try:
            await self._run()
        finally:
            leave(token)

    def __repr__(self) -> str:
        return f"<NamedWorker {self.name!r} {describe(self.worker)!r}>"


def named(name: str, worker: WorkerLike) -> NamedWorker:
    """Return ``worker`` wrapped so each run is logged under the subsystem ``name``.

    Raises:
        ConfigurationError: ``name`` is empty.
    """
    return NamedWorker(name, worker)


def type_name(obj: object) -> str:
    """Return ``"module/Type"`` for ``obj`` (rebuy ``NamedWorkerFromType``).

    ``module`` is the last part of the defining module's dotted name, so an
    instance of ``shop.workers.CommitFetcher`` is ``"workers/CommitFetcher"``
    (a class defined inside a function drops the ``<locals>`` prefix).
    """
    cls = type(obj)
    qualname = cls.__qualname__.rpartition("<locals>.")[2]
    return f"{cls.__module__.rpartition('.')[2]}/{qualname}"


# ------------------------------------------------------------------ registry
@runtime_checkable
class WorkerProvider(Protocol):
    """A component that declares its own workers (rebuy ``WorkerConfiger``)."""

    def workers(self) -> Iterable[WorkerLike]:
        """Return the workers this component needs running."""
        ...


ProviderLike: TypeAlias = WorkerProvider | Callable[[], WorkerProvider | None] | None


@final
class WorkerRegistry:
    """Collects components that declare workers, and runs them all together.

    ``provide()`` takes a component with a ``workers()`` method, or a factory
    called (once, lazily) to build one; a ``None`` component is skipped, so a
    feature disabled by configuration can provide nothing. :meth:`run` flattens
    every component's workers, names each after its component's type
    (``"module/Type"``) and runs them with :func:`run_all_workers` semantics.
    """

    __slots__ = ("_components", "_factories")

    def __init__(self) -> None:
        self._factories: list[Callable[[], WorkerProvider | None]] = []
        self._components: list[WorkerProvider] = []

    def provide(self, provider: ProviderLike) -> None:
        """Register a component, or a factory returning one (or ``None``).

        Raises:
            ConfigurationError: ``provider`` has no ``workers()`` and is not callable.
        """
        if provider is None:
            return
        if isinstance(provider, WorkerProvider) and not isinstance(provider, type):
            self._components.append(provider)
        elif callable(provider):
            self._factories.append(provider)
        else:
            raise ConfigurationError(f"{provider!r} has no workers() method and is not a factory")

    def components(self) -> list[WorkerProvider]:
        """Return every component, calling pending factories once (``None`` is skipped)."""
        factories, self._factories = self._factories, []
        for factory in factories:
            component = factory()
            if component is None:
                continue
            if not isinstance(component, WorkerProvider):
                raise ConfigurationError(f"factory {describe(factory)} returned {component!r}")
            self._components.append(component)
        return list(self._components)

    def workers(self) -> list[NamedWorker]:
        """Return every declared worker, each named after its component's type."""
        return [
            named(type_name(component), w)
            for component in self.components()
            for w in component.workers()
        ]

    async def run(self) -> None:
        """Run every declared worker with :func:`run_all_workers` semantics."""
        await run_all_workers(*self.workers())

    def __len__(self) -> int:
        return len(self._components) + len(self._factories)

    def __repr__(self) -> str:
        return f"<WorkerRegistry providers={len(self)}>"
