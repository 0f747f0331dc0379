"""The dashboard over a real SQLite store, in process (httpx's ASGI transport, virtual time)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from taskmill import Health
from taskmill._errors import ConfigurationError
from taskmill.sqlite import SqliteStore
from taskmill.web import create_dashboard

from .web_support import EVIL, HTML, Filled, client_for

pytestmark = pytest.mark.timeout(30)

PAGES = ("/", "/tasks", "/scheduled", "/workers", "/health", "/dead", "/charts")


@pytest.fixture
async def dash(store: SqliteStore) -> AsyncIterator[Starlette]:
    app = create_dashboard(store, refresh=1.0, title="Test mill")
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(dash: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(dash, headers=HTML) as opened:
        yield opened


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def assert_escaped(html: str) -> None:
    """No `<script>` tag but the dashboard's own script file."""
    tags = re.findall(r"<script[^>]*>", html, flags=re.IGNORECASE)
    assert all('src="' in tag and "/static/dashboard.js" in tag for tag in tags), tags
    assert "alert('x')" not in html
    assert "<script>" not in html


class TestPages:
    @pytest.mark.parametrize("path", PAGES)
    async def test_every_page_renders(
        self, client: httpx.AsyncClient, filled: Filled, path: str
    ) -> None:
        """Each page answers 200 with the title and the navigation."""
        response = await client.get(path)
        assert 200 == response.status_code, response.text
        assert "Test mill" in response.text
        assert 'href="/dead"' in response.text

    async def test_overview_shows_queues_counts_and_running(
        self, client: httpx.AsyncClient, filled: Filled
    ) -> None:
        """Queues with depth, counts by status, the running task with its worker."""
        html = (await client.get("/")).text
        for queue in ("busy", "flaky", "done", "graveyard", "mail", "default"):
            assert f'href="/tasks?queue={queue}"' in html
        assert '<td data-live="by_status.dead">1</td>' in html
        assert '<td data-live="by_status.running">1</td>' in html
        assert "worker-A" in html
        assert filled.running in html

    async def test_task_page_shows_args_result_and_error(
        self, client: httpx.AsyncClient, filled: Filled
    ) -> None:
        """Arguments, kwargs, options, the last error with traceback, attempts, deliveries."""
        html = (await client.get(f"/tasks/{filled.retrying}")).text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
        assert "<b>ValueError</b>: bad &lt;script&gt;" in html
        assert "Traceback\n  &lt;script&gt;" in html
        assert "<dt>attempt</dt><dd>2</dd>" in html
        assert "<dt>deliveries</dt><dd>1 " in html
        assert '<section id="history">' in html
        assert "attempt 1: <b>ValueError</b>: bad &lt;script&gt;" in html
        assert "&#34;queue&#34;: &#34;flaky&#34;" in html
        result = (await client.get(f"/tasks/{filled.succeeded}")).text
        assert "&#34;answer&#34;: 42" in result
        dead = (await client.get(f"/tasks/{filled.dead}")).text
        assert "poison &lt;script&gt;" in dead

    async def test_unknown_task_is_404(self, client: httpx.AsyncClient) -> None:
        """A missing id is a 404 page that names it (escaped)."""
        response = await client.get("/tasks/<b>nope")
        assert 404 == response.status_code
        assert "&lt;b&gt;nope" in response.text

    async def test_undecodable_payload_shows_reason(
        self, client: httpx.AsyncClient, store: SqliteStore
    ) -> None:
        """Bytes that are no envelope show the codec's reason and the raw bytes."""
        task_id = (await store.enqueue(b"<script>raw</script>", name="raw")).task_id
        html = (await client.get(f"/tasks/{task_id}")).text
        assert "The payload did not decode: malformed envelope" in html
        assert "&lt;script&gt;raw&lt;/script&gt;" in html

    @pytest.mark.parametrize("path", PAGES)
    async def test_script_in_data_is_escaped_everywhere(
        self, client: httpx.AsyncClient, filled: Filled, path: str
    ) -> None:
        """`<script>` from arguments, results, errors and reasons never appears raw."""
        assert_escaped((await client.get(path)).text)
        for task_id in (filled.retrying, filled.succeeded, filled.dead, filled.queued):
            assert_escaped((await client.get(f"/tasks/{task_id}")).text)
        assert_escaped((await client.get("/tasks", params={"q": EVIL})).text)

    async def test_scheduled_lists_future_tasks_soonest_first(
        self, client: httpx.AsyncClient, filled: Filled
    ) -> None:
        """The delayed task and the waiting retry, with the delayed one (sooner) first."""
        html = (await client.get("/scheduled")).text
        assert filled.scheduled in html
        assert filled.retrying in html
        assert html.index(filled.scheduled) < html.index(filled.retrying)
        assert filled.queued not in html

    async def test_workers_derived_from_running_tasks(
        self, client: httpx.AsyncClient, filled: Filled
    ) -> None:
        """Only worker-A holds a lease (the others finished or released theirs)."""
        html = (await client.get("/workers")).text
        assert "worker-A" in html
        assert "worker-C" not in html

    async def test_health_tree_rendered(self, store: SqliteStore) -> None:
        """A given health tree shows every node with its level and message."""
        root = Health.root("app")
        root.scope("db").ok("connected")
        root.scope("mailer").degraded("smtp <down>", ValueError("refused"))
        app = create_dashboard(store, health=root)
        async with client_for(app) as client:
            html = (await client.get("/health")).text
        assert "degraded" in html
        assert "connected" in html
        assert "smtp &lt;down&gt;" in html
        assert "ValueError: refused" in html

    async def test_charts_show_svg(self, client: httpx.AsyncClient, filled: Filled) -> None:
        """Both charts render as inline SVG."""
        html = (await client.get("/charts")).text
        assert 2 == html.count("<svg ")


