"""``taskmill worker MODULE:ATTR``: run a durable worker over a SQLite or a Redis store.

Kept apart from the click commands so it is testable without a terminal: the
command only parses options and calls :func:`load_target` and :func:`serve`.

``ATTR`` may be a :class:`~taskmill.App`: the durable worker then runs as one of
the app's workers, next to its job groups and workers, under the app's signal
handling. Its registry is ``--tasks MODULE:ATTR`` or else the app module's
``registry`` (or ``tasks``) attribute.

With ``--metrics-port`` the worker reports to a :class:`taskmill.prometheus.TaskMetrics`
on prometheus-client's global registry (so the app's own metrics and a
``PrometheusMetrics`` given to the app are exported too) and serves it on
``--metrics-host`` (loopback by default). With ``--dashboard-port`` it serves the
web dashboard (the ``web`` extra) over the same store on ``--dashboard-host``
(loopback by default; any other address needs ``--dashboard-token``). While a
graceful stop drains, the number of tasks still running is logged every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ._app import App
from ._cli_store import StoreTarget, open_store
from ._errors import ConfigurationError
from ._health_server import HealthServer, Probe, app_probe, worker_probe
from ._readiness import signal_handlers
from ._registry import TaskRegistry
from ._worker_runtime import DurableWorker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from .prometheus import TaskMetrics

__all__ = [
    "Target",
    "WorkerOptions",
    "add_to_app",
    "dashboard_running",
    "load_registry",
    "load_target",
    "serve",
]

logger = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """What ``taskmill worker`` was asked for."""

    db: str = "taskmill.db"
    redis: str | None = None
    queues: Sequence[str] = ("default",)
    concurrency: int = 10
    grace: float = 30.0
    lease: float = 30.0
    health_port: int | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    dashboard_port: int | None = None
    dashboard_host: str = "127.0.0.1"
    dashboard_token: str | None = None

    @property
    def store(self) -> StoreTarget:
        """The store to open: ``redis`` if set, else the SQLite file ``db``."""
        if self.redis is not None:
            return StoreTarget(redis=self.redis)
        return StoreTarget(db=Path(self.db))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What ``MODULE:ATTR`` named: the registry to run, and the app to run it in (if any)."""

    registry: TaskRegistry
    app: App | None = None


def load_registry(target: str) -> TaskRegistry:
    """Import ``MODULE:ATTR`` (the current directory is importable) and return its registry.

    ``ATTR`` is a :class:`~taskmill.TaskRegistry`, or an object whose ``registry`` or
    ``tasks`` attribute is one.

    Raises:
        ConfigurationError: With a one-line reason for anything else.
    """
    found = _resolve(target)
    registry = _registry_of(found)
    if registry is None:
        raise ConfigurationError(
            f"{target} is a {type(found).__name__}, not a taskmill.TaskRegistry"
        )
    return registry


def load_target(target: str, tasks: str | None = None) -> Target:
    """Resolve ``MODULE:ATTR`` (and ``--tasks MODULE:ATTR``) to what the worker runs.

    ``ATTR`` is a registry (or has one, see :func:`load_registry`) or a
    :class:`~taskmill.App`. For an app the registry is ``tasks`` if given, else the
    ``registry`` or ``tasks`` attribute of the app's module.

    Raises:
        ConfigurationError: With a one-line reason when nothing fits.
    """
    found = _resolve(target)
    if not isinstance(found, App):
        return Target(registry=load_registry(tasks or target))
    if tasks is not None:
        return Target(registry=load_registry(tasks), app=found)
    module = sys.modules[target.partition(":")[0]]
    registry = _registry_of(module)
    if registry is None:
        raise ConfigurationError(
            f"{target} is an App but its module has no TaskRegistry named 'registry' or "
            "'tasks'; pass --tasks MODULE:ATTR"
        )
    return Target(registry=registry, app=found)


def _registry_of(found: object) -> TaskRegistry | None:
    for candidate in (found, getattr(found, "registry", None), getattr(found, "tasks", None)):
        if isinstance(candidate, TaskRegistry):
            return candidate
    return None


