"""``taskmill worker MODULE:ATTR``: run a durable worker over the embedded SQLite store.

Kept apart from the click commands so it is testable without a terminal: the
command only parses options and calls :func:`load_registry` and :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, final

from ._errors import ConfigurationError
from ._readiness import signal_handlers
from ._registry import TaskRegistry
from ._worker_runtime import DurableWorker

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["WorkerOptions", "load_registry", "serve"]

logger = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """What ``taskmill worker`` was asked for."""

    db: str = "taskmill.db"
    queues: Sequence[str] = ("default",)
    concurrency: int = 10
    grace: float = 30.0
    lease: float = 30.0


def load_registry(target: str) -> TaskRegistry:
    """Import ``MODULE:ATTR`` (the current directory is importable) and return its registry.

    ``ATTR`` is a :class:`~taskmill.TaskRegistry`, or an object whose ``registry`` or
    ``tasks`` attribute is one.

    Raises:
        ConfigurationError: With a one-line reason for anything else.
    """
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
    for candidate in (found, getattr(found, "registry", None), getattr(found, "tasks", None)):
        if isinstance(candidate, TaskRegistry):
            return candidate
    raise ConfigurationError(f"{target} is a {type(found).__name__}, not a taskmill.TaskRegistry")


async def serve(registry: TaskRegistry, options: WorkerOptions) -> None:
    """Open the SQLite store and run a worker until SIGTERM/SIGINT (a second one: at once)."""
    from taskmill.sqlite import SqliteStore  # noqa: PLC0415 - optional extra

    async with await SqliteStore.open(options.db, lease=options.lease) as store:
        worker = DurableWorker(
            store,
            registry,
            queues=options.queues,
            concurrency=options.concurrency,
            lease=options.lease,
            grace=options.grace,
        )
        stopping: set[asyncio.Task[None]] = set()

        def on_signal(signum: int) -> None:
            graceful = not stopping
            logger.warning("signal %d: stopping %s", signum, "gracefully" if graceful else "now")
            stopping.add(asyncio.create_task(worker.stop(graceful=graceful)))

        with signal_handlers(on_signal, enabled=True):
            logger.info("%r on %s", worker, options.db)
            await worker.run()
        for task in stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await task
