"""Helpers for the dashboard tests: a store with one task in every state, an ASGI client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from taskmill.payloads import PayloadCodec
from taskmill.sqlite import ErrorText

EVIL = "<script>alert('x')</script>"


@dataclass
class Filled:
    """The ids of the tasks `fill` created, by state."""

    queued: str
    running: str
    retrying: str
    succeeded: str
    dead: str
    scheduled: str
    mail: str


async def fill(store: Any, codec: PayloadCodec | None = None) -> Filled:
    """One task per state; arguments, results and errors carry `<script>` text."""
    codec = codec or PayloadCodec()

    async def submit(name: str, *args: object, queue: str = "default", **options: Any) -> str:
        envelope = codec.build(name, list(args), {"note": EVIL}, queue=queue, **options)
        options_ = envelope.options
        done = await store.enqueue(
            codec.encode(envelope),
            name=envelope.task,
            queue=options_.queue,
            priority=options_.priority,
            run_at=options_.scheduled_at,
            task_id=envelope.id,
        )
        return str(done.task_id)

    running = await submit("work.run", 1, queue="busy")
    [claim] = await store.claim(["busy"], worker="worker-A")
    assert claim.task_id == running
    retrying = await submit("work.flaky", EVIL, queue="flaky")
    [flaky] = await store.claim(["flaky"], worker="worker-B")
    error = ErrorText(type="ValueError", message=f"bad {EVIL}", traceback=f"Traceback\n  {EVIL}")
    await store.nack(flaky.task_id, flaky.token, error=error, retry_at=4_000_000_000.0)
    succeeded = await submit("work.ok", 2, queue="done")
    [ok] = await store.claim(["done"], worker="worker-C")
    await store.ack(ok.task_id, ok.token, codec.encode_result({"answer": 42, "html": EVIL}))
    dead = await submit("work.dead", 3, queue="graveyard")
    [doomed] = await store.claim(["graveyard"], worker="worker-D")
    await store.dead_letter(doomed.task_id, doomed.token, f"poison {EVIL}")
    scheduled = await submit("work.later", 4, delay=3600.0)
    mail = await submit("mail.send", "ada@example.com", queue="mail")
    queued = await submit("work.run", 5)
    return Filled(
        queued=queued,
        running=running,
        retrying=retrying,
        succeeded=succeeded,
        dead=dead,
        scheduled=scheduled,
        mail=mail,
    )


def client_for(app: Starlette, **kwargs: Any) -> httpx.AsyncClient:
    """An in-process client (no socket); runs on the test's (virtual-time) loop."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://dash.test", **kwargs)


HTML = {"accept": "text/html"}
