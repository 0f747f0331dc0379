"""The dashboard over a real Redis store (the private redis-server of tests/redis)."""

from __future__ import annotations

import re

import pytest

from taskmill.redis import RedisStore
from taskmill.web import create_dashboard

from .web_support import HTML, client_for, fill

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(30)]


async def test_pages_filters_task_page_and_requeue(redis_url: str) -> None:
    """Every page renders over Redis; the task page decodes; requeue changes the store."""
    async with await RedisStore.open(redis_url, lease=5.0) as store:
        filled = await fill(store)
        app = create_dashboard(store, refresh=0.5)
        async with app.router.lifespan_context(app), client_for(app, headers=HTML) as client:
            for path in ("/", "/tasks", "/scheduled", "/workers", "/dead", "/charts", "/health"):
                response = await client.get(path)
                assert 200 == response.status_code, (path, response.text)
                assert "<script>" not in response.text
            overview = (await client.get("/")).text
            assert "worker-A" in overview
            dead = (await client.get("/tasks", params={"status": "dead"})).text
            assert filled.dead in dead
            assert filled.queued not in dead
            task = (await client.get(f"/tasks/{filled.retrying}")).text
            assert "<b>ValueError</b>: bad &lt;script&gt;" in task
            page = (await client.get("/dead")).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token is not None
            response = await client.post(
                "/dead/requeue", data={"id": filled.dead, "csrf_token": token.group(1)}
            )
            assert 303 == response.status_code
        record = await store.get(filled.dead)
        assert record is not None
        assert "queued" == record.status
