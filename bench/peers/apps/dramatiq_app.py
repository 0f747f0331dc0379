"""dramatiq: RedisBroker with one actor doing one INCR."""

from __future__ import annotations

import dramatiq
from common import COUNTER, URL
from dramatiq.brokers.redis import RedisBroker

import redis

broker = RedisBroker(url=URL)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(URL)


@dramatiq.actor
def incr(payload: str | None = None) -> None:
    _client.incr(COUNTER)


def enqueue(n: int, payload: str | None) -> None:
    for _ in range(n):
        incr.send(payload)
