"""A producer process for the unique-key burst: open the store, wait for ``go``, submit.

Prints ``ready`` once connected, reads one line from stdin (so several producers start
their bursts together), then
submits ``COUNT`` tasks at once through ``DurableClient`` with one unique key and prints
one JSON line: ``[[task_id, created], ...]``.

Usage: python burst_producer.py URL KEY COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from durable_worker import registry

import taskmill as tm
from taskmill.redis import RedisStore


async def main(url: str, key: str, count: int) -> None:
    async with await RedisStore.open(url) as store:
        client = tm.DurableClient(store, registry).with_options(unique_key=key)
        await store.statistics()  # connected
        print("ready", flush=True)  # noqa: T201 - the process's output
        await asyncio.to_thread(sys.stdin.readline)
        handles = await asyncio.gather(*(client.submit("ok", key) for _ in range(count)))
    print(json.dumps([[h.id, h.created] for h in handles]))  # noqa: T201 - the process's output


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
