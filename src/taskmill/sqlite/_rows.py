"""Rows to values: strict checks for claims, lenient decoding for inspection.

SQLite columns are dynamically typed, so a row written straight into the file can
hold anything. :func:`problem` finds what makes a ready row unfit to hand to a
worker (the claim dead-letters it with that reason); :func:`record` decodes any
row for listings without ever raising on a column's type.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Final

from taskmill._backend import AttemptError
from taskmill._errors import BackendError

from ._records import Claim, ErrorText, Status, TaskRecord

__all__ = ["Row", "claim", "problem", "record", "with_history"]

Row = tuple[Any, ...]

# Column positions (see _schema.COLUMNS).
SEQ, ID, NAME, QUEUE, PRIORITY, STATUS, PAYLOAD, RUN_AT, UNIQUE_KEY, ATTEMPT = range(10)
DELIVERIES, WORKER_LOST, WORKER, CANCEL_REQUESTED, ENQUEUED_AT, STARTED_AT = range(10, 16)
FINISHED_AT, EXPIRES_AT, RESULT, ERROR_TYPE, ERROR_MESSAGE, ERROR_TRACEBACK = range(16, 22)
DEAD_REASON: Final = 22

_MAX_SHOWN = 40


def _describe(value: object) -> str:
    if value is None:
        return "NULL"
    kind = {bytes: "blob", str: "text", int: "integer", float: "real"}.get(type(value), "?")
    shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return f"{kind} {shown}"


def _is_int(value: object, minimum: int) -> bool:
    return type(value) is int and value >= minimum


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and type(value) is not bool and math.isfinite(value)


_CHECKS: Final = (
    (ID, "id", "a non-empty text", lambda v: type(v) is str and v != ""),
    (NAME, "name", "a non-empty text", lambda v: type(v) is str and v != ""),
    (PAYLOAD, "payload", "a blob", lambda v: type(v) is bytes),
    (PRIORITY, "priority", "an integer", lambda v: type(v) is int),
    (ATTEMPT, "attempt", "an integer >= 1", lambda v: _is_int(v, 1)),
    (DELIVERIES, "deliveries", "an integer >= 0", lambda v: _is_int(v, 0)),
    (WORKER_LOST, "worker_lost", "an integer >= 0", lambda v: _is_int(v, 0)),
    (RUN_AT, "run_at", "a finite number", _is_time),
    (ENQUEUED_AT, "enqueued_at", "a finite number", _is_time),
    (UNIQUE_KEY, "unique_key", "NULL or text", lambda v: v is None or type(v) is str),
)


def _sound(row: Row) -> bool:
    """The fast path of :func:`problem`: every claim-relevant column has its type."""
    attempt, deliveries, worker_lost = row[ATTEMPT], row[DELIVERIES], row[WORKER_LOST]
    run_at, enqueued_at = row[RUN_AT], row[ENQUEUED_AT]
    return (
        type(row[ID]) is str
        and type(row[NAME]) is str
        and type(row[PAYLOAD]) is bytes
        and type(row[PRIORITY]) is int
        and type(attempt) is int
        and type(deliveries) is int
        and type(worker_lost) is int
        and type(run_at) is float
        and type(enqueued_at) is float
        and (row[UNIQUE_KEY] is None or type(row[UNIQUE_KEY]) is str)
        and row[ID] != ""
        and row[NAME] != ""
        and attempt >= 1
        and deliveries >= 0
        and worker_lost >= 0
        and math.isfinite(run_at)
        and math.isfinite(enqueued_at)
    )


def problem(row: Row) -> str | None:
    """Return why ``row`` cannot be delivered to a worker, or ``None`` when it can."""
    if _sound(row):
        return None
    for index, column, expected, valid in _CHECKS:
        value = row[index]
        if not valid(value):
            return f"malformed row: {column} is {_describe(value)}, expected {expected}"
    return None


def claim(row: Row, token: str, lease_until: float) -> Claim:
    """Build the :class:`Claim` for a ready row that passed :func:`problem`."""
    return Claim(
        task_id=row[ID],
        token=token,
        payload=row[PAYLOAD],
        name=row[NAME],
        queue=row[QUEUE],
        priority=row[PRIORITY],
        attempt=row[ATTEMPT],
        deliveries=row[DELIVERIES] + 1,
        worker_lost=row[WORKER_LOST],
        enqueued_at=float(row[ENQUEUED_AT]),
        run_at=float(row[RUN_AT]),
        unique_key=row[UNIQUE_KEY],
        lease_until=lease_until,
    )


def _int(value: object, default: int = 0) -> int:
    return value if type(value) is int else default


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and type(value) is not bool:
        return float(value)
    return None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _blob(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def _error(row: Row) -> ErrorText | None:
    kind = _text(row[ERROR_TYPE])
    if kind is None:
        return None
    message = _text(row[ERROR_MESSAGE]) or ""
    return ErrorText(type=kind, message=message, traceback=_text(row[ERROR_TRACEBACK]) or "")


def _status(row: Row) -> Status:
    try:
        return Status(row[STATUS])
    except ValueError:
        raise BackendError(
            f"malformed row {row[ID]!r}: unknown status {_describe(row[STATUS])}",
            backend="sqlite",
        ) from None


def record(row: Row) -> TaskRecord:
    """Decode any row leniently (garbage columns become defaults, never an error).

    Raises:
        BackendError: only when the status itself is unknown.
    """
    return TaskRecord(
        task_id=_text(row[ID]) or "",
        name=_text(row[NAME]) or "",
        queue=_text(row[QUEUE]) or "",
        priority=_int(row[PRIORITY]),
        status=_status(row),
        payload=_blob(row[PAYLOAD]) or b"",
        attempt=_int(row[ATTEMPT], 1),
        deliveries=_int(row[DELIVERIES]),
        worker_lost=_int(row[WORKER_LOST]),
        enqueued_at=_float(row[ENQUEUED_AT]) or 0.0,
        run_at=_float(row[RUN_AT]) or 0.0,
        started_at=_float(row[STARTED_AT]),
        finished_at=_float(row[FINISHED_AT]),
        expires_at=_float(row[EXPIRES_AT]),
        unique_key=_text(row[UNIQUE_KEY]),
        worker=_text(row[WORKER]),
        cancel_requested=bool(_int(row[CANCEL_REQUESTED])),
        result=_blob(row[RESULT]),
        error=_error(row),
        dead_reason=_text(row[DEAD_REASON]),
    )


def with_history(record: TaskRecord, rows: Sequence[tuple[int, str, str, str]]) -> TaskRecord:
    """Return ``record`` with its attempt history from ``attempt_errors`` rows."""
    history = tuple(
        AttemptError(attempt=attempt, error=ErrorText(type=kind, message=text, traceback=tb))
        for attempt, kind, text, tb in rows
    )
    return dataclasses.replace(record, history=history)
