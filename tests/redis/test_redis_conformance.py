"""The Redis store against the shared Backend conformance suite (real time, real Redis).

Redis times leases with its own clock, so the suite runs on real time with short leases
and ``advance`` really sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskmill.abc import Backend
from taskmill.redis import RedisStore
from taskmill.testing import BackendConformance

pytestmark = pytest.mark.real_time


class TestRedisStore(BackendConformance):
    lease = 1.0

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @pytest.fixture
    async def backend(self, redis_url: str) -> AsyncIterator[RedisStore]:
        store = await RedisStore.open(
            redis_url, lease=self.lease, max_worker_lost=self.max_worker_lost
        )
        async with store:
            yield store


async def test_redis_store_is_a_backend(redis_url: str) -> None:
    """RedisStore satisfies the Backend protocol (statically and at run time)."""
    async with await RedisStore.open(redis_url) as store:
        typed: Backend = store  # a static check: mypy verifies the protocol's signatures
        assert isinstance(typed, Backend)
