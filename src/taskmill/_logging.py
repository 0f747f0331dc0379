"""Structured logging: one set of ``taskmill_*`` extra keys and a JSON formatter.

taskmill logs through stdlib :mod:`logging` only (``logging.getLogger(__name__)``,
never ``print``). Records about one task or job carry structured extras whose names
all start with ``taskmill_`` so they never clash with an application's own extras:

======================  ==========================================================
key                     meaning
======================  ==========================================================
``taskmill_task_id``    the durable task's id
``taskmill_task``       the registered task name
``taskmill_attempt``    the attempt number (1 first)
``taskmill_queue``      the queue the task was claimed from
``taskmill_worker``     the durable worker's id
``taskmill_job``        the periodic / triggered job's name
``taskmill_subsystem``  the :func:`~taskmill.subsystem` path (``"/app/indexer"``)
======================  ==========================================================

:class:`JsonFormatter` writes one JSON object per record with every key present;
:func:`log_extras` returns them as a dict (for a structlog processor or any other
formatter); :func:`configure_logging` is the one-call setup of the CLI. See
docs/logging.md.
"""

from __future__ import annotations

import json as _json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final, final

from ._errors import ConfigurationError
from ._subsystem import SubsystemFilter

__all__ = [
    "JsonFormatter",
    "LogKeys",
    "configure_logging",
    "log_extras",
]

TASK_ID: Final = "taskmill_task_id"
TASK: Final = "taskmill_task"
ATTEMPT: Final = "taskmill_attempt"
QUEUE: Final = "taskmill_queue"
WORKER: Final = "taskmill_worker"
JOB: Final = "taskmill_job"
SUBSYSTEM: Final = "taskmill_subsystem"

_KEYS: Final[tuple[str, ...]] = (TASK_ID, TASK, ATTEMPT, QUEUE, WORKER, JOB, SUBSYSTEM)


@final
class LogKeys:
    """The documented ``taskmill_*`` extra keys (use them in ``extra=`` and filters).

    Attributes:
        TASK_ID: ``"taskmill_task_id"``, the durable task's id.
        TASK: ``"taskmill_task"``, the registered task name.
        ATTEMPT: ``"taskmill_attempt"``, the attempt number (1 first).
        QUEUE: ``"taskmill_queue"``, the queue (a worker's records: its queues, comma-joined).
        WORKER: ``"taskmill_worker"``, the durable worker's id.
        JOB: ``"taskmill_job"``, the job's name.
        SUBSYSTEM: ``"taskmill_subsystem"``, the subsystem path.
        ALL: Every key above, in the order :class:`JsonFormatter` writes them.
    """

    TASK_ID: Final = TASK_ID
    TASK: Final = TASK
    ATTEMPT: Final = ATTEMPT
    QUEUE: Final = QUEUE
    WORKER: Final = WORKER
    JOB: Final = JOB
    SUBSYSTEM: Final = SUBSYSTEM
    ALL: Final = _KEYS


_PREFIX: Final = "taskmill_"
# Older attribute names still set by jobs (``extra={"job": ...}``) and SubsystemFilter.
_ALIASES: Final = {
    "job": JOB,
    "job_kind": "taskmill_job_kind",
    "subsystem": SUBSYSTEM,
    "trace_id": "taskmill_trace_id",
}
_CORE: Final = frozenset({"time", "level", "logger", "message", "exc_info", "stack_info"})
_MARK: Final = "_taskmill_configured"


def log_extras(record: logging.LogRecord) -> dict[str, Any]:
    """Return the taskmill extras of ``record``: every ``taskmill_*`` attribute.

    The older names ``job`` / ``job_kind`` (job logs) and ``subsystem`` /
    ``trace_id`` (:class:`~taskmill.SubsystemFilter`) are reported under their
    ``taskmill_`` names; an empty subsystem or trace id is left out.

    Args:
        record: Any log record.

    Returns:
        The documented keys first (in :attr:`LogKeys.ALL` order), then any other
        ``taskmill_*`` attribute in name order.
    """
    found: dict[str, Any] = {
        key: value for key, value in vars(record).items() if key.startswith(_PREFIX)
    }
    for old, new in _ALIASES.items():
        value = getattr(record, old, None)
        if new not in found and value not in (None, ""):
            found[new] = value
    ordered: dict[str, Any] = {key: found.pop(key) for key in _KEYS if key in found}
    ordered.update(sorted(found.items()))
    return ordered


@final
class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON (stdlib :mod:`json` only).

    Keys: ``time`` (ISO 8601 UTC from ``record.created``), ``level``, ``logger``,
    ``message`` (arguments merged), every taskmill extra (see :func:`log_extras`),
    the ``keys`` asked for, ``exc_info`` / ``stack_info`` as text when present, and
    the static fields. Values JSON cannot encode are written with ``str()``.

    Args:
        static_fields: Constant fields added to every line (e.g. ``{"service": "billing"}``).
        keys: Other record attributes (your own extras) to copy when present.

    Raises:
        ConfigurationError: A static field or key reuses a core key.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.setFormatter(JsonFormatter(static_fields={"service": "billing"}))
    """

    def __init__(
        self, *, static_fields: Mapping[str, object] | None = None, keys: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self._static = dict(static_fields or {})
        self._keys = tuple(keys)
        clash = _CORE.intersection(self._static).union(_CORE.intersection(self._keys))
        if clash:
            raise ConfigurationError(f"JsonFormatter: {sorted(clash)} are reserved keys")

    def __repr__(self) -> str:
        return f"<JsonFormatter static_fields={sorted(self._static)} keys={list(self._keys)}>"

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as one JSON object (no newline inside)."""
        return _json.dumps(self.to_dict(record), default=str, ensure_ascii=False)

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """Return the fields :meth:`format` encodes, as a dict."""
        fields: dict[str, Any] = dict(self._static)
        fields.update(
            time=self.formatTime(record),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
        )
        fields.update(log_extras(record))
        fields.update({key: getattr(record, key) for key in self._keys if hasattr(record, key)})
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        return fields

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - stdlib override
        """Return ``record.created`` as ISO 8601 UTC with milliseconds (``datefmt`` ignored)."""
        del datefmt
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise ConfigurationError(f"level must be a logging level name or int, got {level!r}")
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise ConfigurationError(f"unknown logging level {level!r}")
    return number


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool = False,
    stream: IO[str] | None = None,
    static_fields: Mapping[str, object] | None = None,
) -> logging.Handler:
    """Send log records to ``stream`` as text or JSON lines (the CLI's setup).

    Installs one handler on the root logger (replacing the one an earlier call
    installed, never touching other handlers) with a
    :class:`~taskmill.SubsystemFilter`, and sets the root level.

    Args:
        level: A level name (``"DEBUG"``, case-insensitive) or number.
        json: Use :class:`JsonFormatter` instead of a one-line text format.
        stream: Where to write (default ``sys.stderr``).
        static_fields: Constant fields of every JSON line (JSON only).

    Returns:
        The installed handler.

    Raises:
        ConfigurationError: ``level`` is unknown, or ``static_fields`` without ``json``.
    """
    number = _level(level)
    if static_fields and not json:
        raise ConfigurationError("static_fields needs json=True")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter(static_fields=static_fields) if json else None
    handler.setFormatter(formatter or logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(SubsystemFilter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    return handler
