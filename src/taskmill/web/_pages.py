"""The dashboard's pages (GET only; nothing here changes the store)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from taskmill import _clock
from taskmill._backend import HISTORY_LIMIT, HISTORY_TRACEBACK, LIVE_STATUSES, TaskRecord
from taskmill._errors import ConfigurationError

from . import _render
from ._context import STATUSES, dashboard_of, render
from ._monitor import TERMINAL
from ._store import InspectableStore, StoreStats

__all__ = [
    "charts",
    "dead",
    "health",
    "overview",
    "purge_confirm",
    "scheduled",
    "task",
    "tasks",
    "workers",
]

PER_PAGE: Final = 50
SCAN_LIMIT: Final = 5000
_CHUNK: Final = 500
_WAITING: Final = ("queued", "scheduled", "retrying")
NOTICES: Final = {
    "requeued": "Requeued {id}: it is queued again, due now.",
    "not_dead": "{id} is not a dead letter (any more): nothing requeued.",
    "purged": "Purged {count} dead letter(s).",
    "cancelled": "Cancel of {id}: {outcome}.",
    "login": "Logged in.",
}


def notice(request: Request) -> str | None:
    """The message a POST redirected here with (from a fixed set; values escaped later)."""
    code = request.query_params.get("notice", "")
    template = NOTICES.get(code)
    if template is None:
        return None
    params = request.query_params
    return template.format(
        id=params.get("id", ""), count=params.get("count", "0"), outcome=params.get("outcome", "")
    )


def _page_number(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        raise HTTPException(400, "page must be a whole number") from None


# --------------------------------------------------------------------------- overview


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue on the overview."""

    name: str
    waiting: int
    running: int
    retrying: int
    scheduled: int
    dead: int
    finished: int
    per_minute: float | None


def queue_rows(stats: StoreStats, rates: Mapping[str, float]) -> list[QueueRow]:
    """The overview's queue table: depth (queued), running, and finished per minute."""
    rows = []
    for name, counts in sorted(stats.by_queue.items()):
        rows.append(
            QueueRow(
                name=name,
                waiting=counts.get("queued", 0),
                running=counts.get("running", 0),
                retrying=counts.get("retrying", 0),
                scheduled=counts.get("scheduled", 0),
                dead=counts.get("dead", 0),
                finished=sum(counts.get(status, 0) for status in TERMINAL if status != "dead"),
                per_minute=rates.get(name),
            )
        )
    return rows


async def overview(request: Request) -> Response:
    """Queues, counts by status, running tasks and the live counters."""
    dashboard = dashboard_of(request)
    dashboard.monitor.ensure_started()
    stats = await dashboard.store.statistics()
    running = await dashboard.store.list(status="running", limit=100)
    rows = queue_rows(stats, dashboard.monitor.queue_rates())
    return render(
        request,
        "overview.html",
        stats=stats,
        queues=rows,
        running=running,
        now=_clock.wall_time(),
        notice=notice(request),
    )


# --------------------------------------------------------------------------- tasks


def _choice(request: Request, name: str, allowed: Sequence[str] | None = None) -> str | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    if allowed is not None and value not in allowed:
        raise HTTPException(400, f"{name} must be one of {', '.join(allowed)}")
    return value


def _count(stats: StoreStats, status: str | None, queue: str | None) -> int:
    if queue is not None:
        counts = stats.by_queue.get(queue, {})
        return counts.get(status, 0) if status is not None else sum(counts.values())
    return stats.by_status.get(status, 0) if status is not None else stats.total


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """One page of the task list."""

    records: list[TaskRecord]
    more: bool
    scanned: int
    capped: bool


class _Chunks:
    """Reads a filtered listing newest first (by the store's order), a chunk at a time."""

    def __init__(
        self, store: InspectableStore, total: int, status: str | None, queue: str | None
    ) -> None:
        self.store, self.end, self.status, self.queue = store, total, status, queue

    async def next(self, size: int) -> builtins.list[TaskRecord]:
        if self.end <= 0:
            return []
        start = max(0, self.end - size)
        chunk = await self.store.list(
            status=self.status, queue=self.queue, limit=self.end - start, offset=start
        )
        self.end = start
        return chunk[::-1]


