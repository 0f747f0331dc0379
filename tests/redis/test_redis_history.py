"""The attempt history of the Redis store: every failed attempt's error, bounded."""

from __future__ import annotations

import time

import pytest

from taskmill.redis import ErrorText, RedisStore

pytestmark = pytest.mark.real_time


async def fail(store: RedisStore, task_id: str, n: int, *, final: bool = False) -> None:
    (claim,) = await store.claim("default", worker="w")
    assert claim.task_id == task_id
    error = ErrorText(type="ValueError", message=f"boom {n}", traceback="x" * 5000 + f"end{n}")
    retry_at = None if final else time.time()
    assert await store.nack(claim.task_id, claim.token, error=error, retry_at=retry_at)


async def test_every_failed_attempt_is_kept_in_order_and_bounded(store: RedisStore) -> None:
    """get() returns the latest ten failed attempts, tracebacks cut to their last 2,000."""
    task = await store.enqueue(b"p", name="t")
    for n in range(1, 4):
        await fail(store, task.task_id, n)
    record = await store.get(task.task_id)
    assert record is not None
    assert [1, 2, 3] == [h.attempt for h in record.history]
    assert ["boom 1", "boom 2", "boom 3"] == [h.error.message for h in record.history]
    assert all(len(h.error.traceback) == 2000 for h in record.history)
    assert record.history[-1].error.traceback.endswith("end3")
    for n in range(4, 13):
        await fail(store, task.task_id, n, final=n == 12)
    record = await store.get(task.task_id)
    assert record is not None
    assert list(range(3, 13)) == [h.attempt for h in record.history]
    assert record.error is not None
    assert record.error.message == "boom 12"
    assert len(record.error.traceback) == 5005
    # A success after failures keeps the history of the failed attempts.
    other = await store.enqueue(b"p", name="t")
    await fail(store, other.task_id, 1)
    (claim,) = await store.claim("default", worker="w")
    assert await store.ack(claim.task_id, claim.token, b"ok")
    done = await store.get(other.task_id)
    assert done is not None
    assert ([1], None) == ([h.attempt for h in done.history], done.error)
