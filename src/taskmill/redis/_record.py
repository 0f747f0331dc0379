"""Stored records to values: the Python mirror of the Lua record format.

A record is ``header ";" body`` (see :mod:`._scripts`): comma-separated scalar fields,
then the lengths of the strings that follow the payload in the body. :func:`claim`
is strict (a claim must be complete); :func:`record` is lenient (listings never fail
on a damaged field, only on an unknown status, like the SQLite store).
"""

from __future__ import annotations

from typing import Final

from taskmill._errors import BackendError

from ._types import Claim, ErrorText, Status, TaskRecord

__all__ = ["CODES", "STATUS_CODES", "Fields", "claim", "record", "split"]

NF: Final = 14
NS: Final = 8
# Scalar field positions (0-based here; 1-based in Lua).
ST, PR, EN, NM, RA, AT, DL, WL, CR, SA, FA, EA, US, UT = range(NF)
# String positions after the payload.
UK, TK, WK, RS, ET, EM, EB, DR = range(NS)

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

Fields = tuple[list[bytes], bytes, list[bytes]]


def split(raw: bytes) -> Fields | None:
    """Return ``(scalars, payload, strings)`` of a record, or ``None`` when undecodable."""
    head, sep, body = raw.partition(b";")
    if not sep:
        return None
    parts = head.split(b",")
    if len(parts) > NF + NS:
        return None
    parts += [b""] * (NF + NS - len(parts))
    try:
        lengths = [int(part) if part else 0 for part in parts[NF:]]
    except ValueError:
        return None
    rest = len(body) - sum(lengths)
    if rest < 0 or min(lengths) < 0:
        return None
    strings: list[bytes] = []
    pos = rest
    for length in lengths:
        strings.append(body[pos : pos + length])
        pos += length
    return parts[:NF], body[:rest], strings


def _ms(value: bytes) -> float | None:
    try:
        return int(value) / 1000.0 if value else None
    except ValueError:
        return None


def _int(value: bytes, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _text(value: bytes) -> str | None:
    return value.decode("utf-8", "replace") if value else None


def _status(task_id: str, code: bytes) -> Status:
    try:
        return CODES[code]
    except KeyError:
        raise BackendError(
            f"malformed record {task_id!r}: unknown status {code!r}", backend="redis"
        ) from None


def _error(strings: list[bytes]) -> ErrorText | None:
    if not strings[ET]:
        return None
    return ErrorText(
        type=strings[ET].decode("utf-8", "replace"),
        message=strings[EM].decode("utf-8", "replace"),
        traceback=strings[EB].decode("utf-8", "replace"),
    )


def record(task_id: str, queue: str, raw: bytes, name: str) -> TaskRecord:
    """Decode any record leniently.

    Raises:
        BackendError: only when the record is undecodable or its status unknown.
    """
    fields = split(raw)
    if fields is None:
        raise BackendError(f"malformed record {task_id!r}: undecodable", backend="redis")
    head, payload, strings = fields
    enqueued = _ms(head[EN]) or 0.0
    return TaskRecord(
        task_id=task_id,
        name=name,
        queue=queue,
        priority=_int(head[PR], 0),
        status=_status(task_id, head[ST]),
        payload=payload,
        attempt=_int(head[AT], 1),
        deliveries=_int(head[DL], 0),
        worker_lost=_int(head[WL], 0),
        enqueued_at=enqueued,
        run_at=_ms(head[RA]) or enqueued,
        started_at=_ms(head[SA]),
        finished_at=_ms(head[FA]),
        expires_at=_ms(head[EA]),
        unique_key=_text(strings[UK]),
        worker=_text(strings[WK]),
        cancel_requested=head[CR] == b"1",
        result=strings[RS] or None,
        error=_error(strings),
        dead_reason=_text(strings[DR]),
    )


def claim(  # noqa: PLR0917 - the six parts of a claim, all required
    task_id: str, token: str, queue: str, raw: bytes, name: str, lease_until: float
) -> Claim:
    """Build the :class:`Claim` of a record the claim script just marked running.

    Raises:
        ValueError: when a field a worker needs is missing or invalid.
    """
    fields = split(raw)
    if fields is None:
        raise ValueError("undecodable record")
    head, payload, strings = fields
    enqueued = int(head[EN]) / 1000.0
    return Claim(
        task_id=task_id,
        token=token,
        payload=payload,
        name=name,
        queue=queue,
        priority=int(head[PR]),
        attempt=int(head[AT] or b"1"),
        deliveries=int(head[DL]),
        worker_lost=int(head[WL] or b"0"),
        enqueued_at=enqueued,
        run_at=int(head[RA]) / 1000.0 if head[RA] else enqueued,
        unique_key=_text(strings[UK]),
        lease_until=lease_until,
    )
