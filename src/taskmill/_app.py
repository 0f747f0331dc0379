"""The application container (hive + rebuy): components, job groups, workers, signals.

Start order: components and hooks (in registration order), then job groups, then
workers; :meth:`App.start` returns once every worker added with ``ready=True`` has
called :meth:`Ready.started`. Stop order is the reverse: workers, job groups
(last created first), then components (last registered first), all within one
``stop_timeout``. :meth:`App.run` starts, waits for :meth:`App.shutdown` or
SIGINT/SIGTERM (the first signal stops gracefully, a second one stops at once),
stops, and raises the error that caused the shutdown — a fatal job's or a failed
worker's — so a command-line entry point can map it to an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, final, overload

from ._errors import AlreadyStarted, ConfigurationError, StateError, StopTimeout
from ._health import Health
from ._jobgroup import JobGroup, JobGroupStatistics
from ._lifecycle import call_maybe_async
from ._metrics import Metrics, NoopMetrics
from ._readiness import Ready, ReadyWorker, signal_handlers
from ._supervise import RestartPolicy, supervise
from ._workers import ProviderLike, WorkerLike, WorkerRegistry, describe, named, run_all_workers

__all__ = ["App", "AppState", "AppStatistics", "Ready"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# A job group times itself out at the deadline and names its stuck jobs; the app cuts
# its stop short only this much later, as a backstop.
_BACKSTOP = 0.001
Hook = Callable[[], Awaitable[None] | None]


@final
class AppState(enum.StrEnum):
    """Where an :class:`App` is in its life."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppStatistics:
    """A snapshot of an :class:`App`.

    Attributes:
        name: The app's name.
        state: Its state.
        components: Components and hooks registered.
        job_groups: A snapshot of every job group, in creation order.
        workers: Workers registered (provided ones count once started).
        ready: Workers that signalled readiness, of those that must.
        awaiting_ready: Workers that must signal readiness.
        shutdown_requested: Whether a shutdown was requested.
        error: ``repr`` of the error that requested the shutdown, if any.
        signals: SIGINT/SIGTERM received while running.
    """

    name: str
    state: AppState
    components: int
    job_groups: tuple[JobGroupStatistics, ...]
    workers: int
    ready: int
    awaiting_ready: int
    shutdown_requested: bool
    error: str | None
    signals: int


@final
class _Unit:
    """A component or hook: what to call on start and on stop."""

    __slots__ = ("name", "start", "stop")

    def __init__(self, name: str, start: Hook | None, stop: Hook | None) -> None:
        self.name = name
        self.start = start
        self.stop = stop


