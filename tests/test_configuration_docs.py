"""docs/configuration.md lists every CLI option and parameter, with the code's defaults."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

import taskmill as tm
from taskmill._cli_app import cli
from taskmill._cli_store import DEFAULT_DB
from taskmill.redis import RedisStore
from taskmill.sqlite import SqliteStore

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"
CODE = re.compile(r"`([^`]*)`")
NO_DEFAULT = {"none", "off", "required"}


def tables() -> dict[str, dict[str, str]]:
    """Section heading -> {first cell's first code span: default cell}."""
    found: dict[str, dict[str, str]] = {}
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip().strip("`")
            found[section] = {}
        elif line.startswith("| `") and section:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            key = CODE.findall(cells[0])[0].split()[0]
            found[section][key] = cells[1]
    return found


def documented(cell: str) -> object:
    """The default a table cell states: a Python literal in backticks, or a marker word."""
    if cell in NO_DEFAULT:
        return cell
    (text,) = CODE.findall(cell)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as `default` or `127.0.0.1`


def check_default(name: str, cell: str, default: object) -> None:
    """Assert the table cell states ``default`` (None, False and "required" read as none/off)."""
    stated = documented(cell)
    if default is None or default is False or default is inspect.Parameter.empty:
        assert stated is None or stated in NO_DEFAULT, f"{name}: docs {cell}, code {default!r}"
    elif isinstance(default, bool):
        assert stated is default, f"{name}: docs {cell}, code {default!r}"
    elif isinstance(default, int | float):
        assert isinstance(stated, int | float), f"{name}: docs {cell}, code {default!r}"
        assert float(stated) == float(default), f"{name}: docs {cell}, code {default!r}"
    else:
        assert stated == default, f"{name}: docs {cell}, code {default!r}"


@pytest.mark.parametrize("command", ["worker", "dashboard"])
def test_cli_options_match(command: str) -> None:
    """Every option of the command is a row with its default, and every row is an option."""
    rows = tables()[f"taskmill {command}"]
    options = [p for p in cli.commands[command].params if isinstance(p, click.Option)]
    assert {p.opts[0] for p in options} == set(rows)
    for option in options:
        default = option.default
        if option.is_flag:
            default = False
        elif option.opts[0] == "--db":
            default = str(DEFAULT_DB)  # resolved when neither --db nor --redis is given
        check_default(option.opts[0], rows[option.opts[0]], default)


@pytest.mark.parametrize(
    ("section", "function"),
    [
        ("SqliteStore.open", SqliteStore.open),
        ("RedisStore.open", RedisStore.open),
        ("DurableWorker", tm.DurableWorker),
        ("TaskRegistry.task", tm.TaskRegistry().task),
    ],
)
def test_parameters_match(section: str, function: Callable[..., Any]) -> None:
    """Every parameter is a row with the code's default, and every row is a parameter."""
    rows = tables()[section]
    parameters = {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "fn"  # TaskRegistry.task's bare-decorator form
    }
    assert set(parameters) == set(rows)
    for name, parameter in parameters.items():
        check_default(name, rows[name], parameter.default)


def test_environment_variables_are_the_cli_ones() -> None:
    """The env var table names exactly the variables the commands read (and SHELL)."""
    rows = tables()["Environment variables"]
    read = {
        p.envvar
        for command in cli.commands.values()
        for p in command.params
        if isinstance(p.envvar, str)
    }
    for group in cli.commands.values():
        if isinstance(group, click.Group):
            read |= {
                p.envvar
                for command in group.commands.values()
                for p in command.params
                if isinstance(p.envvar, str)
            }
    assert read | {"SHELL"} == set(rows)
