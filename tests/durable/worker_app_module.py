"""An App with a timer job and a task registry (``taskmill worker worker_app_module:app``)."""

from __future__ import annotations

import os

import taskmill as tm

registry = tm.TaskRegistry()
app = tm.App("worker-app", stop_timeout=5.0)
ticks: list[int] = []


@registry.task(name="double")
async def double(x: int) -> int:
    return 2 * x


async def tick() -> None:
    ticks.append(len(ticks))


async def fatal() -> None:
    raise RuntimeError("fatal job error")


app.job_group("jobs").add(tm.timer("tick", tick, interval=0.05))
if os.environ.get("WORKER_APP_FATAL"):
    app.job_group("fatal").add(tm.one_shot("fatal", fatal, shutdown_on_failure=True))
