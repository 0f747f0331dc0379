"""arq: one async function doing one INCR; WorkerSettings for the ``arq`` CLI."""

from __future__ import annotations

from typing import Any, ClassVar

import redis.asyncio as aredis
from arq import create_pool
from arq.connections import RedisSettings
from common import COUNTER, URL

_client: aredis.Redis | None = None


async def incr(ctx: dict[str, Any], payload: str | None = None) -> None:
    global _client  # noqa: PLW0603 - one client per worker process, made in its loop
    if _client is None:
        _client = aredis.Redis.from_url(URL)
    await _client.incr(COUNTER)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [incr]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = 100


async def enqueue(n: int, payload: str | None) -> None:
    pool = await create_pool(WorkerSettings.redis_settings)
    for _ in range(n):
        await pool.enqueue_job("incr", payload)
    await pool.aclose()
