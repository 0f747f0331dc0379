"""`taskmill status / dead-letters / cancel / purge / submit` over a SQLite store file."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from taskmill import TaskRegistry
from taskmill._cli_app import cli
from taskmill._cli_inspect import watch_status
from taskmill._logging import JsonFormatter
from taskmill.payloads import PayloadCodec
from taskmill.sqlite import ErrorText, SqliteStore, Status

pytestmark = pytest.mark.timeout(30)


def invoke(*args: str, input: str | None = None) -> Result:  # noqa: A002 - click's name
    return CliRunner().invoke(cli, list(args), input=input)


def assert_user_error(result: Result, text: str) -> None:
    assert 2 == result.exit_code, result.output
    assert text in result.output
    assert "Traceback" not in result.output
    assert 1 == len(result.output.strip().splitlines())


async def _fill(db: Path) -> dict[str, str]:
    """queued x2 (default), one running (mail), one dead, one succeeded."""
    async with await SqliteStore.open(db) as store:
        ids = {
            "q1": (await store.enqueue(b"[]", name="a")).task_id,
            "q2": (await store.enqueue(b"[]", name="b")).task_id,
            "mail": (await store.enqueue(b"[]", name="mail.send", queue="mail")).task_id,
        }
        [claim] = await store.claim(["mail"], worker="w-1")
        ids["dead"] = (await store.enqueue(b'{"x": 1}', name="bad", queue="dq")).task_id
        [dead] = await store.claim(["dq"], worker="w-2")
        await store.dead_letter(dead.task_id, dead.token, "unknown task name 'bad'")
        ids["done"] = (await store.enqueue(b"[]", name="ok", queue="oq")).task_id
        [ok] = await store.claim(["oq"], worker="w-3")
        await store.ack(ok.task_id, ok.token, b'"fine"')
        assert claim.task_id == ids["mail"]
        return ids


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def ids(db: Path) -> dict[str, str]:
    return asyncio.run(_fill(db))


def record(db: Path, task_id: str) -> Any:
    async def get() -> Any:
        async with await SqliteStore.open(db) as store:
            return await store.get(task_id)

    return asyncio.run(get())


class TestStatus:
    def test_json_counts_by_status_and_queue(self, db: Path, ids: dict[str, str]) -> None:
        """--json prints one object with counts and the running task with its age."""
        result = invoke("status", "--db", str(db), "--json")
        assert 0 == result.exit_code, result.output
        report = json.loads(result.output)
        assert 5 == report["total"]
        assert (2, 1, 1, 1) == tuple(
            report["by_status"][s] for s in ("queued", "running", "dead", "succeeded")
        )
        assert {"queued": 2} == report["by_queue"]["default"]
        [running] = report["running"]
        assert (ids["mail"], "mail.send", "w-1") == (
            running["id"],
            running["name"],
            running["worker"],
        )
        assert running["age"] >= 0.0

    def test_tables(self, db: Path, ids: dict[str, str]) -> None:
        """Without --json it draws the counts, the queues and the running tasks."""
        result = invoke("status", "--db", str(db))
        assert 0 == result.exit_code, result.output
        for text in ("5 tasks", "by queue", "running (1)", "mail.send", "w-1", "queued=2"):
            assert text in result.output

    def test_missing_db_is_one_line_and_creates_nothing(self, db: Path) -> None:
        """A wrong --db is a user mistake: exit 2, the fix on one line, no file left behind."""
        assert_user_error(invoke("status", "--db", str(db)), "pass --db PATH")
        assert not db.exists()

    def test_watch_with_json_is_refused(self, db: Path, ids: dict[str, str]) -> None:
        assert_user_error(invoke("status", "--db", str(db), "--watch", "1", "--json"), "--watch")

    async def test_watch_refreshes_every_interval(self, tmp_path: Path) -> None:
        """--watch redraws after each interval (virtual time: exactly 2 x 5 s for 3 rounds)."""
        out = io.StringIO()
        console = Console(file=out, force_terminal=False, width=100)
        async with await SqliteStore.open(tmp_path / "w.db") as store:
            await store.enqueue(b"[]", name="a")
            loop = asyncio.get_running_loop()
            start = loop.time()
            await watch_status(store, console, interval=5.0, rounds=3)
            assert 10.0 == loop.time() - start
        assert "1 tasks" in out.getvalue()


class TestDeadLetters:
    def test_list(self, db: Path, ids: dict[str, str]) -> None:
        result = invoke("dead-letters", "list", "--db", str(db), "--json")
        assert 0 == result.exit_code, result.output
        [dead] = json.loads(result.output)
        assert (ids["dead"], "unknown task name 'bad'") == (dead["id"], dead["dead_reason"])
        table = invoke("dead-letters", "list", "--db", str(db))
        assert "dead letters (1)" in table.output

    def test_show_decodes_the_payload(self, db: Path, ids: dict[str, str]) -> None:
        result = invoke("dead-letters", "show", ids["dead"], "--db", str(db))
        assert 0 == result.exit_code, result.output
        shown = json.loads(result.output)
        assert ({"x": 1}, "dead") == (shown["payload"], shown["status"])

    def test_show_unknown_id(self, db: Path, ids: dict[str, str]) -> None:
        assert_user_error(invoke("dead-letters", "show", "nope", "--db", str(db)), "'nope'")

    def test_requeue(self, db: Path, ids: dict[str, str]) -> None:
        """A requeued dead letter is queued again."""
        result = invoke("dead-letters", "requeue", ids["dead"], "--db", str(db))
        assert 0 == result.exit_code, result.output
        assert Status.QUEUED == record(db, ids["dead"]).status

    def test_requeue_of_a_live_task_is_refused(self, db: Path, ids: dict[str, str]) -> None:
        result = invoke("dead-letters", "requeue", ids["q1"], "--db", str(db))
        assert_user_error(result, "is queued, not a dead letter")

    def test_purge_asks_first(self, db: Path, ids: dict[str, str]) -> None:
        """Answering no keeps the dead letter (exit 2); yes deletes it."""
        refused = invoke("dead-letters", "purge", ids["dead"], "--db", str(db), input="n\n")
        assert 2 == refused.exit_code
        assert record(db, ids["dead"]) is not None
        agreed = invoke("dead-letters", "purge", ids["dead"], "--db", str(db), input="y\n")
        assert 0 == agreed.exit_code, agreed.output
        assert "purged 1" in agreed.output
        assert record(db, ids["dead"]) is None

    def test_purge_all_with_yes(self, db: Path, ids: dict[str, str]) -> None:
        result = invoke("dead-letters", "purge", "--all", "--yes", "--db", str(db))
        assert "purged 1 dead letter(s)" in result.output
        assert record(db, ids["q1"]) is not None

    def test_purge_needs_ids_or_all(self, db: Path, ids: dict[str, str]) -> None:
        both = invoke("dead-letters", "purge", ids["dead"], "--all", "--db", str(db))
        assert_user_error(both, "--all")
        assert_user_error(invoke("dead-letters", "purge", "--db", str(db)), "--all")


class TestCancelAndPurge:
    def test_cancel_queued_and_running(self, db: Path, ids: dict[str, str]) -> None:
        assert f"{ids['q1']}: cancelled" in invoke("cancel", ids["q1"], "--db", str(db)).output
        assert Status.CANCELLED == record(db, ids["q1"]).status
        assert "requested" in invoke("cancel", ids["mail"], "--db", str(db)).output

    def test_cancel_unknown(self, db: Path, ids: dict[str, str]) -> None:
        assert_user_error(invoke("cancel", "nope", "--db", str(db)), "no task with id 'nope'")

    def test_purge_finished_records(self, db: Path, ids: dict[str, str]) -> None:
        """purge deletes finished records but keeps live tasks and dead letters."""
        result = invoke("purge", "--older-than", "0", "--db", str(db))
        assert "purged 1 finished record(s)" in result.output
        assert record(db, ids["done"]) is None
        assert record(db, ids["dead"]) is not None


class TestSubmit:
    def test_submit_by_name_without_user_code(self, db: Path) -> None:
        """The payload is an envelope the worker decodes: name, args, kwargs and options."""
        result = invoke(
            "submit",
            "mail.send",
            "--args",
            '[7, "hi"]',
            "--kwargs",
            '{"urgent": true}',
            "--priority",
            "3",
            "--queue",
            "mail",
            "--delay",
            "60",
            "--db",
            str(db),
        )
        assert 0 == result.exit_code, result.output
        stored = record(db, result.output.strip())
        envelope = PayloadCodec().decode(stored.payload)
        assert ("mail.send", [7, "hi"], {"urgent": True}) == (
            envelope.task,
            envelope.args,
            envelope.kwargs,
        )
        assert (Status.SCHEDULED, "mail", 3) == (stored.status, stored.queue, stored.priority)

    def test_registry_defaults_with_tasks(self, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """--tasks MODULE:ATTR applies the registered queue; an unknown name is refused."""
        registry = TaskRegistry()

        @registry.task(name="mail.send", queue="mail")
        async def send() -> None: ...

        import taskmill._cli_worker as worker_module

        monkeypatch.setattr(worker_module, "load_registry", lambda target: registry)
        result = invoke("submit", "mail.send", "--tasks", "m:r", "--db", str(db))
        assert "mail" == record(db, result.output.strip()).queue
        assert_user_error(invoke("submit", "other", "--tasks", "m:r", "--db", str(db)), "other")

    @pytest.mark.parametrize(
        ("args", "text"),
        [
            (["--args", "[1,"], "--args is not valid JSON"),
            (["--args", "{}"], "--args must be a JSON list"),
            (["--kwargs", "[1]"], "--kwargs must be a JSON dict"),
            (["--timeout", "1"], "--timeout needs --wait"),
        ],
    )
    def test_bad_input_is_one_line(self, db: Path, args: list[str], text: str) -> None:
        assert_user_error(invoke("submit", "t", *args, "--db", str(db)), text)
        assert not db.exists()

    def test_wait_times_out(self, db: Path) -> None:
        """--wait --timeout ends with exit 1 and the task's status when nobody runs it."""
        result = invoke("submit", "t", "--wait", "--timeout", "0.05", "--db", str(db))
        assert 1 == result.exit_code
        assert "is still queued after 0.05 s" in result.output

    def test_wait_prints_the_result(self, db: Path) -> None:
        """--wait prints the decoded result once a worker (another thread here) acks it."""
        asyncio.run(_open_only(db))
        worker = threading.Thread(target=asyncio.run, args=(_ack_one(db, {"sent": 2}),))
        worker.start()
        result = invoke("submit", "t", "--wait", "--timeout", "20", "--db", str(db))
        worker.join()
        assert 0 == result.exit_code, result.output
        assert {"sent": 2} == json.loads(result.output.strip().splitlines()[-1])

    def test_wait_reports_a_failure(self, db: Path) -> None:
        asyncio.run(_open_only(db))
        worker = threading.Thread(target=asyncio.run, args=(_ack_one(db, None, fail=True),))
        worker.start()
        result = invoke("submit", "t", "--wait", "--timeout", "20", "--db", str(db))
        worker.join()
        assert 1 == result.exit_code
        assert "ended failed: ValueError: boom" in result.output


