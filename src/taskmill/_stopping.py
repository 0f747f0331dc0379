"""Starting and stopping the in-process engine, and waiting for it to go quiet.

* ``start()`` spawns ``concurrency`` workers and the scheduler; it is a no-op
  when running, and a stopped manager cannot be restarted (every task it had
  accepted was finished by the stop, so there is nothing to resume).
* ``stop()`` closes intake at once and abandons scheduled and retry-waiting tasks.
  Graceful: queued and running tasks drain (at most ``timeout`` seconds, then as
  immediate). Immediate: queued tasks are abandoned and running ones cancelled;
  they get one second to unwind, after which a task still ignoring its
  cancellation is recorded cancelled anyway (its worker is left behind, logged).
  Every accepted task is finished when ``stop()`` returns, and the
  :class:`~taskmill.StopReport` lists what finished, what was cancelled and
  what was abandoned. If ``stop()`` itself is cancelled it still finishes every
  task (without waiting) before the cancellation propagates.
"""

# The engine and TaskHandle are friends: the handle is the engine's record.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from typing import Final

from . import _clock
from ._engine import Engine
from ._errors import ConfigurationError, StateError
from ._handle import TaskStatus
from ._records import (
    CANCELLED,
    NEW,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    STARTED,
    STOPPED,
    STOPPING,
)
from ._reports import StopReport

__all__ = ["StoppableEngine", "seconds_or_none"]

logger = logging.getLogger(__name__)

_CANCEL_GRACE: Final = 1.0  # seconds cancelled tasks get to unwind before being force-finished


