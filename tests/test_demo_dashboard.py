"""`taskmill demo` serves the web dashboard over its durable store while the worker runs."""

from __future__ import annotations

import io
import re
import sys

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from taskmill._cli_app import cli
from taskmill._demo import run_demo

pytestmark = [pytest.mark.real_time, pytest.mark.timeout(60)]

URL_LINE = re.compile(r"web dashboard \(live while this worker runs\): (http://127\.0\.0\.1:\d+/)")


async def test_demo_prints_the_dashboard_url_and_it_answers_while_the_worker_runs() -> None:
    """The printed URL serves the overview and the task list with the demo's tasks."""
    out = io.StringIO()
    seen: dict[str, httpx.Response] = {}

    async def probe(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            seen["url"] = httpx.Response(200, text=url)
            seen["/"] = await http.get("/")
            seen["/tasks"] = await http.get("/tasks")

    await run_demo(Console(file=out, width=200), speed=20, dashboard_probe=probe)

    (printed,) = URL_LINE.findall(out.getvalue())
    assert seen["url"].text == printed
    assert 200 == seen["/"].status_code
    assert "taskmill demo" in seen["/"].text  # the demo's dashboard title
    assert 200 == seen["/tasks"].status_code
    for name in ("demo.resize", "demo.charge", "demo.import_feed"):
        assert name in seen["/tasks"].text
    with pytest.raises(httpx.ConnectError):  # it stopped with the worker
        async with httpx.AsyncClient(base_url=printed, timeout=2) as http:
            await http.get("/")


def test_demo_without_the_web_extra_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `taskmill.web`: the demo runs to the end and prints the install command instead."""
    monkeypatch.setitem(sys.modules, "taskmill.web", None)  # makes the import fail
    result = CliRunner().invoke(cli, ["demo", "--speed", "20"])
    assert 0 == result.exit_code, result.output
    output = " ".join(result.output.split())  # rich wraps at 80 columns here
    assert "pip install 'taskmill[web]' to watch these tasks in a browser" in output
    assert not URL_LINE.search(output)
    assert "worker: 3 succeeded, 1 retried, 1 failed" in output
