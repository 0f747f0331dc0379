"""The store commands with ``--redis URL`` / ``TASKMILL_REDIS_URL`` against a real redis-server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result

from taskmill._cli_app import cli
from taskmill.payloads import PayloadCodec
from taskmill.redis import RedisStore
from taskmill.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(60)


def _redis_fixtures() -> ModuleType:
    """tests/redis/conftest.py's fixtures (a private redis-server), loaded under another name."""
    name = "taskmill_tests_redis_fixtures"
    if name not in sys.modules:
        path = Path(__file__).parent / "redis" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


redis_server = _redis_fixtures().redis_server
redis_url = _redis_fixtures().redis_url
dead_url = _redis_fixtures().dead_url


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:  # noqa: A002
    return CliRunner().invoke(cli, list(args), env=env, input=input)


def assert_user_error(result: Result, text: str) -> None:
    assert 2 == result.exit_code, result.output
    assert text in result.output
    assert "Traceback" not in result.output
    assert 1 == len(result.output.strip().splitlines()), result.output


async def _dead_letter(url: str, queue: str = "dq") -> str:
    async with await RedisStore.open(url) as store:
        task_id = (await store.enqueue(b"{}", name="bad", queue=queue)).task_id
        [claim] = await store.claim([queue], worker="w-1")
        assert task_id == claim.task_id
        await store.dead_letter(claim.task_id, claim.token, "unknown task name 'bad'")
        return task_id


async def _ack_one(url: str, value: object) -> None:
    async with await RedisStore.open(url) as store:
        for _ in range(2000):
            claims = await store.claim(["default"], worker="t-1")
            if claims:
                break
            await asyncio.sleep(0.005)
        [claim] = claims
        await store.ack(claim.task_id, claim.token, PayloadCodec().encode_result(value))


class TestOnRedis:
    def test_submit_status_cancel_and_purge(self, redis_url: str) -> None:
        """Every command reaches the same Redis store through --redis."""
        first = invoke("submit", "mail.send", "--args", '["ada"]', "--redis", redis_url)
        assert 0 == first.exit_code, first.output
        task_id = first.output.strip()
        invoke("submit", "report", "--queue", "reports", "--redis", redis_url)
        report = json.loads(invoke("status", "--json", "--redis", redis_url).output)
        assert 2 == report["by_status"]["queued"]
        assert {"queued": 1} == report["by_queue"]["reports"]
        assert report["path"].startswith("redis://127.0.0.1:")
        assert (
            f"{task_id}: cancelled"
            == invoke("cancel", task_id, "--redis", redis_url).output.strip()
        )
        purged = invoke("purge", "--older-than", "0", "--redis", redis_url)
        assert "purged 1 finished record(s)" == purged.output.strip()
        tables = invoke("status", "--redis", redis_url)
        assert "1 tasks" in tables.output

    def test_environment_variable_names_the_store(self, redis_url: str) -> None:
        env = {"TASKMILL_REDIS_URL": redis_url}
        assert 0 == invoke("submit", "t", env=env).exit_code
        report = json.loads(invoke("status", "--json", env=env).output)
        assert 1 == report["total"]

    def test_dead_letters_list_show_requeue_purge(self, redis_url: str) -> None:
        dead = asyncio.run(_dead_letter(redis_url))
        listed = json.loads(invoke("dead-letters", "list", "--json", "--redis", redis_url).output)
        assert [dead] == [record["id"] for record in listed]
        shown = json.loads(invoke("dead-letters", "show", dead, "--redis", redis_url).output)
        assert "unknown task name 'bad'" == shown["dead_reason"]
        requeued = invoke("dead-letters", "requeue", dead, "--redis", redis_url)
        assert f"requeued {dead}" == requeued.output.strip()
        again = asyncio.run(_dead_letter(redis_url, "dq2"))
        purge = invoke("dead-letters", "purge", "--all", "--redis", redis_url, input="y\n")
        assert 0 == purge.exit_code, purge.output
        assert "purged 1 dead letter(s)" in purge.output
        assert "redis://127.0.0.1:" in purge.output  # the question names the store
        missing = invoke("dead-letters", "show", again, "--redis", redis_url)
        assert_user_error(missing, f"no task with id {again!r} in redis://127.0.0.1:")

    def test_submit_wait_prints_the_result(self, redis_url: str) -> None:
        worker = threading.Thread(target=asyncio.run, args=(_ack_one(redis_url, [1, 2]),))
        worker.start()
        result = invoke("submit", "t", "--wait", "--timeout", "20", "--json", "--redis", redis_url)
        worker.join()
        assert 0 == result.exit_code, result.output
        report = json.loads(result.output)
        assert ("succeeded", [1, 2], None) == (report["status"], report["result"], report["error"])


COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["dead-letters", "list"],
    ["dead-letters", "show", "x"],
    ["dead-letters", "requeue", "x"],
    ["dead-letters", "purge", "--all", "--yes"],
    ["cancel", "x"],
    ["purge", "--older-than", "1"],
    ["submit", "t"],
    ["worker", "metrics_tasks:registry"],
]


class TestMistakes:
    @pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
    def test_unreachable_redis_is_one_line_and_exit_2(
        self, dead_url: str, command: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tasks_dir = Path(__file__).parent / "prometheus"  # the worker's tasks module
        monkeypatch.chdir(tasks_dir)
        monkeypatch.syspath_prepend(str(tasks_dir))  # undone after the test
        result = invoke(*command, "--redis", dead_url)
        assert_user_error(result, f"cannot reach Redis at {dead_url}: start redis-server there")

    @pytest.mark.parametrize(
        ("url", "text"),
        [
            ("http://127.0.0.1:6379", "must start with redis://, rediss:// or unix://"),
            ("redis://u:hunter2@127.0.0.1:notaport/0", "Port could not be cast"),
        ],
    )
    def test_bad_url_is_one_line_without_the_password(self, url: str, text: str) -> None:
        result = invoke("status", "--redis", url)
        assert_user_error(result, text)
        assert "hunter2" not in result.output

    def test_db_and_redis_together_are_refused(self, tmp_path: Path) -> None:
        both = invoke("status", "--db", str(tmp_path / "x.db"), "--redis", "redis://h")
        assert_user_error(both, "--db and --redis name two stores")
        env = {"TASKMILL_DB": str(tmp_path / "x.db"), "TASKMILL_REDIS_URL": "redis://h"}
        assert_user_error(invoke("status", env=env), "TASKMILL_DB and TASKMILL_REDIS_URL")

    def test_command_line_beats_the_environment(self, tmp_path: Path, dead_url: str) -> None:
        """--db wins over TASKMILL_REDIS_URL (and --redis over TASKMILL_DB)."""
        db = tmp_path / "t.db"
        asyncio.run(_create(db))
        result = invoke("status", "--json", "--db", str(db), env={"TASKMILL_REDIS_URL": dead_url})
        assert 0 == result.exit_code, result.output
        assert str(db) in json.loads(result.output)["path"]
        other = invoke("status", "--redis", dead_url, env={"TASKMILL_DB": str(db)})
        assert_user_error(other, "cannot reach Redis")

    def test_taskmill_db_environment_variable(self, tmp_path: Path) -> None:
        db = tmp_path / "env.db"
        asyncio.run(_create(db))
        result = invoke("status", "--json", env={"TASKMILL_DB": str(db)})
        assert 0 == result.exit_code, result.output
        assert 0 == json.loads(result.output)["total"]


async def _create(db: Path) -> None:
    async with await SqliteStore.open(db):
        pass
