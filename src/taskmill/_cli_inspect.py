"""``taskmill status``, ``dead-letters``, ``cancel``, ``purge`` and ``submit`` over a store.

Every command takes ``--db PATH`` (default ``./taskmill.db``) or ``--redis URL``
(see :mod:`taskmill._cli_store`), opens the store, does one thing and closes it.
User mistakes (a missing file, an unreachable Redis, an unknown task id, bad JSON)
end as one ``Error: ...`` line on stderr with exit code 2, never a
traceback. The store and the codec are imported inside the commands so that
``taskmill --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import click
from rich.console import Console
from rich.table import Table

from taskmill import _clock
from taskmill._cli_store import StoreTarget, UserError, open_store, store_options
from taskmill._errors import TaskmillError, TaskNotFound

if TYPE_CHECKING:
    from taskmill.payloads import PayloadCodec
    from taskmill.redis import RedisStore, RedisStoreStatistics
    from taskmill.redis import TaskRecord as RedisTaskRecord
    from taskmill.sqlite import SqliteStore, StoreStatistics
    from taskmill.sqlite import TaskRecord as SqliteTaskRecord

__all__ = ["COMMANDS", "UserError", "watch_status"]

T = TypeVar("T")

Store: TypeAlias = "SqliteStore | RedisStore"
TaskRecord: TypeAlias = "SqliteTaskRecord | RedisTaskRecord"


def _with_store(
    target: StoreTarget, action: Callable[[Store], Awaitable[T]], *, create: bool = False
) -> T:
    """Open the ``target`` store, run ``action`` on it, close it; user mistakes -> UserError."""
    return asyncio.run(_open_and_run(target, action, create=create))


async def _open_and_run(
    target: StoreTarget, action: Callable[[Store], Awaitable[T]], *, create: bool
) -> T:
    try:
        async with open_store(target, create=create) as store:
            return await action(store)
    except TaskNotFound as exc:
        raise UserError(f"no task with id {exc.task_id!r} in {target}") from None
    except TaskmillError as exc:
        raise UserError(f"{type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- status


def _age(since: float | None, wall: float) -> str:
    return "-" if since is None else f"{max(0.0, wall - since):.1f}s"


def _status_object(
    stats: StoreStatistics | RedisStoreStatistics, running: list[TaskRecord], wall: float
) -> dict[str, Any]:
    return {
        "path": getattr(stats, "path", None) or getattr(stats, "url", ""),
        "total": stats.total,
        "by_status": dict(stats.by_status),
        "by_queue": {queue: dict(counts) for queue, counts in stats.by_queue.items()},
        "dead_letters": stats.dead_letters,
        "expired_leases": stats.expired_leases,
        "lag": stats.lag,
        "next_scheduled": stats.next_scheduled,
        "running": [
            {
                "id": record.task_id,
                "name": record.name,
                "queue": record.queue,
                "worker": record.worker,
                "attempt": record.attempt,
                "age": None if record.started_at is None else max(0.0, wall - record.started_at),
            }
            for record in running
        ],
    }


def _status_tables(report: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(1, 0))
    counts = Table(title=f"{report['path']}: {report['total']} tasks")
    counts.add_column("status")
    counts.add_column("tasks", justify="right")
    for status, count in report["by_status"].items():
        counts.add_row(status, str(count))
    queues = Table(title="by queue")
    queues.add_column("queue")
    queues.add_column("tasks by status")
    for queue, by_status in report["by_queue"].items():
        queues.add_row(queue, ", ".join(f"{s}={n}" for s, n in by_status.items()))
    running = Table(title=f"running ({len(report['running'])})")
    for column in ("id", "name", "queue", "worker", "attempt", "age"):
        running.add_column(column)
    for task in report["running"]:
        age = "-" if task["age"] is None else f"{task['age']:.1f}s"
        cells = (task["id"], task["name"], task["queue"], task["worker"] or "-")
        running.add_row(*cells, str(task["attempt"]), age)
    for table in (counts, queues, running):
        grid.add_row(table)
    return grid


async def _status_report(store: Store, limit: int) -> dict[str, Any]:
    stats = await store.statistics()
    running: list[TaskRecord] = list(await store.list(status="running", limit=limit))
    return _status_object(stats, running, _clock.wall_time())


async def watch_status(
    store: Store, console: Console, *, interval: float, rounds: int | None = None
) -> None:
    """Show the status tables and refresh them every ``interval`` seconds.

    Args:
        store: The store to read.
        console: Where to draw.
        interval: Seconds between refreshes.
        rounds: Stop after this many refreshes (``None``: until cancelled or Ctrl-C).
    """
    from rich.live import Live  # noqa: PLC0415 - only when watching

    with Live(console=console, auto_refresh=False) as live:
        done = 0
        while rounds is None or done < rounds:
            live.update(_status_tables(await _status_report(store, 50)), refresh=True)
            done += 1
            if rounds is None or done < rounds:
                await asyncio.sleep(interval)


@click.command()
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Refresh every SECONDS until Ctrl-C.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Running tasks to show at most.",
)
def status(store: StoreTarget, *, as_json: bool, watch: float | None, limit: int) -> None:
    """Show task counts by status and by queue, and the running tasks with their age."""
    console = Console(highlight=False)
    if watch is not None:
        if as_json:
            raise UserError("--watch draws tables; drop --json (or --watch)")
        try:
            _with_store(store, lambda opened: watch_status(opened, console, interval=watch))
        except KeyboardInterrupt:
            return
        return
    report = _with_store(store, lambda opened: _status_report(opened, limit))
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        console.print(_status_tables(report))


# --------------------------------------------------------------------------- dead letters


def _record_object(record: TaskRecord) -> dict[str, Any]:
    payload = record.payload
    try:
        shown: Any = json.loads(payload) if isinstance(payload, bytes) else payload
    except ValueError:
        shown = repr(payload)
    error = record.error
    return {
        "id": record.task_id,
        "name": record.name,
        "queue": record.queue,
        "priority": record.priority,
        "status": str(record.status),
        "attempt": record.attempt,
        "deliveries": record.deliveries,
        "worker_lost": record.worker_lost,
        "enqueued_at": record.enqueued_at,
        "finished_at": record.finished_at,
        "dead_reason": record.dead_reason,
        "error": None if error is None else {"type": error.type, "message": error.message},
        "payload": shown,
    }


@click.group("dead-letters")
def dead_letters() -> None:
    """List, show, requeue and purge dead letters."""


@dead_letters.command("list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def dead_list(store: StoreTarget, *, as_json: bool, limit: int) -> None:
    """List dead letters in enqueue order, with the reason each one died."""

    async def dead(opened: Store) -> list[TaskRecord]:
        return list(await opened.dead_letters(limit=limit))

    records = _with_store(store, dead)
    if as_json:
        click.echo(json.dumps([_record_object(r) for r in records], sort_keys=True))
        return
    table = Table(title=f"dead letters ({len(records)})")
    for column in ("id", "name", "queue", "attempt", "worker lost", "reason"):
        table.add_column(column)
    for r in records:
        cells = (r.task_id, r.name, r.queue, str(r.attempt), str(r.worker_lost))
        table.add_row(*cells, r.dead_reason or "-")
    Console(highlight=False).print(table)


async def _existing(store: Store, task_id: str) -> TaskRecord:
    """Return the task's record, or raise TaskNotFound (one clear CLI line)."""
    record = await store.get(task_id)
    if record is None:
        raise TaskNotFound(task_id)
    return record