def _filtered(record: TaskRecord, status: str | None, queue: str | None, name: str | None) -> bool:
    return (
        (status is None or record.status == status)
        and (queue is None or record.queue == queue)
        and (name is None or record.name == name)
    )


def _matches(record: TaskRecord, name: str | None, search: str | None) -> bool:
    if name is not None and record.name != name:
        return False
    if search is None:
        return True
    needle = search.lower()
    return needle in record.name.lower() or needle in record.task_id.lower()


async def find_tasks(
    store: InspectableStore,
    stats: StoreStats,
    *,
    status: str | None,
    queue: str | None,
    name: str | None,
    search: str | None,
    page: int,
) -> Found:
    """One page of tasks newest first; ``name`` and ``search`` scan at most SCAN_LIMIT."""
    chunks = _Chunks(store, _count(stats, status, queue), status, queue)
    if name is None and search is None:
        chunks.end -= page * PER_PAGE
        records = await chunks.next(PER_PAGE)
        return Found(records=records, more=chunks.end > 0, scanned=len(records), capped=False)
    wanted = (page + 1) * PER_PAGE + 1
    matched: builtins.list[TaskRecord] = []
    if search is not None:
        exact = await store.get(search)
        if exact is not None and _filtered(exact, status, queue, name):
            matched.append(exact)
    scanned = 0
    while len(matched) < wanted and scanned < SCAN_LIMIT:
        chunk = await chunks.next(_CHUNK)
        if not chunk:
            break
        scanned += len(chunk)
        seen = {record.task_id for record in matched}
        matched += [r for r in chunk if _matches(r, name, search) and r.task_id not in seen]
    records = matched[page * PER_PAGE : (page + 1) * PER_PAGE]
    capped = scanned >= SCAN_LIMIT and chunks.end > 0
    return Found(records=records, more=len(matched) >= wanted, scanned=scanned, capped=capped)


async def tasks(request: Request) -> Response:
    """Tasks newest first, filtered by status, queue and name, with a search box."""
    dashboard = dashboard_of(request)
    status = _choice(request, "status", STATUSES)
    queue = _choice(request, "queue")
    name = _choice(request, "name")
    search = _choice(request, "q")
    page = _page_number(request)
    stats = await dashboard.store.statistics()
    try:
        found = await find_tasks(
            dashboard.store,
            stats,
            status=status,
            queue=queue,
            name=name,
            search=search,
            page=page,
        )
    except ConfigurationError as exc:
        raise HTTPException(400, str(exc)) from None
    filters = {"status": status, "queue": queue, "name": name, "q": search}
    return render(
        request,
        "tasks.html",
        found=found,
        filters=filters,
        queues=sorted(stats.by_queue),
        page_number=page,
        scan_limit=SCAN_LIMIT,
    )


async def task(request: Request) -> Response:
    """One task: arguments, options, result, errors of every failed attempt, timestamps."""
    dashboard = dashboard_of(request)
    task_id = request.path_params["task_id"]
    record = await dashboard.store.get(task_id)
    if record is None:
        raise HTTPException(404, f"no task with id {task_id!r} (unknown, purged or expired)")
    result, result_problem = _render.decode_result(dashboard.codec, record)
    return render(
        request,
        "task.html",
        record=record,
        payload=_render.decode_payload(dashboard.codec, record),
        result=result,
        result_problem=result_problem,
        live=record.status in LIVE_STATUSES,
        history_limit=HISTORY_LIMIT,
        history_traceback=HISTORY_TRACEBACK,
        notice=notice(request),
    )


# --------------------------------------------------------------------------- scheduled


async def _scan(
    store: InspectableStore, status: Sequence[str], limit: int
) -> builtins.list[TaskRecord]:
    out: builtins.list[TaskRecord] = []
    while len(out) < limit:
        chunk = await store.list(
            status=status, limit=min(_CHUNK, limit - len(out)), offset=len(out)
        )
        out += chunk
        if len(chunk) < _CHUNK:
            break
    return out


