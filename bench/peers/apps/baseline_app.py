"""Baseline: no queue at all, 100 coroutines doing the jobs' INCRs with redis-py asyncio.

Run as the "worker" (``python baseline_app.py``, the job count in ``BENCH_JOBS``): the
floor that the job body alone costs, without any queue.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aredis
from common import COUNTER, URL


def enqueue(n: int, payload: str | None) -> None:
    """Nothing to enqueue: the baseline has no queue."""


async def run(count: int, concurrency: int = 100) -> None:
    client = aredis.Redis.from_url(URL)
    left = [count]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            await client.incr(COUNTER)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await client.aclose()
    await asyncio.Event().wait()  # like a worker: stay until killed


if __name__ == "__main__":
    asyncio.run(run(int(os.environ["BENCH_JOBS"])))
