"""The public surface: what `import taskmill` exposes, and that it stays light."""

from __future__ import annotations
import __future__

import subprocess
import sys
import types

import taskmill
import taskmill.testing


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


class TestAll:
    def test_all_is_sorted(self) -> None:
        """`__all__` is kept in sorted order."""
        assert sorted(taskmill.__all__) == taskmill.__all__

    def test_all_equals_public_names(self) -> None:
        """Every public name is in `__all__` and nothing else is."""
        assert _public_names(taskmill) == set(taskmill.__all__) - {"__version__"}

    def test_exports_report_their_public_module(self) -> None:
        """Classes and functions say `taskmill.X`, not the private module."""
        for name in taskmill.__all__:
            value = getattr(taskmill, name)
            if isinstance(value, type | types.FunctionType):
                assert value.__module__ == "taskmill", name

    def test_testing_all_equals_public_names(self) -> None:
        """`taskmill.testing.__all__` is sorted and complete."""
        assert sorted(taskmill.testing.__all__) == taskmill.testing.__all__
        assert _public_names(taskmill.testing) == set(taskmill.testing.__all__)


def test_import_is_light() -> None:
    """`import taskmill` loads no optional dependency (they stay behind extras)."""
    heavy = [
        "redis",
        "msgspec",
        "aiosqlite",
        "click",
        "rich",
        "starlette",
        "uvicorn",
        "prometheus_client",
        "opentelemetry",
        "pytest",
    ]
    code = f"import sys, taskmill\nprint(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_errors_share_one_root() -> None:
    """Every exception class taskmill exports derives from TaskmillError."""
    for name in taskmill.__all__:
        value = getattr(taskmill, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, taskmill.TaskmillError), name
