"""``DurableClient.submit_many``: one ``enqueue_many`` call per batch, on SQLite and Redis.

A bad item fails before anything is stored, and the error names the item's index
(and the argument, for a payload error).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import durable_tasks as tasks
import pytest

import taskmill as tm
from taskmill.payloads import PayloadCodec, PayloadLimits
from taskmill.sqlite import SqliteStore

HERE = Path(__file__).parent


def _redis_fixtures() -> ModuleType:
    """tests/redis/conftest.py under another name (as tests/prometheus/conftest.py does)."""
    name = "taskmill_tests_redis_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "redis" / "conftest.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


redis_server = _redis_fixtures().redis_server
redis_url = _redis_fixtures().redis_url


class Spy:
    """Counts the store calls submit_many makes."""

    def __init__(self, store: Any) -> None:
        self.batches: list[int] = []
        self.singles = 0
        many, one = store.enqueue_many, store.enqueue

        async def enqueue_many(batch: Any) -> Any:
            batch = list(batch)
            self.batches.append(len(batch))
            return await many(batch)

        async def enqueue(*args: Any, **kwargs: Any) -> Any:
            self.singles += 1
            return await one(*args, **kwargs)

        store.enqueue_many = enqueue_many
        store.enqueue = enqueue


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        async with await SqliteStore.open(tmp_path / "tasks.db") as opened:
            yield opened
        return
    from taskmill.redis import RedisStore

    url = request.getfixturevalue("redis_url")
    async with await RedisStore.open(url) as redis_store:
        yield redis_store


pytestmark = pytest.mark.real_time  # Redis is a real socket; SQLite works either way


async def test_one_batched_call_and_handles_in_order(store: Any) -> None:
    """N items -> one enqueue_many of N, no single enqueue; handles follow the calls."""
    spy = Spy(store)
    client = tm.DurableClient(store, tasks.registry)
    calls: list[tuple[Any, tuple[object, ...], dict[str, object]]]
    calls = [(tasks.add, (i, i), {}) for i in range(5)]
    calls.append(("add", (), {"a": 7, "b": 8}))
    handles = await client.submit_many(calls)
    assert ([6], 0) == (spy.batches, spy.singles)
    assert all(h.created for h in handles)
    assert len({h.id for h in handles}) == 6
    for handle in handles:
        assert "queued" == await handle.status()
        record = await store.get(handle.id)
        assert "add" == record.name
    worker = tm.DurableWorker(store, tasks.registry, poll_interval=0.005)
    running = asyncio.create_task(worker.run())
    try:
        assert [0, 2, 4, 6, 8, 15] == [await h.result(timeout=20) for h in handles]
    finally:
        await worker.stop(graceful=False)
        await running


async def test_bad_argument_names_item_and_argument_and_stores_nothing(store: Any) -> None:
    """An unserializable argument in item 2 raises PayloadError naming both; nothing stored."""
    spy = Spy(store)
    client = tm.DurableClient(store, tasks.registry)
    calls: list[tuple[Any, tuple[object, ...], dict[str, object]]] = [
        (tasks.add, (1, 2), {}),
        (tasks.add, (3, 4), {}),
        (tasks.add, (5,), {"b": object()}),
    ]
    with pytest.raises(tm.PayloadError, match="submit_many item 2: ") as caught:
        await client.submit_many(calls)
    assert ("b", "add") == (caught.value.argument, caught.value.task)
    assert "'b'" in str(caught.value)
    assert ([], 0) == (spy.batches, spy.singles)
    assert [] == await store.list()


async def test_payload_too_large_keeps_its_type(store: Any) -> None:
    """A too-big item is still a PayloadTooLarge (size and limit kept), with its index."""
    codec = PayloadCodec(tasks.registry, limits=PayloadLimits(max_payload_bytes=300))
    client = tm.DurableClient(store, tasks.registry, codec=codec)
    big = 10**17  # ~35 more bytes than a one-digit pair: over the 300-byte limit
    with pytest.raises(tm.PayloadTooLarge, match="submit_many item 1: ") as caught:
        await client.submit_many([(tasks.add, (1, 2), {}), (tasks.add, (big, big), {})])
    assert caught.value.limit == 300
    assert caught.value.size > 300
    assert [] == await store.list()


async def test_unknown_task_and_malformed_item(store: Any) -> None:
    """An unknown task and a malformed item are clear errors naming the index."""
    client = tm.DurableClient(store, tasks.registry)
    with pytest.raises(tm.UnknownTask) as unknown:
        await client.submit_many([(tasks.add, (1, 2), {}), ("nope", (), {})])
    assert ["in submit_many item 1"] == unknown.value.__notes__
    with pytest.raises(tm.ConfigurationError, match="submit_many item 0: expected"):
        await client.submit_many([(tasks.add, (1, 2))])  # type: ignore[list-item]
    assert [] == await store.list()
    assert [] == await client.submit_many([])


async def test_existing_ids_are_not_created_twice(store: Any) -> None:
    """With a fixed task_id the batch is idempotent: the second submit creates nothing."""
    client = tm.DurableClient(store, tasks.registry).with_options(task_id="fixed-id")
    (first,) = await client.submit_many([(tasks.add, (1, 2), {})])
    (again,) = await client.submit_many([(tasks.add, (1, 2), {})])
    assert (True, False) == (first.created, again.created)
    assert first.id == again.id == "fixed-id"
