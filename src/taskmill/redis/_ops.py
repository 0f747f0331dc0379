"""Argument checks, script arguments and reply decoding for :class:`RedisStore`."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import msgpack

from taskmill import _storecheck
from taskmill._errors import ConfigurationError
from taskmill._storecheck import check_result, count, seconds, status_items

from . import _record
from ._keys import check_queue, check_text
from ._types import (
    Claim,
    Enqueued,
    ErrorText,
    NewTask,
    ReclaimReport,
    RedisStoreStatistics,
    Renewal,
    Status,
    TaskRecord,
)

__all__ = [
    "ack_args",
    "check_priority",
    "check_result",
    "claims",
    "count",
    "enqueue_args",
    "enqueued",
    "error_args",
    "found",
    "jittered",
    "list_plan",
    "listed",
    "merge_reports",
    "queue_names",
    "reclaimed",
    "renewal",
    "seconds",
    "statistics",
    "statuses",
    "text",
    "token_parts",
]

MAX_PRIORITY: Final = 2**53
MAX_ERROR_TEXT: Final = 64 * 1024
BadClaim = tuple[str, str, str, str]

# Which index lists which statuses (LIST script), in listing order.
_INDEXES: Final = (
    ("l", "r"),
    ("q", "q"),
    ("s", "sy"),
    ("f", "SFCT"),
    ("x", "D"),
)


# -- checks -------------------------------------------------------------------------------
def check_priority(priority: int) -> None:
    """Refuse priorities Redis scores cannot order exactly (|p| > 2**53)."""
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ConfigurationError(f"priority must be within +-2**53 on Redis, got {priority}")


def queue_names(queues: Sequence[str]) -> tuple[str, ...]:
    """Return the distinct, valid queue names of a claim, in order."""
    return _storecheck.queue_names(queues, check_queue)


def statuses(status: Status | str | Iterable[Status | str] | None) -> frozenset[Status]:
    """Return the statuses a listing asks for (all for ``None``)."""
    items = status_items(status)
    return frozenset(Status) if items is None else frozenset(items)


def text(value: object) -> str | None:
    """Decode a reply value to text (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def token_parts(token: object) -> tuple[str, str]:
    """Split a public token ``"<n>.<nonce>:<queue>"``; ``("", "")`` when it is not one."""
    if not isinstance(token, str):
        return "", ""
    tok, sep, queue = token.partition(":")
    if not sep or not tok or not queue or "{" in queue or "}" in queue:
        return "", ""
    return queue, tok


def jittered(interval: float, failures: int) -> float:
    """Return a pause after ``failures`` failed sweeps: exponential, capped, equal jitter."""
    delay = min(30.0, interval * 2 ** min(failures, 10))
    return float(delay / 2 + random.uniform(0, delay / 2))


# -- arguments ----------------------------------------------------------------------------
_pack: Final = msgpack.Packer(use_bin_type=False).pack


def enqueue_args(tasks: Sequence[NewTask], ids: Sequence[str], scope: tuple[str, int]) -> list[Any]:
    """Return the ENQUEUE script's arguments: the unique scope, then one packed batch."""
    code, ttl = scope
    batch = []
    for task, task_id in zip(tasks, ids, strict=True):
        due = task.due
        batch.append(
            (
                task_id,
                task.name,
                task.priority,
                None if due is None else round(due * 1000),
                task.unique_key,
                task.payload,
            )
        )
    return [code, ttl, _pack(batch)]


def ack_args(ttl_ms: int, acks: Sequence[tuple[str, str, bytes | None]]) -> list[Any]:
    """Return the ACK script's arguments: the results TTL, then one packed batch."""
    return [
        ttl_ms,
        _pack([(task_id, token_parts(token)[1], result) for task_id, token, result in acks]),
    ]


def error_args(error: ErrorText) -> tuple[str, str, str]:
    """Return an error's type, message and traceback, each bounded."""
    return (
        error.type[:MAX_ERROR_TEXT] or "Exception",
        error.message[:MAX_ERROR_TEXT],
        error.traceback[-MAX_ERROR_TEXT:],
    )


# -- replies ------------------------------------------------------------------------------
def is_full(reply: Any) -> bool:
    """Whether an ENQUEUE reply says the queue is at its bound (``[-1, queued, bound]``)."""
    return bool(reply) and reply[0] == -1


def enqueued(reply: Any) -> list[Enqueued]:
    """Decode the ENQUEUE reply."""
    return [
        Enqueued(task_id=text(reply[i]) or "", created=bool(reply[i + 1]))
        for i in range(0, len(reply), 2)
    ]


def claims(queue: str, reply: Any) -> tuple[list[Claim | BadClaim], float]:
    """Decode the CLAIM reply: the claims, and seconds until the next scheduled task."""
    lease_until = int(reply[0]) / 1000.0
    now = int(reply[1]) / 1000.0
    wait = float("inf") if not reply[2] else max(0.0, int(float(reply[2])) / 1000.0 - now)
    out: list[Claim | BadClaim] = []
    for i in range(3, len(reply), 4):
        task_id = text(reply[i]) or ""
        token = f"{text(reply[i + 1])}:{queue}"
        try:
            name = check_text(text(reply[i + 2]), "name")
            out.append(_record.claim(task_id, token, queue, reply[i + 3], name, lease_until))
        except (ValueError, IndexError) as exc:
            out.append((task_id, token, queue, str(exc)))
    return out, wait


def renewal(reply: Any) -> Renewal:
    """Decode the RENEW reply."""
    code = int(reply[0])
    if code == 0:
        return Renewal.LOST
    return Renewal.CANCEL_REQUESTED if code == 2 else Renewal.HELD


def found(task_id: str, queue: str, reply: Any) -> TaskRecord:
    """Decode the GET reply."""
    return _record.record(task_id, queue, reply[0], text(reply[1]) or "")


def listed(queue: str, reply: Any) -> list[TaskRecord]:
    """Decode the LIST reply."""
    return [
        _record.record(text(reply[i]) or "", queue, reply[i + 1], text(reply[i + 2]) or "")
        for i in range(0, len(reply), 3)
    ]


def list_plan(wanted: frozenset[Status]) -> list[tuple[str, str]]:
    """Return ``(index, status codes)`` pairs to scan for the wanted statuses."""
    plan = []
    for index, codes in _INDEXES:
        keep = "".join(c for c in codes if _record.CODES[c.encode()] in wanted)
        if keep:
            plan.append((index, keep))
    return plan


def reclaimed(reply: Any) -> ReclaimReport:
    """Decode the RECLAIM reply."""
    requeued, dead, cancelled, expired, more = reply
    return ReclaimReport(
        requeued=tuple(text(i) or "" for i in requeued),
        dead_lettered=tuple(text(i) or "" for i in dead),
        cancelled=tuple(text(i) or "" for i in cancelled),
        expired=int(expired),
        more=bool(more),
    )


def merge_reports(reports: Sequence[ReclaimReport]) -> ReclaimReport:
    """Combine per-queue sweep reports."""
    return ReclaimReport(
        requeued=tuple(i for r in reports for i in r.requeued),
        dead_lettered=tuple(i for r in reports for i in r.dead_lettered),
        cancelled=tuple(i for r in reports for i in r.cancelled),
        expired=sum(r.expired for r in reports),
        more=any(r.more for r in reports),
    )


def _counts(flat: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(0, len(flat), 2):
        code = flat[i]
        status = _record.CODES.get(code)
        key = status.value if status is not None else text(code) or ""
        counts[key] = max(0, int(flat[i + 1]))
    return counts


def statistics(
    *,
    url: str,
    prefix: str,
    queues: Sequence[str],
    replies: Sequence[Any],
    epoch_losses: int,
) -> RedisStoreStatistics:
    """Combine per-queue STATS replies into one snapshot."""
    by_status = {status.value: 0 for status in Status}
    by_queue: dict[str, Mapping[str, int]] = {}
    totals = {"total": 0, "expired": 0, "malformed": 0}
    oldest: float | None = None
    upcoming: float | None = None
    now = 0.0
    for queue, reply in zip(queues, replies, strict=True):
        now = max(now, int(reply[0]) / 1000.0)
        counts = _counts(reply[1])
        totals["malformed"] += counts.pop("malformed", 0)
        for key, value in counts.items():
            if key in by_status:
                by_status[key] += value
        by_queue[queue] = MappingProxyType({k: v for k, v in counts.items() if v})
        totals["expired"] += int(reply[6])
        totals["total"] += int(reply[9])
        upcoming = _earliest(upcoming, reply[7])
        oldest = _earliest(oldest, reply[8])
    return RedisStoreStatistics(
        url=url,
        prefix=prefix,
        queues=tuple(queues),
        by_status=MappingProxyType(by_status),
        by_queue=MappingProxyType(by_queue),
        total=totals["total"],
        running=by_status[Status.RUNNING.value],
        expired_leases=totals["expired"],
        dead_letters=by_status[Status.DEAD.value],
        oldest_due=oldest,
        lag=0.0 if oldest is None else max(0.0, now - oldest),
        next_scheduled=upcoming,
        malformed=totals["malformed"],
        epoch_losses=epoch_losses,
    )


def _earliest(current: float | None, value: Any) -> float | None:
    if not value:
        return current
    try:
        seconds_ = float(value) / 1000.0
    except ValueError:
        return current
    return seconds_ if current is None else min(current, seconds_)