def seconds_or_none(value: object) -> bool:
    """Whether ``value`` is None or a number of seconds >= 0 (inf allowed)."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 0


class StoppableEngine(Engine):
    """The engine plus its lifecycle: start, stop (with a report) and join."""

    __slots__ = ("_report", "_stopped")

    def _init_lifecycle(self) -> None:
        self._report: StopReport | None = None
        self._stopped: asyncio.Future[None] | None = None

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._state

    @property
    def running(self) -> bool:
        """Whether the manager accepts tasks."""
        return self._state is STARTED

    async def start(self) -> None:
        """Start the workers and the scheduler (a no-op if already running).

        Raises:
            StateError: The manager was stopped; managers are not restartable.
        """
        if self._state is STARTED:
            return
        if self._state is not NEW:
            raise StateError("a stopped TaskManager cannot be restarted; create a new one")
        loop = self._loop = asyncio.get_running_loop()
        self._offset = _clock.wall_time() - loop.time()
        self._prefix = secrets.token_hex(4) + "-"
        if self._bucket_limit is not None:
            self._bucket = self._bucket_limit.bucket(loop.time())
        self._state = STARTED
        for _ in range(self._concurrency):
            self._spawn_worker()
        self._sleeper = loop.create_task(self._sleep_main(), name="taskmill-scheduler")

    async def stop(
        self,
        *,
        graceful: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109  # reported in the StopReport
    ) -> StopReport:
        """Stop the manager; every task it accepted is finished when this returns.

        Intake closes at once (``submit`` raises :class:`~taskmill.NotRunning`).
        Scheduled and retry-waiting tasks are abandoned. Graceful: queued and
        running tasks are drained (for at most ``timeout`` seconds, then as
        immediate). Immediate: queued tasks are abandoned and running ones cancelled
        (they get one second to unwind, then are recorded cancelled regardless).
        Idempotent: later calls return the first report.

        Args:
            graceful: Drain (True) or cancel (False).
            timeout: Upper bound for the graceful drain, in seconds.

        Returns:
            What finished, what was cancelled and what was abandoned.
        """
        if not seconds_or_none(timeout):
            raise ConfigurationError(f"timeout must be None or a number >= 0, got {timeout!r}")
        if self._report is not None:
            return self._report
        if self._state is NEW:
            self._state = STOPPED
            self._report = StopReport(graceful=graceful)
            return self._report
        if self._stopped is not None:  # another stop() is under way: share its outcome
            await asyncio.shield(self._stopped)
            return self._final_report()
        return await self._stop(graceful=graceful, timeout=timeout)

    def _final_report(self) -> StopReport:
        report = self._report
        assert report is not None
        return report

    async def _stop(self, *, graceful: bool, timeout: float | None) -> StopReport:  # noqa: ASYNC109
        loop = self._loop
        assert loop is not None
        self._stopped = loop.create_future()
        self._state = STOPPING
        self._report_finished = []
        self._refresh_flags()
        self._wake_all(self._space)
        abandoned = self._abandon((SCHEDULED, RETRYING))
        cancelled: list[str] = []
        timed_out = False
        try:
            if graceful:
                timed_out = not await self._until_quiet(timeout)
            if not graceful or timed_out:
                abandoned += self._abandon((QUEUED,))
                cancelled = self._cancel_running()
                if not await self._until_quiet(_CANCEL_GRACE):
                    self._force_finish()
        finally:  # also when stop() itself is cancelled: nothing may stay pending
            abandoned += self._abandon((QUEUED, SCHEDULED, RETRYING))
            workers = self._shutdown()
            self._report = self._make_report(
                graceful=graceful, timed_out=timed_out, cancelled=cancelled, abandoned=abandoned
            )
            self._stopped.set_result(None)
        if workers:  # a task that ignores cancellation keeps its worker: don't wait forever
            _, stuck = await asyncio.wait(workers, timeout=_CANCEL_GRACE)
            if stuck:
                logger.warning(
                    "%d task manager workers are stuck in tasks that ignore cancellation",
                    len(stuck),
                )
        return self._final_report()

    def _make_report(
        self, *, graceful: bool, timed_out: bool, cancelled: list[str], abandoned: list[str]
    ) -> StopReport:
        abandoned += [h.id for h in self._report_abandoned]
        skip = set(abandoned) | set(cancelled)
        finished = tuple(h.id for h in self._report_finished or () if h.id not in skip)
        self._report_finished = None
        self._refresh_flags()
        return StopReport(
            graceful=graceful,
            timed_out=timed_out,
            finished=finished,
            cancelled=tuple(cancelled),
            abandoned=tuple(abandoned),
        )

    def _abandon(self, statuses: tuple[TaskStatus, ...]) -> list[str]:
        doomed = [h for h in self._tasks.values() if h._status in statuses]
        for handle in doomed:
            self._cancel_handle(handle)
        return [h.id for h in doomed]

    def _cancel_running(self) -> list[str]:
        running = [h for h in self._tasks.values() if h._status is RUNNING]
        for handle in running:
            self._cancel_handle(handle)
        return [h.id for h in running]

    def _force_finish(self) -> None:
        for handle in [h for h in self._tasks.values() if h._status is RUNNING]:
            logger.warning("task %s ignored cancellation; recorded as cancelled", handle.id)
            self._running -= 1
            self._finish(handle, CANCELLED, None, None)

    def _shutdown(self) -> list[asyncio.Task[None]]:
        self._state = STOPPED
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        if self._sleeper is not None:
            self._sleeper.cancel()
            workers.append(self._sleeper)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for stream in self._streams:
            stream.end()
        self._streams.clear()
        self._refresh_flags()
        self._ready.clear()
        self._timers.clear()
        self._wake_all(self._space)
        self._wake_all(self._idle)
        self._wake_quiet()
        return workers

    @staticmethod
    def _wake_all(futures: Iterable[asyncio.Future[None]]) -> None:
        for future in list(futures):
            if not future.done():
                future.set_result(None)

    async def _until_quiet(self, timeout: float | None) -> bool:  # noqa: ASYNC109  # -> bool
        """Wait until no task is live; False if ``timeout`` expired first."""
        if not self._live_count():
            return True
        loop = self._loop
        assert loop is not None
        future = loop.create_future()
        self._quiet.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        finally:
            if future in self._quiet:
                self._quiet.remove(future)
        return True

    async def join(self) -> None:
        """Wait until every accepted task has finished (scheduled ones included)."""
        while self._live_count():
            await self._until_quiet(None)
