"""The ``taskmill`` command line (needs the ``cli`` extra: click and rich)."""

from __future__ import annotations

import sys

__all__ = ["main"]

_MISSING_EXTRA = "taskmill's command line needs the 'cli' extra: pip install 'taskmill[cli]'\n"


def main(argv: list[str] | None = None) -> None:
    """Run the ``taskmill`` command line."""
    try:
        from taskmill._cli_app import cli  # noqa: PLC0415 - click is an optional extra
    except ModuleNotFoundError as exc:
        if exc.name in {"click", "rich"}:
            sys.stderr.write(_MISSING_EXTRA)
            raise SystemExit(2) from None
        raise
    cli.main(args=argv, prog_name="taskmill")