def _resolve(target: str) -> object:
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name or not attr:
        raise ConfigurationError(
            f"expected MODULE:ATTR (e.g. myapp.tasks:registry), got {target!r}"
        )
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found: object = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
    return found


async def serve(registry: TaskRegistry, options: WorkerOptions, app: App | None = None) -> int:
    """Open the store and run a worker until SIGTERM/SIGINT (a second one: at once).

    With ``app``, the worker is added to it (:func:`add_to_app`) and the app runs.

    Returns:
        The exit code: 0 after a clean stop, 1 when the app stopped with an error
        (a fatal job's, a failed worker's, or errors while stopping).

    Raises:
        UserError: The store cannot be opened (missing extra, bad URL, unreachable).
        ConfigurationError: The metrics endpoint or the dashboard cannot start.
    """
    target = options.store
    async with (
        open_store(target, create=True, lease=options.lease, quick=False) as store,
        _metrics_endpoint(options, store) as metrics,
        _dashboard_endpoint(options, store, app),
    ):
        grace = options.grace if app is None else min(options.grace, 0.9 * app.stop_timeout)
        worker = DurableWorker(
            store,
            registry,
            queues=options.queues,
            concurrency=options.concurrency,
            lease=options.lease,
            grace=grace,
            observer=metrics,
        )
        logger.info("%r on %s", worker, target)
        if app is None:
            await _serve_alone(worker, options.health_port)
            return 0
        try:
            return await _serve_app(app, worker, options.health_port)
        finally:
            await worker.stop(graceful=False)  # only waits, unless the app gave up on it


@contextlib.asynccontextmanager
async def _metrics_endpoint(
    options: WorkerOptions, store: Any
) -> AsyncIterator[TaskMetrics | None]:
    """Serve ``/metrics`` while the worker runs (nothing without ``--metrics-port``)."""
    if options.metrics_port is None:
        yield None
        return
    try:
        from taskmill.prometheus import TaskMetrics  # noqa: PLC0415 - optional extra
    except ImportError:
        raise ConfigurationError(
            "--metrics-port needs the 'prometheus' extra: pip install 'taskmill[prometheus]'"
        ) from None
    try:
        metrics = TaskMetrics()
    except ValueError as exc:  # prometheus-client: names already in the global registry
        raise ConfigurationError(
            f"--metrics-port: the global Prometheus registry already has these metrics ({exc}); "
            "drop the TaskMetrics() your module creates, or serve it yourself"
        ) from None
    try:
        metrics.watch_store(store)
        with metrics.serve(options.metrics_port, options.metrics_host) as server:
            logger.info("metrics on http://%s:%d/metrics", server.host, server.port)
            yield metrics
    finally:
        metrics.unregister()


