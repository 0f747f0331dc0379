"""The `taskmill` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from taskmill._cli_app import cli


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_version() -> None:
    import taskmill

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert taskmill.__version__ in result.output


def test_demo_runs_every_section() -> None:
    """The README's first command: the demo finishes and shows each feature at work."""
    result = CliRunner().invoke(cli, ["demo", "--speed", "10"])
    assert result.exit_code == 0, result.output
    expected_lines = [
        "Retries with backoff",
        "attempt 3 ok",
        "gave up after 3 attempts",
        "connect-db: connected to db.internal after 3 attempts",
        "slow-sync after cancel(): STOPPED, CANCELLED",
        "supervisor restarted the worker with backoff",
        "Periodic jobs, triggers and health",
        "reindex run 2",
        "warm-cache: STOPPED",
        "Durable tasks: a worker on the embedded SQLite store",
        "result: order-17 charged",
        "failed: ValueError",
        "worker: 3 succeeded, 1 retried, 1 failed",
        "Done",
    ]
    for expected in expected_lines:
        assert expected in result.output


def test_entry_point_is_installed() -> None:
    """`python -m taskmill` reaches the same command line."""
    out = subprocess.run(
        [sys.executable, "-m", "taskmill", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout


def test_bad_speed_is_one_clear_line() -> None:
    result = CliRunner().invoke(cli, ["demo", "--speed", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--speed" in result.output


def test_demo_keeps_its_store_when_asked(tmp_path: Path) -> None:
    """With --db the durable part writes to that file, which outlives the demo."""
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--speed", "10", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert db.exists()