@dead_letters.command("show")
@click.argument("task_id", metavar="ID")
@store_options
def dead_show(task_id: str, store: StoreTarget) -> None:
    """Show one task's record (any status) as JSON: arguments, error, reason."""

    async def get(opened: Store) -> TaskRecord:
        return await _existing(opened, task_id)

    click.echo(json.dumps(_record_object(_with_store(store, get)), indent=2, sort_keys=True))


@dead_letters.command("requeue")
@click.argument("task_id", metavar="ID")
@store_options
def dead_requeue(task_id: str, store: StoreTarget) -> None:
    """Queue a dead letter again (due now, worker-lost count reset)."""

    async def requeue(opened: Store) -> None:
        record = await _existing(opened, task_id)
        if not await opened.requeue_dead(task_id):
            raise UserError(f"task {task_id} is {record.status}, not a dead letter")

    _with_store(store, requeue)
    click.echo(f"requeued {task_id}")


@dead_letters.command("purge")
@click.argument("task_ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Purge every dead letter.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@store_options
def dead_purge(
    task_ids: tuple[str, ...], *, everything: bool, yes: bool, store: StoreTarget
) -> None:
    """Delete the named dead letters, or all of them with --all (asks first unless --yes)."""
    if bool(task_ids) == everything:
        raise UserError("name the dead letters to purge, or pass --all (not both)")
    what = "every dead letter" if everything else f"{len(task_ids)} dead letter(s)"
    if not yes and not click.confirm(f"Delete {what} from {store}?", err=True):
        raise UserError("nothing purged (pass --yes to skip this question)")
    count = _with_store(store, lambda opened: opened.purge_dead(*task_ids, everything=everything))
    click.echo(f"purged {count} dead letter(s)")


# --------------------------------------------------------------------------- cancel, purge


@click.command()
@click.argument("task_id", metavar="ID")
@store_options
def cancel(task_id: str, store: StoreTarget) -> None:
    """Cancel a task: at once if it has not started, by request if it runs."""
    outcome = _with_store(store, lambda opened: opened.cancel(task_id))
    click.echo(f"{task_id}: {outcome}")


@click.command()
@click.option(
    "--older-than",
    type=click.FloatRange(min=0.0),
    required=True,
    metavar="SECONDS",
    help="Delete finished records (not dead letters) older than this.",
)
@store_options
def purge(older_than: float, store: StoreTarget) -> None:
    """Delete finished task records (results and errors) older than --older-than seconds."""
    count = _with_store(store, lambda opened: opened.purge_results(older_than))
    click.echo(f"purged {count} finished record(s)")


# --------------------------------------------------------------------------- submit


def _json_arg(text: str | None, kind: type, option: str) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{option} is not valid JSON ({exc}); e.g. {option} '[1, \"a\"]'") from None
    if not isinstance(value, kind):
        example = "'[1, \"a\"]'" if kind is list else "'{\"key\": 1}'"
        raise UserError(f"{option} must be a JSON {kind.__name__}, e.g. {option} {example}")
    return value


async def _submit(store: Store, call: _Call) -> tuple[str, Any]:
    envelope = call.codec.build(
        call.name,
        call.args,
        call.kwargs,
        priority=call.priority,
        queue=call.queue,
        delay=call.delay,
    )
    options = envelope.options
    enqueued = await store.enqueue(
        call.codec.encode(envelope),
        name=envelope.task,
        queue=options.queue,
        priority=options.priority,
        run_at=options.scheduled_at,
        unique_key=options.unique_key,
        task_id=envelope.id,
    )
    if not call.as_json:
        click.echo(enqueued.task_id)
    if not call.wait:
        return enqueued.task_id, None
    return enqueued.task_id, await _wait(store, call, enqueued.task_id)


def _spinner(call: _Call, task_id: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while waiting, only for a person: a TTY and no --json."""
    console = Console(stderr=True, highlight=False)
    if call.as_json or not console.is_terminal:
        return contextlib.nullcontext()
    return console.status(f"waiting for {call.name} {task_id}")


async def _wait(store: Store, call: _Call, task_id: str) -> TaskRecord:
    with _spinner(call, task_id):
        try:
            return await store.wait(task_id, call.timeout)
        except TimeoutError:
            record = await store.get(task_id)
            state = "gone" if record is None else str(record.status)
            raise click.ClickException(
                f"{task_id} is still {state} after {call.timeout} s"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    codec: PayloadCodec
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int | None
    queue: str | None
    delay: float | None
    wait: bool
    timeout: float | None
    as_json: bool = False


def _codec(tasks: str | None) -> PayloadCodec:
    from taskmill._cli_worker import load_registry  # noqa: PLC0415 - only with --tasks
    from taskmill.payloads import PayloadCodec  # noqa: PLC0415 - keep `taskmill --help` fast

    return PayloadCodec(None if tasks is None else load_registry(tasks))


def _report_outcome(call: _Call, record: TaskRecord) -> None:
    error = record.error
    reason = record.dead_reason or (f"{error.type}: {error.message}" if error else "")
    value = None
    if str(record.status) == "succeeded" and record.result is not None:
        value = call.codec.decode_result(record.result, task=record.name)
    if call.as_json:
        report = {"id": record.task_id, "status": str(record.status), "result": value}
        report["error"] = reason or None
        click.echo(json.dumps(report, default=repr, sort_keys=True))
        if str(record.status) != "succeeded":
            raise SystemExit(1)
        return
    if str(record.status) == "succeeded":
        click.echo(json.dumps(value, default=repr))
        return
    raise click.ClickException(f"{record.task_id} ended {record.status}: {reason}".rstrip(": "))


@click.command()
@click.argument("name")
@click.option("--args", "args_json", default=None, metavar="JSON", help="A JSON list.")
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON", help="A JSON object.")
@click.option("--delay", type=click.FloatRange(min=0.0), default=None, metavar="SECONDS")
@click.option("--priority", type=int, default=None, help="Lower runs first.")
@click.option("--queue", default=None, help="The queue (default: the task's, else 'default').")
@click.option(
    "--tasks",
    default=None,
    metavar="MODULE:ATTR",
    help="Load this TaskRegistry for the task's registered defaults.",
)
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print one JSON object: {"id": ...}, with --wait also status, result and error.',
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=None,
    metavar="SECONDS",
    help="With --wait: give up after this long (exit code 1).",
)
@store_options
def submit(
    name: str,
    *,
    args_json: str | None,
    kwargs_json: str | None,
    delay: float | None,
    priority: int | None,
    queue: str | None,
    tasks: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool = False,
    store: StoreTarget,
) -> None:
    """Submit the task registered as NAME (prints its id); no user code is imported.

    The worker checks the arguments against the task's signature when it runs it.
    Exit code 0 on success, 1 when the task failed or --timeout passed, 2 on bad input.
    """
    if timeout is not None and not wait:
        raise UserError("--timeout needs --wait")
    try:
        codec = _codec(tasks)
    except TaskmillError as exc:
        raise UserError(str(exc)) from None
    call = _Call(
        codec=codec,
        name=name,
        args=_json_arg(args_json, list, "--args"),
        kwargs=_json_arg(kwargs_json, dict, "--kwargs"),
        priority=priority,
        queue=queue,
        delay=delay,
        wait=wait,
        timeout=timeout,
        as_json=as_json,
    )
    task_id, record = _with_store(store, lambda opened: _submit(opened, call), create=True)
    if record is not None:
        _report_outcome(call, record)
    elif as_json:
        click.echo(json.dumps({"id": task_id}))


COMMANDS: tuple[click.Command, ...] = (status, dead_letters, cancel, purge, submit)
"""The commands ``_cli_app`` adds to the ``taskmill`` group."""
