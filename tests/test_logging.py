"""Structured logging: the taskmill_* extras, JsonFormatter, configure_logging, no print."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import taskmill as tm
from taskmill.sqlite import SqliteStore

SRC = Path(__file__).resolve().parents[1] / "src" / "taskmill"
# Modules that talk to a terminal on purpose (the demo prints its walkthrough).
PRINT_ALLOWED = frozenset({"_demo.py", "_cli.py", "_cli_app.py"})
CREATED = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z

registry = tm.TaskRegistry()


@registry.task(name="log_boom", retry=tm.Retry(max_attempts=2, backoff=tm.Constant(1.0)))
async def log_boom() -> None:
    raise RuntimeError("boom")


def make_record(msg: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("taskmill.x", logging.WARNING, __file__, 1, msg, args, None)
    record.created = CREATED
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def parse(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    line = formatter.format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


class TestLogKeys:
    def test_every_key_is_prefixed_and_unique(self) -> None:
        """All documented keys start with taskmill_ and none repeats."""
        assert len(set(tm.LogKeys.ALL)) == len(tm.LogKeys.ALL)
        assert all(key.startswith("taskmill_") for key in tm.LogKeys.ALL)

    def test_names(self) -> None:
        """The key names are part of the public contract."""
        expected = (
            "taskmill_task_id",
            "taskmill_task",
            "taskmill_attempt",
            "taskmill_queue",
            "taskmill_worker",
            "taskmill_job",
            "taskmill_subsystem",
        )
        assert expected == tm.LogKeys.ALL


class TestLogExtras:
    def test_plain_record_has_none(self) -> None:
        """A record without extras yields an empty dict."""
        assert {} == tm.log_extras(make_record())

    def test_documented_keys_first_then_others_sorted(self) -> None:
        """Documented keys come in LogKeys.ALL order, other taskmill_* keys after, sorted."""
        record = make_record(
            taskmill_zeta=1, taskmill_worker="w", taskmill_alpha=2, taskmill_task_id="t"
        )
        extras = tm.log_extras(record)
        assert ["taskmill_task_id", "taskmill_worker", "taskmill_alpha", "taskmill_zeta"] == list(
            extras
        )

    def test_user_extras_are_not_taken(self) -> None:
        """An application's own extras (no prefix) are not reported."""
        assert {} == tm.log_extras(make_record(user_id=7))

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("job", "taskmill_job"),
            ("job_kind", "taskmill_job_kind"),
            ("subsystem", "taskmill_subsystem"),
            ("trace_id", "taskmill_trace_id"),
        ],
    )
    def test_aliases(self, old: str, new: str) -> None:
        """Older attribute names are reported under their taskmill_ name."""
        assert {new: "v"} == tm.log_extras(make_record(**{old: "v"}))

    def test_prefixed_key_wins_over_alias(self) -> None:
        """An explicit taskmill_job is not overwritten by the job alias."""
        extras = tm.log_extras(make_record(job="old", taskmill_job="new"))
        assert {"taskmill_job": "new"} == extras

    def test_empty_subsystem_left_out(self) -> None:
        """SubsystemFilter's empty values outside any subsystem are dropped."""
        assert {} == tm.log_extras(make_record(subsystem="", trace_id=""))


class TestJsonFormatter:
    def test_core_fields(self) -> None:
        """time (ISO UTC from record.created), level, logger and merged message."""
        expected = {
            "time": "2023-11-14T22:13:20.250Z",
            "level": "WARNING",
            "logger": "taskmill.x",
            "message": "hello world",
        }
        assert expected == parse(tm.JsonFormatter(), make_record("hello %s", "world"))

    def test_extras_and_static_fields(self) -> None:
        """taskmill extras and static fields are written; user extras only when asked."""
        formatter = tm.JsonFormatter(static_fields={"service": "billing"}, keys=("user_id",))
        out = parse(formatter, make_record(taskmill_attempt=3, user_id=7, other=1))
        assert "billing" == out["service"]
        assert 3 == out["taskmill_attempt"]
        assert 7 == out["user_id"]
        assert "other" not in out

    def test_exc_info_as_text(self) -> None:
        """An exception is written as its formatted traceback text."""
        try:
            raise ValueError("bad value")
        except ValueError:
            record = make_record()
            record.exc_info = sys.exc_info()
        out = parse(tm.JsonFormatter(), record)
        assert out["exc_info"].startswith("Traceback")
        assert "ValueError: bad value" in out["exc_info"]

    def test_stack_info(self) -> None:
        """stack_info is written when the record has it."""
        record = make_record()
        record.stack_info = "Stack (most recent call last):\n  here"
        assert "here" in parse(tm.JsonFormatter(), record)["stack_info"]

    def test_unencodable_value_uses_str(self) -> None:
        """Values json cannot encode are written with str()."""
        out = parse(tm.JsonFormatter(), make_record(taskmill_queue=Path("q")))
        assert "q" == out["taskmill_queue"]

    def test_non_ascii_kept(self) -> None:
        """Messages keep their characters (one UTF-8 line)."""
        assert "héllo ✓" == parse(tm.JsonFormatter(), make_record("héllo ✓"))["message"]

    @pytest.mark.parametrize("key", ["time", "level", "logger", "message", "exc_info"])
    def test_reserved_static_field_rejected(self, key: str) -> None:
        """A static field that would hide a core field fails at construction."""
        with pytest.raises(tm.ConfigurationError, match=key):
            tm.JsonFormatter(static_fields={key: 1})

    def test_reserved_key_rejected(self) -> None:
        """Copying a record attribute over a core field fails at construction."""
        with pytest.raises(tm.ConfigurationError, match="message"):
            tm.JsonFormatter(keys=("message",))

    def test_repr_shows_options(self) -> None:
        """The repr names the static fields and keys."""
        formatter = tm.JsonFormatter(static_fields={"service": "x"}, keys=("user_id",))
        assert "<JsonFormatter static_fields=['service'] keys=['user_id']>" == repr(formatter)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored (handlers and level) after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


