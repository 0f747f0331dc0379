"""taskiq: taskiq-redis ListQueueBroker with one async task doing one INCR."""

from __future__ import annotations

import redis.asyncio as aredis
from common import COUNTER, URL
from taskiq_redis import ListQueueBroker

broker = ListQueueBroker(url=URL)
_client: aredis.Redis | None = None


@broker.task
async def incr(payload: str | None = None) -> None:
    global _client  # noqa: PLW0603 - one client per worker process, made in its loop
    if _client is None:
        _client = aredis.Redis.from_url(URL)
    await _client.incr(COUNTER)


async def enqueue(n: int, payload: str | None) -> None:
    await broker.startup()
    for _ in range(n):
        await incr.kiq(payload)
    await broker.shutdown()
