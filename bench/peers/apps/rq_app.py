"""RQ: one function doing one INCR, enqueued on the ``bench`` queue."""

from __future__ import annotations

from common import COUNTER, URL
from rq import Queue

import redis

_client = redis.Redis.from_url(URL)


def incr(payload: str | None = None) -> None:
    _client.incr(COUNTER)


def enqueue(n: int, payload: str | None) -> None:
    queue = Queue("bench", connection=redis.Redis.from_url(URL))
    for _ in range(n):
        queue.enqueue(incr, payload)
