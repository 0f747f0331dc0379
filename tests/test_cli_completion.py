"""Shell completion (click's, behind `taskmill completion`) and the `submit --wait` spinner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskmill._cli_app import cli

pytestmark = pytest.mark.timeout(60)


def taskmill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskmill", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_click_completion_variable_prints_the_bash_script() -> None:
    """`_TASKMILL_COMPLETE=bash_source taskmill` is click's built-in source command."""
    out = taskmill(env={"_TASKMILL_COMPLETE": "bash_source"})
    assert 0 == out.returncode, out.stderr
    assert "_taskmill_completion()" in out.stdout
    assert "complete -o nosort -F _taskmill_completion taskmill" in out.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _taskmill_completion taskmill"),
        ("zsh", "#compdef taskmill"),
        ("fish", "complete --no-files --command taskmill"),
    ],
)
def test_completion_command_prints_the_script(shell: str, marker: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert 0 == result.exit_code, result.output
    assert marker in result.output
    assert "_TASKMILL_COMPLETE" in result.output


def test_completion_defaults_to_the_login_shell() -> None:
    result = CliRunner().invoke(cli, ["completion"], env={"SHELL": "/usr/bin/zsh"})
    assert "#compdef taskmill" in result.output
    unknown = CliRunner().invoke(cli, ["completion"], env={"SHELL": "/bin/tcsh"})
    assert 2 == unknown.exit_code
    assert "name the shell: taskmill completion {bash|zsh|fish}" in unknown.output


def test_the_script_completes_commands_and_options() -> None:
    """What the bash script asks click for: subcommands, then a command's options."""
    words = taskmill(
        env={
            "_TASKMILL_COMPLETE": "bash_complete",
            "COMP_WORDS": "taskmill dead-letters ",
            "COMP_CWORD": "2",
        }
    )
    assert {"plain,list", "plain,show", "plain,requeue", "plain,purge"} <= set(words.stdout.split())
    options = taskmill(
        env={
            "_TASKMILL_COMPLETE": "bash_complete",
            "COMP_WORDS": "taskmill status --r",
            "COMP_CWORD": "2",
        }
    )
    assert ["plain,--redis"] == options.stdout.split()


@pytest.mark.parametrize(("tty", "json_flag"), [(True, False), (False, False), (True, True)])
def test_submit_wait_spinner_only_on_a_terminal(
    tmp_path: Path, *, tty: bool, json_flag: bool
) -> None:
    """The spinner is drawn on a TTY's stderr, never into a pipe and never with --json."""
    db = tmp_path / "t.db"
    args = [sys.executable, "-m", "taskmill", "submit", "t", "--wait", "--timeout", "0.6"]
    args += ["--db", str(db), *(["--json"] if json_flag else [])]
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    if not tty:
        out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        assert 1 == out.returncode
        assert "waiting for" not in out.stderr
        assert "is still queued after 0.6 s" in out.stderr
        return
    primary, secondary = os.openpty()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=secondary, env=env) as proc:
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=30)
    os.close(primary)
    text = seen.decode(errors="replace")
    assert 1 == proc.returncode
    assert "is still queued after 0.6 s" in text
    assert ("waiting for t" in text) is not json_flag