class TestConfigureLogging:
    def test_json_lines_with_subsystem(self, root_logger: logging.Logger) -> None:
        """json=True writes JSON lines and the subsystem path comes from the context."""
        stream = io.StringIO()
        tm.configure_logging("debug", json=True, stream=stream, static_fields={"app": "a"})
        with tm.subsystem("indexer"):
            logging.getLogger("taskmill.test").debug("hi %d", 1)
        out = json.loads(stream.getvalue())
        assert ("hi 1", "/indexer", "a") == (out["message"], out["taskmill_subsystem"], out["app"])
        assert logging.DEBUG == root_logger.level

    def test_text_format(self, root_logger: logging.Logger) -> None:
        """The default is one line of text: time, level, logger, message."""
        stream = io.StringIO()
        tm.configure_logging(logging.INFO, stream=stream)
        logging.getLogger("taskmill.test").info("plain")
        assert stream.getvalue().rstrip().endswith("INFO taskmill.test plain")

    def test_second_call_replaces_only_its_own_handler(self, root_logger: logging.Logger) -> None:
        """Calling twice leaves one taskmill handler; other handlers stay."""
        other = logging.NullHandler()
        root_logger.addHandler(other)
        first = tm.configure_logging(stream=io.StringIO())
        second = tm.configure_logging(json=True, stream=io.StringIO())
        assert other in root_logger.handlers
        assert second in root_logger.handlers
        assert first not in root_logger.handlers

    @pytest.mark.parametrize("level", ["LOUD", True, ""])
    def test_bad_level(self, root_logger: logging.Logger, level: Any) -> None:
        """An unknown level fails at the call, installing nothing."""
        before = list(root_logger.handlers)
        with pytest.raises(tm.ConfigurationError):
            tm.configure_logging(level)
        assert before == root_logger.handlers

    def test_static_fields_need_json(self, root_logger: logging.Logger) -> None:
        """static_fields without json=True is a configuration error."""
        with pytest.raises(tm.ConfigurationError, match="json"):
            tm.configure_logging(static_fields={"a": 1})


def test_no_print_in_library_code() -> None:
    """No library module calls print() (the CLI and demo talk to a terminal)."""
    offenders: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name in PRINT_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders.extend(
            f"{path.relative_to(SRC)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
        )
    assert [] == offenders


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db", lease=10.0) as opened:
        yield opened


@pytest.mark.virtual_time(wall_start=1_700_000_000.0)
async def test_durable_failure_logs_carry_task_extras(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing durable task logs its retry and final failure with the task's extras."""
    caplog.set_level(logging.INFO, logger="taskmill")
    worker = tm.DurableWorker(store, registry, worker_id="w-1", lease=10.0)
    running = asyncio.create_task(worker.run())
    handle = await tm.DurableClient(store, registry).submit(log_boom)
    with pytest.raises(tm.TaskFailed):
        await handle.result(timeout=30)
    await worker.stop()
    await running
    formatter = tm.JsonFormatter()
    lines = [parse(formatter, r) for r in caplog.records if hasattr(r, "taskmill_task_id")]
    common = {
        "taskmill_task_id": handle.id,
        "taskmill_task": "log_boom",
        "taskmill_queue": "default",
        "taskmill_worker": "w-1",
    }
    assert [("INFO", 1), ("WARNING", 2)] == [
        (line["level"], line["taskmill_attempt"]) for line in lines
    ]
    for line in lines:
        assert common == {key: line[key] for key in common}
    assert "retrying in 1.000s" in lines[0]["message"]
    assert "RuntimeError: boom" in lines[1]["exc_info"]
    worker_lines = [r for r in caplog.records if getattr(r, "taskmill_worker", None) == "w-1"]
    assert {"durable worker w-1 started on queues default", "durable worker w-1 stopped"} <= {
        r.getMessage() for r in worker_lines
    }
