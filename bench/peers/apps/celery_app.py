"""Celery: Redis broker, no result backend, one task doing one INCR."""

from __future__ import annotations

from celery import Celery  # type: ignore[import-untyped]
from common import COUNTER, URL

import redis

app = Celery("bench", broker=URL)
_client = redis.Redis.from_url(URL)


@app.task(name="incr")  # type: ignore[untyped-decorator]
def incr(payload: str | None = None) -> None:
    _client.incr(COUNTER)


def enqueue(n: int, payload: str | None) -> None:
    for _ in range(n):
        incr.delay(payload)