class TestFilters:
    async def test_status_filter(self, client: httpx.AsyncClient, filled: Filled) -> None:
        """status=dead lists only the dead letter."""
        html = (await client.get("/tasks", params={"status": "dead"})).text
        assert filled.dead in html
        assert filled.queued not in html

    async def test_queue_and_name_filters(self, client: httpx.AsyncClient, filled: Filled) -> None:
        """queue= and name= narrow the list."""
        html = (await client.get("/tasks", params={"queue": "mail"})).text
        assert filled.mail in html
        assert filled.queued not in html
        html = (await client.get("/tasks", params={"name": "work.run"})).text
        assert filled.queued in html
        assert filled.running in html
        assert filled.mail not in html

    async def test_search_by_name_substring_and_id(
        self, client: httpx.AsyncClient, filled: Filled
    ) -> None:
        """q= matches a part of the name or the id."""
        html = (await client.get("/tasks", params={"q": "MAIL"})).text
        assert filled.mail in html
        assert filled.queued not in html
        html = (await client.get("/tasks", params={"q": filled.dead})).text
        assert filled.dead in html
        assert filled.mail not in html

    async def test_bad_status_is_400(self, client: httpx.AsyncClient) -> None:
        """An unknown status is refused with the allowed ones."""
        response = await client.get("/tasks", params={"status": "bogus"})
        assert 400 == response.status_code
        assert "status must be one of" in response.text

    async def test_pages_newest_first(self, client: httpx.AsyncClient, store: SqliteStore) -> None:
        """60 tasks: page 0 has the newest 50, page 1 the oldest 10."""
        ids = [(await store.enqueue(b"[]", name=f"t{i}")).task_id for i in range(60)]
        first = (await client.get("/tasks")).text
        second = (await client.get("/tasks", params={"page": "1"})).text
        assert ids[-1] in first
        assert ids[0] not in first
        assert ids[0] in second
        assert first.index(ids[-1]) < first.index(ids[-2])


