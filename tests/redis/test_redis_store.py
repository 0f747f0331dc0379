"""RedisStore against a real redis-server: the store API, mirroring the SQLite store's tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

import redis
from taskmill import BackendError, BackendUnavailable, ConfigurationError, StateError, TaskNotFound
from taskmill.redis import (
    CancelOutcome,
    Claim,
    ErrorText,
    NewTask,
    RedisStore,
    Renewal,
    Status,
)
from taskmill.redis._conn import connect, insecure, redact

pytestmark = pytest.mark.real_time

ERROR = ErrorText(type="ValueError", message="boom", traceback="tb")


async def claim_one(store: RedisStore, lease: float | None = None) -> Claim:
    (claim,) = await store.claim("default", worker="w", lease=lease)
    return claim


class TestEnqueue:
    async def test_roundtrip(self, store: RedisStore) -> None:
        """An enqueued task is stored with its fields and found by id."""
        out = await store.enqueue(b"\x00payload\xff", name="mail.send", priority=3)
        record = await store.get(out.task_id)
        assert out.created
        assert record is not None
        assert (b"\x00payload\xff", "mail.send", 3) == (
            record.payload,
            record.name,
            record.priority,
        )
        assert Status.QUEUED == record.status
        assert (1, 0, 0) == (record.attempt, record.deliveries, record.worker_lost)

    async def test_given_id_is_idempotent(self, store: RedisStore) -> None:
        """Enqueueing an existing id is a no-op returning created=False."""
        first = await store.enqueue(b"a", name="t", task_id="job-1")
        second = await store.enqueue(b"b", name="t", task_id="job-1")
        assert ("job-1", True) == (first.task_id, first.created)
        assert ("job-1", False) == (second.task_id, second.created)
        record = await store.get("job-1")
        assert record is not None
        assert b"a" == record.payload

    async def test_enqueue_many_across_queues(self, store: RedisStore) -> None:
        """enqueue_many stores every task, in order, across queues."""
        tasks = [NewTask(payload=b"%d" % i, name="t", queue=f"q{i % 2}") for i in range(6)]
        out = await store.enqueue_many(tasks)
        assert 6 == len({o.task_id for o in out})
        assert ["q0", "q1"] == await store.queues()
        record = await store.get(out[3].task_id)
        assert record is not None
        assert ("q1", b"3") == (record.queue, record.payload)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"queue": "a{b}"},
            {"priority": 2**60},
            {"name": ""},
            {"run_at": dt.datetime(2030, 1, 1)},  # noqa: DTZ001 - naive on purpose
            {"unique_key": "k", "unique_scope": "forever"},
        ],
    )
    async def test_bad_arguments(self, store: RedisStore, kwargs: dict[str, object]) -> None:
        """Bad arguments raise ConfigurationError at the call."""
        args: dict[str, object] = {"name": "t", **kwargs}
        with pytest.raises(ConfigurationError):
            await store.enqueue(b"x", **args)  # type: ignore[arg-type]

    async def test_concurrent_submits_coalesce(self, store: RedisStore) -> None:
        """500 concurrent enqueues all land, each with its own id."""
        out = await asyncio.gather(*(store.enqueue(b"%d" % i, name="t") for i in range(500)))
        assert 500 == len({o.task_id for o in out})
        assert 500 == (await store.statistics()).by_status["queued"]


class TestClaimOrder:
    async def test_priority_then_fifo(self, store: RedisStore) -> None:
        """Lower priority first (go-worker's 1,10,5,90,150), FIFO within a priority."""
        for priority in (1, 10, 5, 90, 150, 5):
            await store.enqueue(b"%d" % priority, name="t", priority=priority)
        claims = await store.claim("default", worker="w", limit=10)
        assert [1, 5, 5, 10, 90, 150] == [c.priority for c in claims]
        fives = [c for c in claims if c.priority == 5]
        assert fives[0].enqueued_at <= fives[1].enqueued_at

    async def test_tokens_are_unique_and_leases_on_redis_clock(self, store: RedisStore) -> None:
        """Every delivery gets its own token; lease_until = Redis TIME + lease."""
        for _ in range(3):
            await store.enqueue(b"x", name="t")
        claims = await store.claim("default", worker="w", limit=3, lease=5)
        seconds, micros = await store.client.time()
        redis_now = seconds + micros / 1e6
        assert 3 == len({c.token for c in claims})
        assert all(abs(c.lease_until - (redis_now + 5)) < 0.5 for c in claims)

    async def test_claim_nothing(self, store: RedisStore) -> None:
        """An empty queue claims nothing at once without block."""
        assert [] == await store.claim(["default", "other"], worker="w", limit=5)

    async def test_block_wakes_on_submit(self, store: RedisStore) -> None:
        """A blocked claim wakes when a task is enqueued (no polling)."""
        waiter = asyncio.create_task(store.claim("default", worker="w", block=3.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await store.enqueue(b"x", name="t")
        claims = await waiter
        assert 1 == len(claims)
        assert time.monotonic() - started < 0.5

    async def test_scheduled_task_waits_for_its_time(self, store: RedisStore) -> None:
        """A task with run_at in the future is claimed only once due (on Redis' clock)."""
        seconds, micros = await store.client.time()
        due = seconds + micros / 1e6 + 0.6
        out = await store.enqueue(b"x", name="t", run_at=due)
        assert [] == await store.claim("default", worker="w")
        record = await store.get(out.task_id)
        assert record is not None
        assert Status.SCHEDULED == record.status
        claims = await store.claim("default", worker="w", block=3.0)
        seconds, micros = await store.client.time()
        assert 1 == len(claims)
        assert due <= seconds + micros / 1e6 < due + 0.5

    async def test_aware_datetime_in_the_past_is_due(self, store: RedisStore) -> None:
        """An aware datetime in the past is due at once."""
        await store.enqueue(b"x", name="t", run_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        assert 1 == len(await store.claim("default", worker="w"))


class TestFencing:
    async def test_ack_stores_result_and_is_idempotent(self, store: RedisStore) -> None:
        """ack ends succeeded with the result; a retried ack of the same claim is True."""
        out = await store.enqueue(b"x", name="t")
        claim = await claim_one(store)
        assert await store.ack(out.task_id, claim.token, b"result")
        assert await store.ack(out.task_id, claim.token, b"result")
        record = await store.result(out.task_id)
        assert (Status.SUCCEEDED, b"result") == (record.status, record.result)

    async def test_stale_token_is_refused_everywhere(self, store: RedisStore) -> None:
        """After a reclaim, the old token's renew/ack/nack/release/dead_letter are refused."""
        out = await store.enqueue(b"x", name="t")
        (old,) = await store.claim("default", worker="w", lease=0.1)
        await asyncio.sleep(0.25)
        report = await store.reclaim()
        assert (out.task_id,) == report.requeued
        (new,) = await store.claim("default", worker="w2")
        assert Renewal.LOST == await store.renew(out.task_id, old.token)
        assert not await store.ack(out.task_id, old.token, b"stale")
        assert not await store.nack(out.task_id, old.token, error=ERROR)
        assert not await store.release(out.task_id, old.token)
        assert not await store.dead_letter(out.task_id, old.token, "stale")
        assert not await store.ack_cancelled(out.task_id, old.token)
        assert await store.ack(out.task_id, new.token, b"fresh")
        record = await store.result(out.task_id)
        assert (b"fresh", 1) == (record.result, record.worker_lost)

    async def test_garbage_tokens_are_refused(self, store: RedisStore) -> None:
        """Tokens that are not this store's are simply stale."""
        out = await store.enqueue(b"x", name="t")
        await claim_one(store)
        for token in ("", "nope", "1.x:other", "1.x:{bad}"):
            assert not await store.ack(out.task_id, token)
            assert Renewal.LOST == await store.renew(out.task_id, token)

    async def test_renew_extends_the_lease(self, store: RedisStore) -> None:
        """A renewed lease is not reclaimed when the original would have expired."""
        await store.enqueue(b"x", name="t")
        claim = await claim_one(store, lease=0.3)
        for _ in range(3):
            await asyncio.sleep(0.15)
            assert Renewal.HELD == await store.renew(claim.task_id, claim.token, lease=0.3)
        assert () == (await store.reclaim()).requeued

    async def test_ack_many_mixed(self, store: RedisStore) -> None:
        """ack_many answers per item, in order, across queues."""
        await store.enqueue(b"a", name="t", queue="q1")
        await store.enqueue(b"b", name="t", queue="q2")
        claims = await store.claim(["q1", "q2"], worker="w", limit=2)
        items = [(c.task_id, c.token, None) for c in claims] + [("x", "1.y:q1", None)]
        assert [True, True, False] == await store.ack_many(items)


class TestFailures:
    async def test_nack_with_retry(self, store: RedisStore) -> None:
        """nack with retry_at -> retrying, attempt + 1, error kept; claimed again when due."""
        out = await store.enqueue(b"x", name="t")
        claim = await claim_one(store)
        seconds, micros = await store.client.time()
        retry_at = seconds + micros / 1e6 + 0.5
        assert await store.nack(out.task_id, claim.token, error=ERROR, retry_at=retry_at)
        record = await store.get(out.task_id)
        assert record is not None
        assert (Status.RETRYING, 2, ERROR) == (record.status, record.attempt, record.error)
        again = await store.claim("default", worker="w", block=3)
        assert 2 == again[0].attempt

    @pytest.mark.parametrize(
        ("status", "expected"), [("failed", Status.FAILED), ("timed_out", Status.TIMED_OUT)]
    )
    async def test_final_nack(self, store: RedisStore, status: str, expected: Status) -> None:
        """nack without retry_at ends the task with the given status."""
        out = await store.enqueue(b"x", name="t")
        claim = await claim_one(store)
        assert await store.nack(out.task_id, claim.token, error=ERROR, status=status)  # type: ignore[arg-type]
        record = await store.result(out.task_id)
        assert (expected, ERROR) == (record.status, record.error)

    async def test_release_goes_first_without_penalty(self, store: RedisStore) -> None:
        """release puts the task back at the front: same attempt, no worker-lost count."""
        first = await store.enqueue(b"1", name="t")
        await store.enqueue(b"2", name="t")
        claim = await claim_one(store)
        assert await store.release(first.task_id, claim.token)
        again = await claim_one(store)
        assert (first.task_id, 1, 0, 2) == (
            again.task_id,
            again.attempt,
            again.worker_lost,
            again.deliveries,
        )

    async def test_worker_lost_three_times_is_dead(self, store: RedisStore) -> None:
        """Three expired leases dead-letter the task with the reason."""
        out = await store.enqueue(b"x", name="t")
        for _ in range(3):
            await store.claim("default", worker="w", lease=0.05)
            await asyncio.sleep(0.1)
            await store.reclaim()
        record = await store.get(out.task_id)
        assert record is not None
        assert (Status.DEAD, 3, "worker lost 3 times") == (
            record.status,
            record.worker_lost,
            record.dead_reason,
        )

    async def test_dead_letters_requeue_and_purge(self, store: RedisStore) -> None:
        """Dead letters are listed, requeued (reset) and purged."""
        ids = [(await store.enqueue(b"x", name="t")).task_id for _ in range(3)]
        for claim in await store.claim("default", worker="w", limit=3):
            await store.dead_letter(claim.task_id, claim.token, "bad payload")
        dead = await store.dead_letters()
        assert sorted(ids) == sorted(r.task_id for r in dead)
        assert {"bad payload"} == {r.dead_reason for r in dead}
        assert await store.requeue_dead(ids[0])
        assert not await store.requeue_dead(ids[0])
        assert 1 == await store.purge_dead(ids[1])
        assert 1 == await store.purge_dead(everything=True)
        assert [] == await store.dead_letters()
        record = await store.get(ids[0])
        assert record is not None
        assert (Status.QUEUED, None) == (record.status, record.dead_reason)


class TestCancel:
    async def test_cancel_queued_scheduled_running_finished(self, store: RedisStore) -> None:
        """Queued/scheduled cancel at once; running is requested (seen on renew)."""
        queued = await store.enqueue(b"q", name="t", priority=1)
        later = await store.enqueue(b"s", name="t", run_at=4_000_000_000)
        running = await store.enqueue(b"r", name="t")
        claim = await claim_one(store)
        assert CancelOutcome.CANCELLED == await store.cancel(queued.task_id)
        assert CancelOutcome.CANCELLED == await store.cancel(later.task_id)
        assert CancelOutcome.REQUESTED == await store.cancel(running.task_id)
        assert Renewal.CANCEL_REQUESTED == await store.renew(running.task_id, claim.token)
        assert await store.ack_cancelled(running.task_id, claim.token)
        assert CancelOutcome.FINISHED == await store.cancel(running.task_id)
        assert [] == await store.claim("default", worker="w")
        with pytest.raises(TaskNotFound):
            await store.cancel("no-such-task")

    async def test_nack_after_cancel_request_cancels(self, store: RedisStore) -> None:
        """A failed attempt of a task asked to cancel ends cancelled, not retrying."""
        out = await store.enqueue(b"x", name="t")
        claim = await claim_one(store)
        await store.cancel(out.task_id)
        await store.nack(out.task_id, claim.token, error=ERROR, retry_at=0)
        assert Status.CANCELLED == (await store.result(out.task_id)).status


class TestUnique:
    async def test_running_scope_until_terminal(self, store: RedisStore) -> None:
        """The default scope dedups until the task ends, then frees the key."""
        first = await store.enqueue(b"1", name="t", unique_key="k")
        claim = await claim_one(store)
        assert first.task_id == (await store.enqueue(b"2", name="t", unique_key="k")).task_id
        await store.ack(first.task_id, claim.token)
        again = await store.enqueue(b"3", name="t", unique_key="k")
        assert again.created
        assert [b"tm:{default}:u:k"] == [
            k async for k in store.client.scan_iter("tm:{default}:u:*")
        ]

    async def test_queued_scope_frees_at_claim(self, store: RedisStore) -> None:
        """Scope 'queued' frees the key as soon as the task starts."""
        first = await store.enqueue(b"1", name="t", unique_key="k", unique_scope="queued")
        dup = await store.enqueue(b"2", name="t", unique_key="k", unique_scope="queued")
        assert (first.task_id, False) == (dup.task_id, dup.created)
        await claim_one(store)
        assert (await store.enqueue(b"3", name="t", unique_key="k", unique_scope="queued")).created

    async def test_done_scope_outlives_the_task(self, store: RedisStore) -> None:
        """Scope 'done' returns the finished task until the key's TTL passes."""
        kwargs: dict[str, object] = {"unique_key": "k", "unique_scope": "done", "unique_ttl": 0.3}
        first = await store.enqueue(b"1", name="t", **kwargs)  # type: ignore[arg-type]
        claim = await claim_one(store)
        await store.ack(first.task_id, claim.token)
        assert not (await store.enqueue(b"2", name="t", **kwargs)).created  # type: ignore[arg-type]
        await asyncio.sleep(0.4)
        assert (await store.enqueue(b"3", name="t", **kwargs)).created  # type: ignore[arg-type]

    async def test_ttl_bounds_a_live_key(self, store: RedisStore) -> None:
        """unique_ttl bounds how long a live task holds its key."""
        await store.enqueue(b"1", name="t", unique_key="k", unique_ttl=0.2)
        await asyncio.sleep(0.3)
        assert (await store.enqueue(b"2", name="t", unique_key="k")).created

    async def test_requeue_dead_with_taken_key(self, store: RedisStore) -> None:
        """Requeueing a dead letter whose key a live task holds raises StateError."""
        first = await store.enqueue(b"1", name="t", unique_key="k")
        claim = await claim_one(store)
        await store.dead_letter(first.task_id, claim.token, "bad")
        await store.enqueue(b"2", name="t", unique_key="k")
        with pytest.raises(StateError):
            await store.requeue_dead(first.task_id)

    async def test_thousand_concurrent_submits_one_key(self, redis_url: str) -> None:
        """T11: 1,000 concurrent submits with one key from 4 stores -> exactly one task."""
        stores = [await RedisStore.open(redis_url) for _ in range(4)]
        try:
            outs = await asyncio.gather(
                *(stores[i % 4].enqueue(b"x", name="t", unique_key="one") for i in range(1000))
            )
            assert 1 == sum(o.created for o in outs)
            assert 1 == len({o.task_id for o in outs})
            assert 1 == (await stores[0].statistics()).total
        finally:
            for opened in stores:
                await opened.close()


class TestResults:
    async def test_wait_across_stores(self, store: RedisStore, redis_url: str) -> None:
        """wait() in one store wakes when another store acks (pub/sub, no polling)."""
        out = await store.enqueue(b"x", name="t")
        async with await RedisStore.open(redis_url) as worker:
            waiter = asyncio.create_task(store.wait(out.task_id, timeout=5))
            await asyncio.sleep(0.1)
            (claim,) = await worker.claim("default", worker="w")
            started = time.monotonic()
            await worker.ack(claim.task_id, claim.token, b"done")
            record = await waiter
            assert time.monotonic() - started < 0.5
        assert b"done" == record.result

    async def test_wait_timeout_and_missing(self, store: RedisStore) -> None:
        """wait() raises TimeoutError in time, TaskNotFound for unknown ids."""
        out = await store.enqueue(b"x", name="t")
        with pytest.raises(TimeoutError):
            await store.wait(out.task_id, timeout=0.2)
        with pytest.raises(TaskNotFound):
            await store.wait("missing", timeout=1)
        with pytest.raises(StateError):
            await store.result(out.task_id)

    async def test_results_ttl_and_purge(self, redis_url: str) -> None:
        """Terminal records expire after results_ttl (by the sweep) or by purge_results."""
        async with await RedisStore.open(redis_url, results_ttl=0.2) as store:
            out = await store.enqueue(b"x", name="t")
            (claim,) = await store.claim("default", worker="w")
            await store.ack(out.task_id, claim.token)
            await asyncio.sleep(0.3)
            assert 1 == (await store.reclaim()).expired
            assert await store.get(out.task_id) is None
        async with await RedisStore.open(redis_url, results_ttl=None) as store:
            out = await store.enqueue(b"x", name="t")
            (claim,) = await store.claim("default", worker="w")
            await store.ack(out.task_id, claim.token)
            assert 0 == await store.purge_results(60)
            assert 1 == await store.purge_results(0)

    async def test_list_and_statistics(self, store: RedisStore) -> None:
        """list() filters by status and queue; statistics() counts per status and queue."""
        await store.enqueue(b"1", name="t")
        await store.enqueue(b"2", name="t", queue="other")
        await store.enqueue(b"3", name="t", run_at=4_000_000_000)
        await claim_one(store)
        stats = await store.statistics()
        assert (1, 1, 1, 3) == (
            stats.by_status["queued"],
            stats.by_status["scheduled"],
            stats.running,
            stats.total,
        )
        assert {"running": 1, "scheduled": 1} == dict(stats.by_queue["default"])
        assert 4_000_000_000 == stats.next_scheduled
        queued = await store.list(status="queued")
        assert ["other"] == [r.queue for r in queued]
        assert 3 == len(await store.list())
        assert 1 == len(await store.list(queue="other"))


class TestMalformed:
    async def test_garbage_records_are_dead_lettered(self, store: RedisStore) -> None:
        """Records written straight into Redis that cannot be delivered are dead-lettered."""
        good = await store.enqueue(b"ok", name="t")
        raw = store.client
        garbage = {
            "g1": b"not a record at all",
            "g2": msgpack.packb([b"payload", b"q", 0, b"notanumber", 1]),
            "g3": msgpack.packb([b"payload", b"q", 0, 1_700_000_000_000, 999]),
            "g4": msgpack.packb([b"payload", b"Z", 0, 1_700_000_000_000, 1]),
            "g5": msgpack.packb([b"payload", b"q", 0, 1, 1])[:-3],
        }
        for task_id, value in garbage.items():
            await raw.hset("tm:{default}:d", task_id, value)
            await raw.rpush("tm:{default}:r:0", task_id)
        await raw.rpush("tm:{default}:r:0", "ghost")
        claims = await store.claim("default", worker="w", limit=20)
        assert [good.task_id] == [c.task_id for c in claims]
        dead = {r.task_id: r.dead_reason for r in await store.dead_letters()}
        assert set(garbage) == set(dead)
        assert all(reason and reason.startswith("malformed record") for reason in dead.values())
        assert 5 == (await store.statistics()).malformed


class TestOperations:
    async def test_epoch_marker_detects_lost_data(self, store: RedisStore, redis_url: str) -> None:
        """A Redis that comes back empty is reported once, then the store carries on."""
        await store.check_epoch()
        flusher = redis.Redis.from_url(redis_url)
        flusher.flushall()
        flusher.close()
        with pytest.raises(BackendError, match="lost its data"):
            await store.reclaim()
        await store.check_epoch()
        assert 1 == (await store.statistics()).epoch_losses

    async def test_unreachable_server(self, dead_url: str) -> None:
        """Opening a store on a dead port raises BackendUnavailable (a ConnectionError)."""
        with pytest.raises(BackendUnavailable) as caught:
            await RedisStore.open(dead_url, retries=0)
        assert isinstance(caught.value, ConnectionError)

    def test_insecure_url_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        """A non-loopback URL without a password logs a warning; loopback does not."""
        assert insecure("redis://10.0.0.5:6379/0")
        assert not insecure("redis://:secret@10.0.0.5:6379/0")
        assert not insecure("redis://127.0.0.1:6379/0")
        assert not insecure("redis://[::1]:6379/0")
        with caplog.at_level(logging.WARNING):
            _ = connect("redis://10.0.0.5:6379/0", socket_timeout=1, retries=0, max_connections=10)
        assert "no password" in caplog.text
        assert "redis://u:***@h:1/0" == redact("redis://u:pw@h:1/0")

    def test_bad_url(self) -> None:
        """A URL of another scheme is a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            _ = connect("http://x", socket_timeout=1, retries=0, max_connections=10)

    async def test_credentials_are_used(self, redis_factory: Callable[..., Any]) -> None:
        """A password in the URL authenticates; a wrong one is refused."""
        server = redis_factory()
        client = server.client()
        client.config_set("requirepass", "s3cret")
        client.close()
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        async with await RedisStore.open(url) as store:
            assert (await store.enqueue(b"x", name="t")).created
        with pytest.raises(BackendError):
            await RedisStore.open(f"redis://:wrong@127.0.0.1:{server.port}/0", retries=0)

    def test_import_taskmill_does_not_import_redis(self) -> None:
        """`import taskmill` pulls in neither redis-py nor taskmill.redis."""
        code = (
            "import sys, taskmill; print('redis' in sys.modules, 'taskmill.redis' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "False False" == out.stdout.strip()

    async def test_memory_per_queued_task(self, store: RedisStore) -> None:
        """A queued task with a 100-byte payload costs <= 200 bytes of Redis memory."""
        await store.enqueue(b"warm", name="noop")
        before = int((await store.client.info("memory"))["used_memory_dataset"])
        for _ in range(4):
            await store.enqueue_many(
                [NewTask(payload=b"p" * 100, name="noop") for _ in range(5000)]
            )
        after = int((await store.client.info("memory"))["used_memory_dataset"])
        # About 200 B (see docs/redis.md "Memory"); small batches pay more hash-table slack.
        # The dataset figure leaves out the connection's query buffer, which a big batch
        # argument leaves behind until Redis trims it.
        assert (after - before) / 20_000 <= 215

    async def test_repr_and_close(self, redis_url: str) -> None:
        """The repr shows the state; close is idempotent."""
        store = await RedisStore.open(redis_url)
        assert "open" in repr(store)
        await store.close()
        await store.close()
        assert "closed" in repr(store)
