"""SAQ: one async function doing one INCR; ``settings`` for the ``saq`` CLI."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis
from common import COUNTER, URL
from saq import Queue

queue = Queue.from_url(URL)
_client: aredis.Redis | None = None


async def incr(ctx: dict[str, Any], *, payload: str | None = None) -> None:
    global _client  # noqa: PLW0603 - one client per worker process, made in its loop
    if _client is None:
        _client = aredis.Redis.from_url(URL)
    await _client.incr(COUNTER)


settings = {"queue": queue, "functions": [incr], "concurrency": 100}


async def enqueue(n: int, payload: str | None) -> None:
    await queue.connect()
    for _ in range(n):
        await queue.enqueue("incr", payload=payload)
    await queue.disconnect()
