"""Task metrics on prometheus-client: counters from workers and managers, gauges at scrape time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskmill._errors import ConfigurationError

from ._metrics import DURATION_BUCKETS

if TYPE_CHECKING:
    from taskmill._handle import TaskInfo
    from taskmill._manager import TaskManager
    from taskmill._middleware import CallNext, Middleware

__all__ = ["TaskMetrics"]

logger = logging.getLogger(__name__)

# (queued, waiting for a due time, running) per queue
_Counts = Mapping[str, tuple[int, int, int]]
_RECLAIM_OUTCOMES: Final = ("requeued", "dead_lettered", "cancelled")


def _store_counts(by_queue: Mapping[str, Mapping[str, int]]) -> dict[str, tuple[int, int, int]]:
    return {
        queue: (
            counts.get("queued", 0),
            counts.get("scheduled", 0) + counts.get("retrying", 0),
            counts.get("running", 0),
        )
        for queue, counts in by_queue.items()
    }


@dataclass(slots=True, kw_only=True)
class _Source:
    """Something with per-queue gauges, read on its event loop."""

    loop: asyncio.AbstractEventLoop
    read: Callable[[], Awaitable[_Counts]]
    store: bool
    last: _Counts | None = None
    refreshing: set[asyncio.Task[None]] = field(default_factory=set)

    async def refresh(self) -> _Counts:
        self.last = counts = await self.read()
        return counts


@final
class _Gauges(Collector):
    """Reads every source when scraped; a slow source is skipped after ``timeout`` seconds."""

    def __init__(self, namespace: str, timeout: float) -> None:
        self.sources: dict[str, _Source] = {}
        self.timeout = timeout
        self._ns = namespace

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        ns = self._ns
        return (
            GaugeMetricFamily(
                f"{ns}_queue_depth",
                "Tasks ready to run and not claimed, by queue.",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                f"{ns}_tasks_scheduled",
                "Tasks waiting for a due time (scheduled, or retrying after a backoff), by queue.",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                f"{ns}_tasks_running", "Tasks running (claimed) now, by queue.", labels=["queue"]
            ),
            GaugeMetricFamily(
                f"{ns}_store_up",
                "1 when the store answered the last scrape in time, else 0.",
            ),
        )

    def collect(self) -> Iterable[Metric]:
        depth, scheduled, running, up = self._families()
        seen: set[str] = set()
        for source in list(self.sources.values()):
            counts = self._read(source)
            if source.store:
                up.add_metric([], 0.0 if counts is None else 1.0)
            for queue, (ready, waiting, busy) in (counts or {}).items():
                if queue in seen:  # two sources with one queue name: the first one wins
                    continue
                seen.add(queue)
                depth.add_metric([queue], ready)
                scheduled.add_metric([queue], waiting)
                running.add_metric([queue], busy)
        return (depth, scheduled, running, up)

    def _read(self, source: _Source) -> _Counts | None:
        loop = source.loop
        if loop.is_closed():
            return None
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            # Scraped on the loop's own thread (an ASGI exporter): waiting would block the
            # loop, so answer from the previous read and refresh for the next scrape.
            if not source.refreshing:
                task = loop.create_task(self._refresh_quietly(source))
                source.refreshing.add(task)
                task.add_done_callback(source.refreshing.discard)
            return source.last
        future = asyncio.run_coroutine_threadsafe(source.refresh(), loop)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.warning("metrics scrape: the store did not answer within %.1fs", self.timeout)
        except Exception:
            logger.warning("metrics scrape: reading the store failed", exc_info=True)
        return None

    @staticmethod
    async def _refresh_quietly(source: _Source) -> None:
        try:
            await source.refresh()
        except Exception:
            logger.warning("metrics: reading the store failed", exc_info=True)


class _StatisticsStore(Protocol):
    """What :meth:`TaskMetrics.watch_store` needs: SQLite and Redis stores have it."""

    async def statistics(self) -> Any:
        """Return a snapshot with ``by_queue``."""
        ...


@final
class TaskMetrics:
    """Task metrics exported through prometheus-client.

    Counters come from the code that runs tasks: pass this object as
    ``DurableWorker(observer=...)`` or call :meth:`instrument` on a
    :class:`~taskmill.TaskManager`. Gauges are read when Prometheus scrapes, from
    the store given to :meth:`watch_store` (its ``statistics()``, bounded by
    ``scrape_timeout``) and from instrumented managers.

    Metric names (with the default ``namespace="taskmill"``):

    * ``taskmill_tasks_total{queue,task,status}`` (counter): attempts ended, by how:
      ``succeeded``, ``failed``, ``timed_out``, ``retried``, ``cancelled``, and for
      durable workers also ``released`` (shutdown), ``lost`` (lease lost), ``dead``.
    * ``taskmill_task_duration_seconds{queue,task}`` (histogram): attempt durations.
    * ``taskmill_task_retries_total{queue,task}`` (counter): retries scheduled.
    * ``taskmill_dead_letters_total{cause}`` (counter): tasks dead-lettered by this
      process; cause ``payload`` (undecodable or unknown task) or ``worker_lost``.
    * ``taskmill_lease_reclaims_total{outcome}`` (counter): expired leases taken back
      by this worker's reclaim sweep: ``requeued``, ``dead_lettered``, ``cancelled``.
    * ``taskmill_queue_depth{queue}``, ``taskmill_tasks_scheduled{queue}``,
      ``taskmill_tasks_running{queue}`` (gauges) and ``taskmill_store_up`` (gauge).

    Args:
        registry: Where to register (default: prometheus-client's global ``REGISTRY``).
        namespace: The metric name prefix.
        scrape_timeout: Seconds a scrape waits for the store's statistics.

    Raises:
        ConfigurationError: ``scrape_timeout`` is not a positive number.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "taskmill",
        scrape_timeout: float = 2.0,
    ) -> None:
        timeout: object = scrape_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(
                f"scrape_timeout must be a positive number, got {scrape_timeout!r}"
            )
        registry = REGISTRY if registry is None else registry
        self._tasks = Counter(
            "tasks",
            "Task attempts ended, by queue, task name and status.",
            ["queue", "task", "status"],
            namespace=namespace,
            registry=registry,
        )
        self._duration = Histogram(
            "task_duration_seconds",
            "Duration of task attempts in seconds, by queue and task name.",
            ["queue", "task"],
            namespace=namespace,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self._retries = Counter(
            "task_retries",
            "Retries scheduled after a failed attempt, by queue and task name.",
            ["queue", "task"],
            namespace=namespace,
            registry=registry,
        )
        self._dead = Counter(
            "dead_letters",
            "Tasks dead-lettered by this process, by cause (payload, worker_lost).",
            ["cause"],
            namespace=namespace,
            registry=registry,
        )
        self._reclaims = Counter(
            "lease_reclaims",
            "Expired leases taken back by this process's reclaim sweep, by outcome.",
            ["outcome"],
            namespace=namespace,
            registry=registry,
        )
        self._gauges = _Gauges(namespace, float(scrape_timeout))
        registry.register(self._gauges)
        self._registry = registry
        self._namespace = namespace

    def __repr__(self) -> str:
        return f"TaskMetrics(namespace={self._namespace!r})"

    def unregister(self) -> None:
        """Remove every metric of this object from its registry (e.g. when a worker stops)."""
        for collector in (
            self._tasks,
            self._duration,
            self._retries,
            self._dead,
            self._reclaims,
            self._gauges,
        ):
            self._registry.unregister(collector)

    # -- the durable worker's observer -----------------------------------------------------
    def attempt_finished(self, task: str, queue: str, status: str, seconds: float | None) -> None:
        """Count one ended delivery and observe its duration (the worker calls this)."""
        self._tasks.labels(queue=queue, task=task, status=status).inc()
        if seconds is not None:
            self._duration.labels(queue=queue, task=task).observe(seconds)
        if status == "retried":
            self._retries.labels(queue=queue, task=task).inc()
        elif status == "dead":
            self._dead.labels(cause="payload").inc()

    def leases_reclaimed(self, requeued: int, dead_lettered: int, cancelled: int) -> None:
        """Count what one reclaim sweep took back (the worker calls this)."""
        for outcome, count in zip(
            _RECLAIM_OUTCOMES, (requeued, dead_lettered, cancelled), strict=True
        ):
            if count:
                self._reclaims.labels(outcome=outcome).inc(count)
        if dead_lettered:
            self._dead.labels(cause="worker_lost").inc(dead_lettered)

    # -- gauges ------------------------------------------------------------------------------
    def watch_store(self, store: _StatisticsStore) -> Callable[[], None]:
        """Export the queue gauges of ``store`` (read at scrape time); call on its loop.

        A scrape from another thread (``start_http_server``, :meth:`serve`) waits up
        to ``scrape_timeout`` for ``store.statistics()``; after that the store's
        gauges are left out of that scrape and ``taskmill_store_up`` is 0. A scrape
        on the loop's own thread (an ASGI exporter) cannot wait: it answers from the
        previous read and starts the next one.

        Returns:
            A function that stops exporting the store's gauges.

        Raises:
            ConfigurationError: This object already watches a store.
        """
        if "store" in self._gauges.sources:
            raise ConfigurationError("TaskMetrics watches one store; use one per store")

        async def read() -> _Counts:
            return _store_counts((await store.statistics()).by_queue)

        return self._add_source("store", read, store=True)

    def instrument(self, manager: TaskManager, *, queue: str = "manager") -> Callable[[], None]:
        """Count and time the attempts of an in-process ``manager``; export its gauges.

        Adds a middleware (attempt durations) and ``"retrying"`` / ``"finished"``
        event callbacks (counts). The manager has no queues: its metrics carry the
        label ``queue=<queue>``. Call on the manager's event loop.

        Returns:
            A function that undoes this (the middleware stays, doing nothing).

        Raises:
            ConfigurationError: A manager with this ``queue`` label is instrumented.
        """
        key = f"manager:{queue}"
        if key in self._gauges.sources:
            raise ConfigurationError(f"a manager is already instrumented as queue {queue!r}")
        active = True
        loop = asyncio.get_running_loop()

        async def timing(task: TaskInfo, call_next: CallNext) -> Any:
            started = loop.time()
            try:
                return await call_next()
            finally:
                if active:
                    self._duration.labels(queue=queue, task=task.name).observe(
                        loop.time() - started
                    )

        def retrying(task: TaskInfo) -> None:
            self._tasks.labels(queue=queue, task=task.name, status="retried").inc()
            self._retries.labels(queue=queue, task=task.name).inc()

        def finished(task: TaskInfo) -> None:
            self._tasks.labels(queue=queue, task=task.name, status=str(task.status)).inc()

        async def read() -> _Counts:
            stats = manager.statistics()
            return {queue: (stats.queued, stats.scheduled + stats.retrying, stats.running)}

        middleware: Middleware = timing
        manager.use(middleware)
        unsubscribe = (manager.on("retrying", retrying), manager.on("finished", finished))
        remove_source = self._add_source(key, read, store=False)

        def undo() -> None:
            nonlocal active
            active = False
            for off in unsubscribe:
                off()
            remove_source()

        return undo

    async def refresh(self) -> None:
        """Read every gauge source now (for scrapes on the loop's thread, e.g. in tests)."""
        for source in list(self._gauges.sources.values()):
            await source.refresh()

    def _add_source(
        self, key: str, read: Callable[[], Awaitable[_Counts]], *, store: bool
    ) -> Callable[[], None]:
        source = _Source(loop=asyncio.get_running_loop(), read=read, store=store)
        self._gauges.sources[key] = source

        def remove() -> None:
            if self._gauges.sources.get(key) is source:
                del self._gauges.sources[key]

        return remove

    # -- serving -----------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve this object's registry over HTTP (``GET /metrics``) on a daemon thread.

        Args:
            port: The TCP port (0: a free one, see :attr:`MetricsServer.port`).
            host: The address to bind (loopback by default).

        Raises:
            ConfigurationError: The address cannot be bound.
        """
        return MetricsServer.start(self._registry, port=port, host=host)


@final
class MetricsServer:
    """A running ``/metrics`` endpoint (prometheus-client's WSGI server on a thread)."""

    def __init__(self, server: Any, thread: Any, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = int(server.server_address[1])

    @classmethod
    def start(
        cls, registry: CollectorRegistry, *, port: int, host: str = "127.0.0.1"
    ) -> MetricsServer:
        """Start serving ``registry`` on ``host:port``.

        Raises:
            ConfigurationError: The address cannot be bound.
        """
        from prometheus_client import start_http_server  # noqa: PLC0415 - only when serving

        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        return cls(server, thread, host)

    def __repr__(self) -> str:
        return f"<MetricsServer http://{self.host}:{self.port}/metrics>"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