class TestActions:
    async def test_requeue_needs_csrf(
        self, client: httpx.AsyncClient, store: SqliteStore, filled: Filled
    ) -> None:
        """Missing or forged tokens get 403 and change nothing."""
        await client.get("/dead")
        missing = await client.post("/dead/requeue", data={"id": filled.dead})
        forged = await client.post(
            "/dead/requeue", data={"id": filled.dead, "csrf_token": "abc.def"}
        )
        assert 403 == missing.status_code
        assert 403 == forged.status_code
        record = await store.get(filled.dead)
        assert record is not None
        assert "dead" == record.status

    async def test_csrf_token_of_another_dashboard_is_refused(
        self, store: SqliteStore, filled: Filled
    ) -> None:
        """A token signed by another dashboard's key does not count, cookie or not."""
        other = create_dashboard(store)
        mine = create_dashboard(store)
        async with client_for(other) as client:
            token = csrf_of((await client.get("/dead")).text)
        async with client_for(mine) as client:
            client.cookies.set("taskmill_csrf", token)
            response = await client.post(
                "/dead/requeue", data={"id": filled.dead, "csrf_token": token}
            )
        assert 403 == response.status_code

    async def test_requeue(
        self, client: httpx.AsyncClient, store: SqliteStore, filled: Filled
    ) -> None:
        """Requeue puts the dead letter back in the queue and says so."""
        token = csrf_of((await client.get("/dead")).text)
        response = await client.post("/dead/requeue", data={"id": filled.dead, "csrf_token": token})
        assert 303 == response.status_code
        assert response.headers["location"].startswith("/dead?notice=requeued")
        record = await store.get(filled.dead)
        assert record is not None
        assert "queued" == record.status
        page = (await client.get(response.headers["location"])).text
        assert f"Requeued {filled.dead}" in page

    async def test_purge_one_needs_confirmation(
        self, client: httpx.AsyncClient, store: SqliteStore, filled: Filled
    ) -> None:
        """The confirm page asks; the POST without confirm=yes is refused; with it, purges."""
        page = (await client.get("/dead/purge", params={"id": filled.dead})).text
        assert "This cannot be undone" in page
        token = csrf_of(page)
        refused = await client.post("/dead/purge", data={"id": filled.dead, "csrf_token": token})
        assert 400 == refused.status_code
        assert await store.get(filled.dead) is not None
        done = await client.post(
            "/dead/purge", data={"id": filled.dead, "csrf_token": token, "confirm": "yes"}
        )
        assert 303 == done.status_code
        assert "count=1" in done.headers["location"]
        assert await store.get(filled.dead) is None

    async def test_purge_all(
        self, client: httpx.AsyncClient, store: SqliteStore, filled: Filled
    ) -> None:
        """all=1 purges every dead letter."""
        second = (await store.enqueue(b"[]", name="x", queue="q2")).task_id
        [claim] = await store.claim(["q2"], worker="w")
        await store.dead_letter(claim.task_id, claim.token, "why not")
        token = csrf_of((await client.get("/dead/purge", params={"all": "1"})).text)
        done = await client.post(
            "/dead/purge", data={"all": "1", "csrf_token": token, "confirm": "yes"}
        )
        assert 303 == done.status_code
        assert "count=2" in done.headers["location"]
        assert [] == await store.dead_letters()
        assert await store.get(second) is None

    async def test_cancel(
        self, client: httpx.AsyncClient, store: SqliteStore, filled: Filled
    ) -> None:
        """The cancel button on a live task cancels it; finished tasks have no button."""
        page = (await client.get(f"/tasks/{filled.queued}")).text
        assert 'id="cancel"' in page
        done = (await client.get(f"/tasks/{filled.succeeded}")).text
        assert 'id="cancel"' not in done
        response = await client.post(
            "/cancel", data={"id": filled.queued, "csrf_token": csrf_of(page)}
        )
        assert 303 == response.status_code
        record = await store.get(filled.queued)
        assert record is not None
        assert "cancelled" == record.status
        shown = (await client.get(response.headers["location"])).text
        assert "Cancel of" in shown

    async def test_get_cannot_mutate(self, client: httpx.AsyncClient, filled: Filled) -> None:
        """Mutations are POST only."""
        assert 405 == (await client.get("/dead/requeue")).status_code
        assert 405 == (await client.get("/cancel")).status_code


