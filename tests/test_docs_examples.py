"""Every ```python block in README.md and docs/ runs, on virtual time."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from taskmill.testing import VirtualTimeLoop

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = "# docs: no-run"


def _examples() -> list[Any]:
    params = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for index, match in enumerate(FENCE.finditer(text)):
            code = match.group(1)
            if SKIP in code:
                continue
            line = text.count("\n", 0, match.start()) + 2
            rel = path.relative_to(ROOT)
            params.append(pytest.param(code, str(rel), line, id=f"{rel}:{line}#{index}"))
    return params


class _VirtualPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualTimeLoop()


@pytest.mark.parametrize(("code", "path", "line"), _examples())
def test_example_runs(code: str, path: str, line: int) -> None:
    """The example executes without error (asyncio.run uses the virtual-time loop)."""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_VirtualPolicy())
    try:
        compiled = compile(code, f"{path}:{line}", "exec")
        exec(compiled, {"__name__": "__docs_example__"})
    finally:
        asyncio.set_event_loop_policy(policy)
