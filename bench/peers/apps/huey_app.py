"""huey: RedisHuey with one task doing one INCR."""

from __future__ import annotations

from common import COUNTER, URL
from huey import RedisHuey  # type: ignore[import-untyped]

import redis

huey = RedisHuey("bench", url=URL)
_client = redis.Redis.from_url(URL)


@huey.task()  # type: ignore[untyped-decorator]
def incr(payload: str | None = None) -> None:
    _client.incr(COUNTER)


def enqueue(n: int, payload: str | None) -> None:
    for _ in range(n):
        incr(payload)
