"""taskmill: one registered async task doing one INCR; submitted through the codec."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aredis
from common import COUNTER, URL

import taskmill as tm
from taskmill.payloads import PayloadCodec
from taskmill.redis import NewTask, RedisStore

registry = tm.TaskRegistry()
_client: aredis.Redis | None = None


@registry.task(name="incr")
async def incr(payload: str | None = None) -> None:
    global _client  # noqa: PLW0603 - one client per worker process, made in its loop
    if _client is None:
        _client = aredis.Redis.from_url(URL)
    await _client.incr(COUNTER)


async def enqueue(n: int, payload: str | None) -> dict[str, Any]:
    """Enqueue ``n`` jobs with ``enqueue_many`` (1,000 per call) and time it."""
    codec = PayloadCodec(registry)
    args = () if payload is None else (payload,)
    async with await RedisStore.open(URL) as store:
        started = time.perf_counter()
        for start in range(0, n, 1000):
            batch = [
                NewTask(payload=codec.encode(codec.build(incr, args, {})), name="incr")
                for _ in range(min(1000, n - start))
            ]
            await store.enqueue_many(batch)
        elapsed = time.perf_counter() - started
    return {"submit enqueue_many (codec, 1,000 per call)": n / elapsed}


async def submit_rates(n: int) -> dict[str, Any]:
    """Time ``DurableClient.submit`` awaited singly and ``submit_many`` (``n`` each)."""
    async with await RedisStore.open(URL) as store:
        client = tm.DurableClient(store, registry)
        started = time.perf_counter()
        for _ in range(n):
            await client.submit(incr)
        single = n / (time.perf_counter() - started)
        started = time.perf_counter()
        await client.submit_many((incr, (), {}) for _ in range(n))
        many = n / (time.perf_counter() - started)
    return {"submit awaited singly": single, "submit_many": many}
