"""Benchmark the Redis store on its own redis-server (a free loopback port, persistence off).

Measures, in one run on one server: submit (awaited singly, 100 concurrent submitters,
batched), processing throughput with batched claims + pipelined acks (no-op tasks),
worker CPU per task, pickup latency on an idle worker, and Redis memory per queued and
per scheduled task (100-byte payload) - next to two bare redis-py baselines (LPUSH
awaited singly; a BLMOVE + ack consumer). Peers (huey, dramatiq, ...) are not run here.

Usage: .venv/bin/python bench/bench_redis.py [--tasks 20000] [--memory-tasks 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aredis

import redis
from taskmill import BackendError
from taskmill.redis import NewTask, RedisStore

PAYLOAD = os.urandom(100)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port)]
    args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    client.close()
    return proc, port


async def reset(store: RedisStore) -> None:
    """Empty the server and let the store adopt the new epoch marker."""
    await store.client.flushdb()
    with contextlib.suppress(BackendError):
        await store.check_epoch()


async def rate(count: int, body: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await body()
    return count / (time.perf_counter() - started)


async def bare_lpush(url: str, n: int) -> float:
    client = aredis.Redis.from_url(url)

    async def body() -> None:
        for _ in range(n):
            await client.lpush("bench:bare", PAYLOAD)

    result = await rate(n, body)
    await client.aclose()
    return result


async def bare_blmove_consumer(url: str, n: int) -> float:
    client = aredis.Redis.from_url(url)
    for start in range(0, n, 5000):
        await client.lpush("bench:src", *[PAYLOAD] * min(5000, n - start))

    async def body() -> None:
        for _ in range(n):
            item = await client.blmove("bench:src", "bench:work", 1, "RIGHT", "LEFT")
            await client.lrem("bench:work", 1, item)  # type: ignore[arg-type]  # the ack

    result = await rate(n, body)
    await client.aclose()
    return result


async def submits(store: RedisStore, n: int) -> dict[str, float]:
    async def single() -> None:
        for _ in range(n // 4):
            await store.enqueue(PAYLOAD, name="noop")

    async def concurrent() -> None:
        async def submitter() -> None:
            for _ in range(n // 100):
                await store.enqueue(PAYLOAD, name="noop")

        await asyncio.gather(*(submitter() for _ in range(100)))

    async def batched() -> None:
        for _ in range(n // 1000):
            await store.enqueue_many([NewTask(payload=PAYLOAD, name="noop") for _ in range(1000)])

    return {
        "submit, awaited singly (tasks/s)": await rate(n // 4, single),
        "submit, 100 concurrent submitters (tasks/s)": await rate(n // 100 * 100, concurrent),
        "submit, batched 1,000 per call (tasks/s)": await rate(n // 1000 * 1000, batched),
    }


async def processing(store: RedisStore, n: int) -> dict[str, float]:
    await reset(store)
    for _ in range(n // 1000):
        await store.enqueue_many([NewTask(payload=PAYLOAD, name="noop") for _ in range(1000)])
    done = 0
    cpu = time.process_time()
    started = time.perf_counter()
    while done < n:
        claims = await store.claim("default", worker="bench", limit=200)
        if not claims:
            break
        await store.ack_many([(c.task_id, c.token, None) for c in claims])
        done += len(claims)
    elapsed = time.perf_counter() - started
    return {
        "processing, claim 200 + ack_many (tasks/s)": done / elapsed,
        "worker CPU per task (us)": (time.process_time() - cpu) / done * 1e6,
    }


async def pickup(url: str, samples: int) -> dict[str, float]:
    latencies: list[float] = []
    async with await RedisStore.open(url) as producer, await RedisStore.open(url) as worker:
        sent: dict[str, float] = {}

        async def consume() -> None:
            while len(latencies) < samples:
                for claim in await worker.claim("lat", worker="idle", block=2.0):
                    latencies.append(time.perf_counter() - sent[claim.task_id])
                    await worker.ack(claim.task_id, claim.token)

        consumer = asyncio.create_task(consume())
        for i in range(samples):
            await asyncio.sleep(0.01)
            task_id = f"lat{i}"
            sent[task_id] = time.perf_counter()
            await producer.enqueue(PAYLOAD, name="noop", queue="lat", task_id=task_id)
        await consumer
    ordered = sorted(latencies)
    return {
        "pickup latency p50 (ms)": statistics.median(ordered) * 1000,
        "pickup latency p99 (ms)": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


async def memory(store: RedisStore, n: int) -> dict[str, float]:
    out = {}
    for label, run_at in (("queued", None), ("scheduled", 4_000_000_000.0)):
        await reset(store)
        await store.enqueue(b"warm", name="noop")
        before = int((await store.client.info("memory"))["used_memory_dataset"])
        for _ in range(n // 5000):
            await store.enqueue_many(
                [NewTask(payload=PAYLOAD, name="noop", run_at=run_at) for _ in range(5000)]
            )
        after = int((await store.client.info("memory"))["used_memory_dataset"])
        out[f"Redis memory per {label} task, {n:,} tasks (bytes)"] = (after - before) / n
    return out


async def main(args: argparse.Namespace) -> None:
    directory = tempfile.mkdtemp(prefix="tm-bench-redis-")
    proc, port = start_server(directory)
    url = f"redis://127.0.0.1:{port}/0"
    rows: dict[str, float] = {}
    try:
        rows["baseline: bare LPUSH awaited singly (ops/s)"] = await bare_lpush(url, args.tasks // 4)
        rows["baseline: bare BLMOVE + ack consumer (tasks/s)"] = await bare_blmove_consumer(
            url, args.tasks // 4
        )
        store = await RedisStore.open(url)
        await reset(store)
        rows.update(await submits(store, args.tasks))
        rows.update(await processing(store, args.tasks))
        rows.update(await pickup(url, args.latency_samples))
        rows.update(await memory(store, args.memory_tasks))
        await store.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    width = max(len(k) for k in rows)
    print(f"{'metric':<{width}}  value")
    for key, value in rows.items():
        print(f"{key:<{width}}  {value:,.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--memory-tasks", type=int, default=200_000)
    asyncio.run(main(parser.parse_args()))