async def scheduled(request: Request) -> Response:
    """Tasks due in the future (scheduled, delayed or waiting to retry), soonest first."""
    dashboard = dashboard_of(request)
    now = _clock.wall_time()
    scanned = await _scan(dashboard.store, _WAITING, SCAN_LIMIT)
    future = sorted((r for r in scanned if r.run_at > now), key=lambda r: r.run_at)
    periodic = []
    if dashboard.app is not None:
        for group in dashboard.app.statistics().job_groups:
            periodic += [(group.name, job) for job in group.jobs if job.kind == "timer"]
    return render(
        request,
        "scheduled.html",
        records=future[:200],
        total=len(future),
        scanned=len(scanned),
        capped=len(scanned) >= SCAN_LIMIT,
        periodic=periodic,
        has_app=dashboard.app is not None,
    )


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker as seen through the tasks it holds."""

    name: str
    tasks: list[TaskRecord]
    queues: list[str]
    oldest: float | None
    newest: float | None


def worker_rows(running: Sequence[TaskRecord]) -> list[WorkerRow]:
    """Group running tasks by their ``worker`` field."""
    by_worker: dict[str, list[TaskRecord]] = {}
    for record in running:
        by_worker.setdefault(record.worker or "(unknown)", []).append(record)
    rows = []
    for name, held in sorted(by_worker.items()):
        starts = [r.started_at for r in held if r.started_at is not None]
        rows.append(
            WorkerRow(
                name=name,
                tasks=held,
                queues=sorted({r.queue for r in held}),
                oldest=min(starts, default=None),
                newest=max(starts, default=None),
            )
        )
    return rows


async def workers(request: Request) -> Response:
    """Workers derived from the running tasks they hold (claims = leases)."""
    dashboard = dashboard_of(request)
    stats = await dashboard.store.statistics()
    running = await _scan(dashboard.store, ("running",), 2000)
    return render(
        request,
        "workers.html",
        rows=worker_rows(running),
        stats=stats,
        now=_clock.wall_time(),
    )


# --------------------------------------------------------------------------- health


async def health(request: Request) -> Response:
    """The health tree, when the dashboard was given one."""
    dashboard = dashboard_of(request)
    tree = dashboard.health
    if tree is None and dashboard.app is not None:
        tree = dashboard.app.health
    return render(request, "health.html", tree=None if tree is None else tree.snapshot())


# --------------------------------------------------------------------------- dead letters


async def dead(request: Request) -> Response:
    """Dead letters with requeue and purge."""
    dashboard = dashboard_of(request)
    page = _page_number(request)
    stats = await dashboard.store.statistics()
    records = await dashboard.store.dead_letters(limit=PER_PAGE + 1, offset=page * PER_PAGE)
    return render(
        request,
        "dead.html",
        records=records[:PER_PAGE],
        more=len(records) > PER_PAGE,
        page_number=page,
        total=stats.dead_letters,
        notice=notice(request),
    )


async def purge_confirm(request: Request) -> Response:
    """Ask before purging (one dead letter with ``?id=``, or all with ``?all=1``)."""
    dashboard = dashboard_of(request)
    everything = request.query_params.get("all") == "1"
    task_id = request.query_params.get("id", "")
    if everything == bool(task_id):
        raise HTTPException(400, "name one dead letter (?id=...) or all of them (?all=1)")
    stats = await dashboard.store.statistics()
    record = None if everything else await dashboard.store.get(task_id)
    return render(
        request, "purge.html", everything=everything, record=record, task_id=task_id, stats=stats
    )


# --------------------------------------------------------------------------- charts


async def charts(request: Request) -> Response:
    """Throughput and run-time charts of the last hour (see ``_monitor``)."""
    dashboard = dashboard_of(request)
    await dashboard.monitor.latest()
    buckets = dashboard.monitor.buckets()
    return render(
        request,
        "charts.html",
        throughput=_render.throughput_chart(buckets),
        latency=_render.latency_chart(buckets),
        buckets=buckets,
        polls=dashboard.monitor.polls,
    )