class TestSecurity:
    async def test_security_headers(self, client: httpx.AsyncClient) -> None:
        """CSP without inline script, no framing, nosniff; CSRF cookie HttpOnly + Strict."""
        response = await client.get("/")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "DENY" == response.headers["x-frame-options"]
        assert "nosniff" == response.headers["x-content-type-options"]
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie

    async def test_token_required(self, store: SqliteStore) -> None:
        """No or wrong credentials: 401 (scripts) or the login page (browsers)."""
        app = create_dashboard(store, token="s3cret-token")
        async with client_for(app) as client:
            assert 401 == (await client.get("/")).status_code
            assert 401 == (await client.get("/events")).status_code
            wrong = {"authorization": "Bearer nope-nope"}
            assert 401 == (await client.get("/", headers=wrong)).status_code
            browser = await client.get("/tasks?status=dead", headers=HTML)
            assert 303 == browser.status_code
            assert "/login?next=%2Ftasks%3Fstatus%3Ddead" == browser.headers["location"]
            right = {"authorization": "Bearer s3cret-token"}
            assert 200 == (await client.get("/", headers=right)).status_code
            assert 200 == (await client.get("/static/dashboard.js")).status_code

    async def test_login_form_sets_cookie(self, store: SqliteStore) -> None:
        """Wrong token: 401; right token: HttpOnly SameSite=Strict cookie that works."""
        app = create_dashboard(store, token="s3cret-token")
        async with client_for(app, headers=HTML) as client:
            token = csrf_of((await client.get("/login")).text)
            wrong = await client.post("/login", data={"token": "guess", "csrf_token": token})
            assert 401 == wrong.status_code
            assert "Wrong token" in wrong.text
            right = await client.post(
                "/login", data={"token": "s3cret-token", "csrf_token": token, "next": "/dead"}
            )
            assert 303 == right.status_code
            assert "/dead" == right.headers["location"]
            cookie = right.headers["set-cookie"]
            assert "taskmill_auth=" in cookie
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert "s3cret-token" not in cookie
            assert 200 == (await client.get("/dead")).status_code

    async def test_login_needs_csrf(self, store: SqliteStore) -> None:
        """Even the login form checks the CSRF token."""
        app = create_dashboard(store, token="s3cret-token")
        async with client_for(app) as client:
            response = await client.post("/login", data={"token": "s3cret-token"})
        assert 403 == response.status_code

    async def test_login_next_stays_inside(self, store: SqliteStore) -> None:
        """`next` cannot send the browser to another site."""
        app = create_dashboard(store, token="s3cret-token")
        async with client_for(app, headers=HTML) as client:
            token = csrf_of((await client.get("/login")).text)
            data = {"token": "s3cret-token", "csrf_token": token, "next": "//evil.example/"}
            response = await client.post("/login", data=data)
        assert "/" == response.headers["location"]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"token": "short"}, "at least 8"),
            ({"refresh": 0.0}, "refresh"),
            ({"title": 3}, "title"),
            ({"codec": object()}, "codec"),
        ],
    )
    async def test_bad_arguments(
        self, store: SqliteStore, kwargs: dict[str, object], message: str
    ) -> None:
        """Bad arguments fail at create_dashboard with a clear message."""
        with pytest.raises(ConfigurationError, match=message):
            create_dashboard(store, **kwargs)  # type: ignore[arg-type]

    def test_not_a_store(self) -> None:
        """Something without the store calls is refused, naming what is missing."""
        with pytest.raises(ConfigurationError, match="statistics"):
            create_dashboard(object())  # type: ignore[arg-type]


class TestMounted:
    async def test_links_and_redirects_under_a_prefix(
        self, store: SqliteStore, filled: Filled
    ) -> None:
        """Mounted at /taskmill: every link, asset and redirect carries the prefix."""
        dash = create_dashboard(store)
        host = Starlette(routes=[Mount("/taskmill", app=dash)])
        async with dash.router.lifespan_context(dash), client_for(host, headers=HTML) as client:
            response = await client.get("/taskmill/")
            assert 200 == response.status_code
            html = response.text
            assert 'href="/taskmill/static/dashboard.css"' in html
            assert 'data-events="/taskmill/events"' in html
            assert f'href="/taskmill/tasks/{filled.running}"' in html
            hrefs = re.findall(r'(?:href|action)="([^"]+)"', html)
            local = [h for h in hrefs if not h.startswith("data:")]
            assert all(h.startswith("/taskmill/") for h in local), local
            assert 200 == (await client.get("/taskmill/static/dashboard.js")).status_code
            token = csrf_of((await client.get("/taskmill/dead")).text)
            done = await client.post(
                "/taskmill/dead/requeue", data={"id": filled.dead, "csrf_token": token}
            )
            assert done.headers["location"].startswith("/taskmill/dead?")
            page = (await client.get(f"/taskmill/tasks/{filled.dead}")).text
            assert "work.dead" in page

    async def test_login_redirect_under_a_prefix(self, store: SqliteStore) -> None:
        """The login redirect and the cookie path carry the prefix."""
        dash = create_dashboard(store, token="s3cret-token")
        host = Starlette(routes=[Mount("/ops/tm", app=dash)])
        async with client_for(host, headers=HTML) as client:
            response = await client.get("/ops/tm/workers")
            assert "/ops/tm/login?next=%2Fworkers" == response.headers["location"]
            assert "Path=/ops/tm/" in response.headers["set-cookie"]
            login = await client.get("/ops/tm/login")
            data = {"token": "s3cret-token", "csrf_token": csrf_of(login.text), "next": "/workers"}
            done = await client.post("/ops/tm/login", data=data)
            assert "/ops/tm/workers" == done.headers["location"]
            assert 200 == (await client.get("/ops/tm/workers")).status_code