@contextlib.asynccontextmanager
async def _dashboard_endpoint(
    options: WorkerOptions, store: Any, app: App | None
) -> AsyncIterator[None]:
    """Serve the web dashboard over ``store`` while the worker runs (with ``--dashboard-port``).

    It starts listening before the worker claims anything, so a port in use or a
    missing token is an error at start; it stops after the worker stopped (it shows
    the drain).
    """
    if options.dashboard_port is None:
        yield
        return
    try:
        from taskmill.web import create_dashboard  # noqa: PLC0415 - optional extra
    except ImportError:
        raise ConfigurationError(
            "--dashboard-port needs the 'web' extra: pip install 'taskmill[web]'"
        ) from None
    dashboard = create_dashboard(store, token=options.dashboard_token, app=app)
    host, port = options.dashboard_host, options.dashboard_port
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(dashboard_running(dashboard, host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"--dashboard-port: cannot listen on {host}:{port}: {exc}"
            ) from None
        logger.info("dashboard on %s", url)
        yield


@contextlib.asynccontextmanager
async def dashboard_running(dashboard: Any, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``dashboard`` (from ``taskmill.web.create_dashboard``) in the background.

    Yields its URL once the socket listens; stops the server when the block ends.
    Signals are left to the caller.

    Raises:
        OSError: The address cannot be bound.
        ConfigurationError: Off loopback without a token.
    """
    from taskmill.web import serve_dashboard  # noqa: PLC0415 - optional extra

    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve_dashboard(
            dashboard, host=host, port=port, handle_signals=False, on_listen=listening.set_result
        )
    )
    try:
        either: list[asyncio.Future[Any]] = [listening, server]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():  # the server ended before it listened: raise why
            server.result()
            raise ConfigurationError("the dashboard stopped before it listened")
        yield listening.result()
    finally:
        await _stop_dashboard(server, report=listening.done())


async def _stop_dashboard(server: asyncio.Future[None], *, report: bool) -> None:
    """Stop the dashboard server; log an error it ended with (when ``report``)."""
    if server.done():
        if report and not server.cancelled() and server.exception() is not None:
            logger.error("the dashboard had stopped", exc_info=server.exception())
        return
    server.cancel()
    try:
        await server
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        logger.exception("the dashboard failed while stopping")


@contextlib.contextmanager
def drain_progress(worker: DurableWorker, *, every: float = 1.0) -> Iterator[None]:
    """Log how many tasks are still running, every ``every`` seconds, inside the block."""

    async def report() -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        while (running := worker.statistics().running) > 0:
            logger.info(
                "draining: %d task(s) still running, %.0fs since the stop",
                running,
                loop.time() - began,
            )
            await asyncio.sleep(every)

    task = asyncio.ensure_future(report())
    try:
        yield
    finally:
        task.cancel()


def _with_health(probe: Probe, port: int | None) -> contextlib.AbstractAsyncContextManager[Any]:
    if port is None:
        return contextlib.nullcontext()
    return HealthServer(probe, port=port)


async def _serve_alone(worker: DurableWorker, health_port: int | None) -> None:
    stopping: set[asyncio.Task[None]] = set()

    async def stop(graceful: bool) -> None:  # noqa: FBT001 - a private helper
        if not graceful:
            await worker.stop(graceful=False)
            return
        with drain_progress(worker):
            await worker.stop(graceful=True)

    def on_signal(signum: int) -> None:
        graceful = not stopping
        logger.warning("signal %d: stopping %s", signum, "gracefully" if graceful else "now")
        stopping.add(asyncio.create_task(stop(graceful)))

    async with _with_health(worker_probe(worker), health_port):
        with signal_handlers(on_signal, enabled=True):
            await worker.run()
    for task in stopping:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _serve_app(app: App, worker: DurableWorker, health_port: int | None) -> int:
    add_to_app(app, worker)
    if health_port is not None:
        app.component(HealthServer(app_probe(app), port=health_port), name="health-endpoint")
    try:
        await app.run()
    except Exception:
        logger.exception("app %s stopped because of an error", app.name)
        return 1
    return 0


def add_to_app(app: App, worker: DurableWorker, *, name: str = "durable-worker") -> None:
    """Run ``worker`` as one of ``app``'s workers, stopped gracefully with the app.

    The app stops its workers by cancelling them; this wrapper turns that first
    cancellation into ``worker.stop(graceful=True)`` (grace, then release) and a
    second one into an immediate stop. It reports under the ``name`` health scope.
    """
    scope = app.health.scope(name)

    async def run_worker() -> None:
        run = asyncio.ensure_future(worker.run())
        scope.ok(f"running on {','.join(worker.statistics().queues)}")
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            await _stop_worker(worker, run)
            raise
        finally:
            scope.stopped("stopped")

    app.add_worker(run_worker, name=name)


async def _stop_worker(worker: DurableWorker, run: asyncio.Future[None]) -> None:
    try:
        with drain_progress(worker):
            await worker.stop(graceful=True)
    except asyncio.CancelledError:
        await worker.stop(graceful=False)
        raise
    finally:
        await asyncio.wait([run])