@final
class App:
    """Runs an application's components, job groups and workers as one unit.

    Args:
        name: The app's name (its health root's name).
        stop_timeout: Seconds a graceful stop may take in total (> 0).
        metrics: Passed to every job group (default: no-op).

    Raises:
        ConfigurationError: ``stop_timeout`` is not a number > 0.
    """

    def __init__(
        self, name: str = "app", *, stop_timeout: float = 30.0, metrics: Metrics | None = None
    ) -> None:
        if not (stop_timeout > 0 and not math.isnan(stop_timeout)):
            raise ConfigurationError(f"stop_timeout must be > 0, got {stop_timeout!r}")
        self.name = name
        self.stop_timeout = stop_timeout
        self._metrics = metrics or NoopMetrics()
        self._health = Health.root(name)
        self._state = AppState.CREATED
        self._units: list[_Unit] = []
        self._started: list[_Unit] = []
        self._groups: list[JobGroup] = []
        self._workers: list[WorkerLike] = []
        self._readies: list[Ready] = []
        self._registry = WorkerRegistry()
        self._workers_task: asyncio.Task[None] | None = None
        self._shutdown = asyncio.Event()
        self._error: BaseException | None = None
        self._stopped = asyncio.Event()
        self._deadline: float | None = None
        self._step: asyncio.Timeout | None = None
        self._signals = 0

    # -- registration -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._state is not AppState.CREATED:
            raise AlreadyStarted(f"app {self.name!r} is {self._state}; register before start()")

    def component(self, obj: T, *, name: str | None = None) -> T:
        """Register ``obj``: its ``start()`` runs at start, its ``stop()`` at stop.

        Either method may be sync or async; at least one must exist.

        Returns:
            ``obj``, so ``db = app.component(Database())`` reads naturally.

        Raises:
            ConfigurationError: ``obj`` has neither ``start()`` nor ``stop()``.
            AlreadyStarted: The app was already started.
        """
        self._check_open()
        start, stop = getattr(obj, "start", None), getattr(obj, "stop", None)
        if not callable(start) and not callable(stop):
            raise ConfigurationError(f"{obj!r} has neither start() nor stop()")
        unit_name = name or type(obj).__qualname__
        self._units.append(
            _Unit(unit_name, start if callable(start) else None, stop if callable(stop) else None)
        )
        return obj

    def on_start(self, hook: Hook) -> Hook:
        """Register a start hook (sync or async); usable as a decorator."""
        self._check_open()
        self._units.append(_Unit(describe(hook), hook, None))
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """Register a stop hook; it runs in reverse registration order with the components."""
        self._check_open()
        self._units.append(_Unit(describe(hook), None, hook))
        return hook

    def job_group(self, name: str) -> JobGroup:
        """Return a new job group owned by the app, reporting under ``health/name``.

        It is started after the components and stopped before them; its
        ``shutdown_on_failure`` one-shots shut the app down with their error.
        """
        self._check_open()
        group = JobGroup(
            name, health=self._health.scope(name), metrics=self._metrics, shutdown=self.shutdown
        )
        self._groups.append(group)
        return group

    @overload
    def add_worker(
        self,
        worker: WorkerLike,
        *,
        name: str | None = ...,
        restart: RestartPolicy | None = ...,
        ready: Literal[False] = ...,
    ) -> None: ...

    @overload
    def add_worker(
        self,
        worker: Callable[[Ready], Awaitable[None]],
        *,
        name: str | None = ...,
        restart: RestartPolicy | None = ...,
        ready: Literal[True],
    ) -> None: ...

    def add_worker(
        self,
        worker: Any,
        *,
        name: str | None = None,
        restart: RestartPolicy | None = None,
        ready: bool = False,
    ) -> None:
        """Register a worker; all workers run together with ``run_all_workers`` semantics.

        A worker that exits (or fails) while the app runs shuts the app down with
        that error, unless ``restart`` supervises it.

        Args:
            worker: A worker, or with ``ready=True`` an ``async def w(ready: Ready)``.
            name: Logging subsystem name for its runs (see :func:`~taskmill.named`).
            restart: Supervise it with this policy (see :func:`~taskmill.supervise`).
            ready: ``start()`` waits until the worker calls ``ready.started()``.

        Raises:
            AlreadyStarted: The app was already started.
        """
        self._check_open()
        composed: WorkerLike = worker
        if ready:
            readiness = Ready(name or describe(worker))
            self._readies.append(readiness)
            composed = ReadyWorker(worker, readiness)
        if name:
            composed = named(name, composed)
        if restart is not None:
            composed = supervise(composed, restart)
        self._workers.append(composed)

    def provide(self, provider: ProviderLike) -> None:
        """Register a component (or factory) declaring its own workers (``workers()``).

        See :class:`~taskmill.WorkerRegistry`; its workers join the app's at start.
        """
        self._check_open()
        self._registry.provide(provider)

    # -- state ----------------------------------------------------------------------
    @property
    def state(self) -> AppState:
        """Where the app is in its life."""
        return self._state

    @property
    def health(self) -> Health:
        """The root of the app's health tree (one scope per job group, plus workers)."""
        return self._health

    @property
    def error(self) -> BaseException | None:
        """The error that requested the shutdown, if any."""
        return self._error

    def shutdown(self, error: BaseException | None = None) -> None:
        """Ask the app to stop; :meth:`run` then stops and raises ``error`` if given.

        Non-blocking and safe to call many times; the first error wins. Job groups
        call it when a ``shutdown_on_failure`` job finally fails.
        """
        if error is not None and self._error is None:
            self._error = error
            logger.error("app %s: shutting down because of %r", self.name, error)
        self._shutdown.set()

    # -- start ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start components, job groups and workers; wait for readiness.

        If anything fails to start, what already started is stopped (in reverse)
        and the error is raised.

        Raises:
            AlreadyStarted: ``start()`` was already called.
        """
        self._check_open()
        self._state = AppState.STARTING
        try:
            await self._start_all()
        except BaseException:
            logger.exception("app %s failed to start; stopping what started", self.name)
            with contextlib.suppress(Exception):
                await self._stop_all()
            raise
        self._state = AppState.RUNNING
        self._health.ok("running")

    async def _start_all(self) -> None:
        for unit in self._units:
            if unit.start is not None:
                await call_maybe_async(unit.start)
            self._started.append(unit)
        for group in self._groups:
            await group.start()
        self._workers.extend(self._registry.workers())
        if self._workers:
            task = asyncio.create_task(self._run_workers(), name=f"{self.name}-workers")
            self._workers_task = task
            await self._wait_ready(task)

    async def _run_workers(self) -> None:
        node = self._health.scope("workers")
        node.ok(f"{len(self._workers)} running")
        try:
            await run_all_workers(*self._workers)
        except asyncio.CancelledError:
            node.stopped("stopped")
            raise
        except Exception as error:
            node.stopped("a worker exited", error)
            if self._state is AppState.STOPPING:
                raise
            self.shutdown(error)

    async def _wait_ready(self, workers: asyncio.Task[None]) -> None:
        if all(r.is_set for r in self._readies):
            return
        all_ready = asyncio.create_task(self._all_ready(), name=f"{self.name}-readiness")
        try:
            await asyncio.wait({all_ready, workers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_ready.cancel()
            await asyncio.wait([all_ready])
        if not all(r.is_set for r in self._readies):
            raise self._error or StateError("the workers ended before they were all ready")

    async def _all_ready(self) -> None:
        for readiness in self._readies:
            await readiness.wait()

    # -- stop -----------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop everything, in reverse start order, within ``stop_timeout``.

        Calling it again (or concurrently) waits for the first call to finish.

        Raises:
            ExceptionGroup: What went wrong while stopping — hook errors and a
                :class:`~taskmill.StopTimeout` naming what did not stop in time.
        """
        if self._state in (AppState.STOPPING, AppState.STOPPED):
            await self._stopped.wait()
            return
        if self._state is AppState.CREATED:
            self._state = AppState.STOPPED
            self._stopped.set()
            return
        await self._stop_all()

    def stop_now(self) -> None:
        """End a stop in progress at once: whatever has not stopped is cancelled."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time()
        if self._step is not None:
            self._step.reschedule(loop.time())

    async def _stop_all(self) -> None:
        self._state = AppState.STOPPING
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.stop_timeout
        errors: list[Exception] = []
        pending: list[str] = []
        try:
            if self._workers_task is not None:
                await self._stop_step("workers", self._stop_workers, errors, pending)
            for group in reversed(self._groups):
                name = f"job group {group.name}"
                stop = self._group_stopper(group)
                await self._stop_step(name, stop, errors, pending, backstop=_BACKSTOP)
            for unit in reversed(self._started):
                if unit.stop is not None:
                    await self._stop_step(unit.name, unit.stop, errors, pending)
        finally:
            self._state = AppState.STOPPED
            self._health.stopped("stopped")
            self._stopped.set()
        if pending:
            errors.append(StopTimeout(self.stop_timeout, pending))
        if errors:
            raise ExceptionGroup(f"app {self.name!r} did not stop cleanly", errors)

    async def _stop_workers(self) -> None:
        task = self._workers_task
        assert task is not None
        task.cancel()
        await asyncio.wait([task])
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error

    def _group_stopper(self, group: JobGroup) -> Hook:
        """Stop ``group`` with the time left, so it names its own stuck jobs."""

        async def stop() -> None:
            assert self._deadline is not None
            left = max(0.0, self._deadline - asyncio.get_running_loop().time())
            await group.stop(left)

        return stop

    async def _stop_step(
        self,
        name: str,
        step: Hook,
        errors: list[Exception],
        pending: list[str],
        *,
        backstop: float = 0.0,
    ) -> None:
        assert self._deadline is not None
        timeout = self._step = asyncio.timeout_at(self._deadline + backstop)
        try:
            async with timeout:
                await call_maybe_async(step)
        except StopTimeout as error:
            pending.extend(f"{name}/{job}" for job in error.pending)
        except TimeoutError as error:
            if not timeout.expired():  # the step's own TimeoutError, not our deadline
                logger.exception("app %s: stopping %s failed", self.name, name)
                errors.append(error)
            else:
                pending.append(name)
        except Exception as error:
            logger.exception("app %s: stopping %s failed", self.name, name)
            errors.append(error)
        finally:
            self._step = None

    # -- run ------------------------------------------------------------------------
    async def run(self, *, handle_signals: bool = True) -> None:
        """Start (unless already running), wait for a shutdown request or a signal, then stop.

        Args:
            handle_signals: Install SIGINT/SIGTERM handlers while running (only in
                the main thread): the first signal stops gracefully within
                ``stop_timeout``, a second one stops at once.

        Raises:
            BaseException: The error passed to :meth:`shutdown` (a fatal job's, or the
                ``ExceptionGroup`` of workers that exited); it wins over stop errors,
                which are then only logged.
            ExceptionGroup: Stop errors, when the shutdown carried no error.
            asyncio.CancelledError: The caller was cancelled (after a graceful stop).
        """
        if self._state is not AppState.RUNNING:  # run() may follow an explicit start()
            await self.start()
        with signal_handlers(self.handle_signal, enabled=handle_signals):
            try:
                await self._shutdown.wait()
            finally:
                await self._stop_for_run()
        if self._error is not None:
            raise self._error

    async def _stop_for_run(self) -> None:
        try:
            await self.stop()
        except ExceptionGroup:
            if self._error is None:
                raise
            logger.exception("app %s: errors while stopping after a fatal error", self.name)

    def handle_signal(self, signum: int) -> None:
        """React to SIGINT/SIGTERM: the first stops gracefully, the second at once."""
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.warning(
                "app %s: %s received; stopping (up to %gs)", self.name, name, self.stop_timeout
            )
            self.shutdown()
            return
        logger.warning("app %s: %s received again; stopping now", self.name, name)
        self.shutdown()
        self.stop_now()

    # -- observability ----------------------------------------------------------------
    def statistics(self) -> AppStatistics:
        """Return a snapshot of the app."""
        return AppStatistics(
            name=self.name,
            state=self._state,
            components=len(self._units),
            job_groups=tuple(group.statistics() for group in self._groups),
            workers=len(self._workers),
            ready=sum(r.is_set for r in self._readies),
            awaiting_ready=len(self._readies),
            shutdown_requested=self._shutdown.is_set(),
            error=None if self._error is None else repr(self._error),
            signals=self._signals,
        )

    def __repr__(self) -> str:
        return (
            f"<App {self.name!r} state={self._state} components={len(self._units)} "
            f"job_groups={len(self._groups)} workers={len(self._workers)}>"
        )