async def _open_only(db: Path) -> None:
    async with await SqliteStore.open(db):
        pass


async def _ack_one(db: Path, value: object, *, fail: bool = False) -> None:
    async with await SqliteStore.open(db) as store:
        for _ in range(2000):
            claims = await store.claim(["default"], worker="t-1")
            if claims:
                break
            await asyncio.sleep(0.005)
        [claim] = claims
        if fail:
            await store.nack(
                claim.task_id, claim.token, error=ErrorText(type="ValueError", message="boom")
            )
        else:
            await store.ack(claim.task_id, claim.token, PayloadCodec().encode_result(value))


def test_worker_log_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """worker --log-json installs the JSON formatter before the worker runs."""
    import taskmill._cli_worker as worker_module

    seen: list[logging.Formatter | None] = []

    async def serve(*args: object) -> int:
        seen.extend(h.formatter for h in logging.getLogger().handlers)
        return 0

    monkeypatch.setattr(worker_module, "serve", serve)
    monkeypatch.setattr(
        worker_module,
        "load_target",
        lambda target, tasks: worker_module.Target(registry=TaskRegistry()),
    )
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(cli, ["worker", "m:r", "--log-json"])
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)
    assert 0 == result.exit_code, result.output
    assert any(isinstance(f, JsonFormatter) for f in seen)
