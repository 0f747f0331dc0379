"""End to end: a real uvicorn server on a free loopback port, driven by headless Chromium.

Debian's ``chromium`` through Playwright's Python client (``executable_path``; no
browser download). Skipped when /usr/bin/chromium is missing, except under CI
(env ``CI`` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from taskmill.sqlite import SqliteStore
from taskmill.web import create_dashboard, serve_dashboard

from .web_support import Filled, fill

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.browser, pytest.mark.real_time, pytest.mark.timeout(90)]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing under CI: apt-get install chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@dataclass
class Served:
    url: str
    store: SqliteStore
    filled: Filled


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with await SqliteStore.open(tmp_path / "tasks.db") as store:
        filled = await fill(store)
        app = create_dashboard(store, refresh=0.2, title="E2E mill")
        urls: list[str] = []
        listening = asyncio.Event()

        def on_listen(url: str) -> None:
            urls.append(url)
            listening.set()

        server = asyncio.create_task(
            serve_dashboard(app, port=0, handle_signals=False, on_listen=on_listen)
        )
        try:
            await listening.wait()
            yield Served(url=urls[0], store=store, filled=filled)
        finally:
            server.cancel()
            with pytest.raises(asyncio.CancelledError):
                await server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page()
    yield opened
    await opened.close()


async def test_renders_a_submitted_task(served: Served, page: Page, tmp_path: Path) -> None:
    """The task list and the task page show a submitted task; screenshots are real PNGs."""
    await page.goto(served.url + "tasks")
    row = page.locator("#task-list a", has_text=served.filled.mail)
    await expect(row).to_be_visible()
    shot = tmp_path / "tasks.png"
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000
    await row.click()
    await expect(page.locator("#args")).to_contain_text("ada@example.com")
    await expect(page.locator("h1")).to_contain_text("mail.send")
    task_shot = tmp_path / "task.png"
    await page.screenshot(path=str(task_shot), full_page=True)
    assert task_shot.read_bytes().startswith(b"\x89PNG")


async def test_requeue_from_the_dead_letter_page(served: Served, page: Page) -> None:
    """Clicking Requeue posts the form (with its CSRF token) and the store has it queued."""
    await page.goto(served.url + "dead")
    row = page.locator(f'tr[data-task="{served.filled.dead}"]')
    await expect(row).to_be_visible()
    await row.locator("button.requeue").click()
    await expect(page.locator(".notice")).to_contain_text(f"Requeued {served.filled.dead}")
    record = await served.store.get(served.filled.dead)
    assert record is not None
    assert "queued" == record.status
    await expect(page.locator(f'tr[data-task="{served.filled.dead}"]')).to_have_count(0)


async def test_live_counter_moves(served: Served, page: Page) -> None:
    """A task added to the store shows in the overview's counter without a reload."""
    await page.goto(served.url)
    cell = page.locator('td[data-live="by_status.queued"]')
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    before = int(await cell.inner_text())
    await served.store.enqueue(b"[]", name="late.arrival")
    await expect(cell).to_have_text(str(before + 1))
    await page.wait_for_function("Number(document.body.dataset.updates) > 1")
