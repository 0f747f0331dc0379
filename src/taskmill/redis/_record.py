"""Stored records to values: the Python mirror of the Lua record format.

A record is a MessagePack array of up to 24 fields (see :mod:`._lua`), trailing nils
omitted; strings arrive as bytes (``raw=True``: payloads are not UTF-8). :func:`claim`
is strict (a claim must be complete); :func:`record` is lenient (listings never fail
on a damaged field, only on an unknown status, like the SQLite store).
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from taskmill._backend import AttemptError
from taskmill._errors import BackendError

from ._types import Claim, ErrorText, Status, TaskRecord

__all__ = ["CODES", "STATUS_CODES", "claim", "fields", "record"]

NF: Final = 24
# Field positions (0-based here; 1-based in Lua).
(PL, ST, PR, EN, NM, RA, AT, DL, SA, TK, WK, FA, EA, RS, ET, EM, EB, WL, CR, DR, UK, US, UT, EH) = (
    range(NF)
)

CODES: Final = {
    b"q": Status.QUEUED,
    b"s": Status.SCHEDULED,
    b"r": Status.RUNNING,
    b"y": Status.RETRYING,
    b"S": Status.SUCCEEDED,
    b"F": Status.FAILED,
    b"C": Status.CANCELLED,
    b"T": Status.TIMED_OUT,
    b"D": Status.DEAD,
}
STATUS_CODES: Final = {status: code.decode() for code, status in CODES.items()}


def fields(raw: bytes) -> list[Any] | None:
    """Return the 24 fields of a record (``None`` for absent ones), or ``None`` if undecodable."""
    try:
        values = msgpack.unpackb(raw, raw=True)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(values, list) or len(values) < 2 or len(values) > NF:
        return None
    if not isinstance(values[PL], bytes) or not isinstance(values[ST], bytes):
        return None
    values += [None] * (NF - len(values))
    return values


def _ms(value: object) -> float | None:
    return value / 1000.0 if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _text(value: object) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) and value else None


def _status(task_id: str, code: object) -> Status:
    status = CODES.get(code) if isinstance(code, bytes) else None
    if status is None:
        raise BackendError(
            f"malformed record {task_id!r}: unknown status {code!r}", backend="redis"
        )
    return status


def _error(values: list[Any]) -> ErrorText | None:
    kind = _text(values[ET])
    if kind is None:
        return None
    return ErrorText(type=kind, message=_text(values[EM]) or "", traceback=_text(values[EB]) or "")


def record(task_id: str, queue: str, raw: bytes, name: str) -> TaskRecord:
    """Decode any record leniently.

    Raises:
        BackendError: only when the record is undecodable or its status unknown.
    """
    values = fields(raw)
    if values is None:
        raise BackendError(f"malformed record {task_id!r}: undecodable", backend="redis")
    enqueued = _ms(values[EN]) or 0.0
    result = values[RS]
    return TaskRecord(
        task_id=task_id,
        name=name,
        queue=queue,
        priority=_int(values[PR], 0),
        status=_status(task_id, values[ST]),
        payload=values[PL],
        attempt=_int(values[AT], 1),
        deliveries=_int(values[DL], 0),
        worker_lost=_int(values[WL], 0),
        enqueued_at=enqueued,
        run_at=_ms(values[RA]) or enqueued,
        started_at=_ms(values[SA]),
        finished_at=_ms(values[FA]),
        expires_at=_ms(values[EA]),
        unique_key=_text(values[UK]),
        worker=_text(values[WK]),
        cancel_requested=values[CR] == 1,
        result=result if isinstance(result, bytes) and result else None,
        error=_error(values),
        dead_reason=_text(values[DR]),
        history=_history(values[EH]),
    )


def _history(value: object) -> tuple[AttemptError, ...]:
    """Decode the error history field leniently (damaged entries are left out)."""
    if not isinstance(value, list):
        return ()
    out = []
    for entry in value:
        if isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], int):
            attempt, kind, message, traceback = entry
            error = ErrorText(
                type=_text(kind) or "",
                message=_text(message) or "",
                traceback=_text(traceback) or "",
            )
            out.append(AttemptError(attempt=attempt, error=error))
    return tuple(out)


def claim(  # noqa: PLR0917 - the six parts of a claim, all required
    task_id: str, token: str, queue: str, raw: bytes, name: str, lease_until: float
) -> Claim:
    """Build the :class:`Claim` of a record the claim script just marked running.

    Raises:
        ValueError: when a field a worker needs is missing or invalid.
    """
    values = fields(raw)
    if values is None:
        raise ValueError("undecodable record")
    enqueued = _required(values[EN], "enqueued time") / 1000.0
    run_at = values[RA]
    return Claim(
        task_id=task_id,
        token=token,
        payload=values[PL],
        name=name,
        queue=queue,
        priority=_required(values[PR], "priority"),
        attempt=_int(values[AT], 1),
        deliveries=_required(values[DL], "deliveries"),
        worker_lost=_int(values[WL], 0),
        enqueued_at=enqueued,
        run_at=_required(run_at, "run_at") / 1000.0 if run_at is not None else enqueued,
        unique_key=_text(values[UK]),
        lease_until=lease_until,
    )


def _required(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} is not a number")  # noqa: TRY004 - reported, not raised
    return value
