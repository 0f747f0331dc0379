"""Turning records into what a page shows: decoded payloads, times, chart geometry.

Payloads and results are decoded with the dashboard's
:class:`~taskmill.payloads.PayloadCodec` (the same calls the worker and ``taskmill
submit --wait`` use); anything that does not decode is shown as the codec's reason
and the first bytes, never executed. Every string reaches the page through Jinja2's
autoescaping.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any, Final, final

from taskmill import _clock
from taskmill._backend import TaskRecord
from taskmill._errors import PayloadError
from taskmill.payloads import PayloadCodec

from ._monitor import Bucket

__all__ = [
    "Bar",
    "BarChart",
    "Decoded",
    "ago",
    "decode_payload",
    "decode_result",
    "duration",
    "latency_chart",
    "pretty",
    "throughput_chart",
    "timestamp",
]

_RAW_SHOWN: Final = 2000


def pretty(value: object) -> str:
    """Format a decoded value as indented JSON (``repr`` for what JSON cannot show)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr, sort_keys=True)


def _raw(data: object) -> str:
    if isinstance(data, bytes | bytearray):
        text = bytes(data[:_RAW_SHOWN]).decode("utf-8", "backslashreplace")
        more = len(data) - _RAW_SHOWN
        return text + (f" [... {more} more bytes]" if more > 0 else "")
    return repr(data)[:_RAW_SHOWN]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Decoded:
    """A task's payload as shown: arguments and options, or why it did not decode.

    Attributes:
        args: Positional arguments as JSON text.
        kwargs: Keyword arguments as JSON text.
        options: Envelope options (queue, priority, timeout, retry, unique key,
            scheduled time) as JSON text.
        trace: Trace context keys, if any.
        problem: The codec's reason when the payload did not decode.
        raw: The payload's first bytes when it did not decode.
    """

    args: str = ""
    kwargs: str = ""
    options: str = ""
    trace: tuple[str, ...] = ()
    problem: str | None = None
    raw: str = ""


def decode_payload(codec: PayloadCodec, record: TaskRecord) -> Decoded:
    """Decode ``record.payload`` with ``codec``."""
    try:
        envelope = codec.decode(record.payload)
    except PayloadError as exc:
        return Decoded(problem=exc.reason, raw=_raw(record.payload))
    options = {
        "priority": envelope.options.priority,
        "queue": envelope.options.queue,
        "timeout": envelope.options.timeout,
        "retry": None
        if envelope.options.retry is None
        else {
            "max_attempts": envelope.options.retry.max_attempts,
            "timeout": envelope.options.retry.timeout,
            "deadline": envelope.options.retry.deadline,
        },
        "unique_key": envelope.options.unique_key,
        "scheduled_at": envelope.options.scheduled_at,
    }
    return Decoded(
        args=pretty(list(envelope.args)),
        kwargs=pretty(dict(envelope.kwargs)),
        options=pretty(options),
        trace=tuple(sorted(envelope.trace)),
    )


def decode_result(codec: PayloadCodec, record: TaskRecord) -> tuple[str | None, str | None]:
    """Return ``(result as JSON text, problem)``; both ``None`` when there is no result."""
    if record.result is None:
        return None, None
    try:
        value: Any = codec.decode_result(record.result, task=record.name)
    except PayloadError as exc:
        return _raw(record.result), exc.reason
    return pretty(value), None


# ------------------------------------------------------------------------ times


def timestamp(at: float | None) -> str:
    """``2030-01-01 09:00:00Z`` (UTC), or ``-``."""
    if at is None:
        return "-"
    moment = _dt.datetime.fromtimestamp(at, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float | None) -> str:
    """A short duration: ``850ms``, ``12.5s``, ``4m05s``, ``3h20m``, or ``-``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(int(seconds) // 60, 60)
    return f"{hours}h{rest:02d}m"


def ago(at: float | None) -> str:
    """``3.2s ago`` / ``in 4m05s`` relative to now, or ``-``."""
    if at is None:
        return "-"
    delta = _clock.wall_time() - at
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


# ------------------------------------------------------------------------ charts


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One bar of a chart (SVG user units)."""

    x: float
    y: float
    width: float
    height: float
    title: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BarChart:
    """An SVG chart: bars, optional marks (thin bars: a second series), its scale's top."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    marks: tuple[Bar, ...]
    top: str
    empty: bool


_W: Final = 600
_H: Final = 160


def throughput_chart(buckets: list[Bucket]) -> BarChart:
    """Finished tasks per minute as bars."""
    peak = max((b.finished for b in buckets), default=0)
    scale = max(peak, 1)
    step = _W / max(len(buckets), 1)
    bars = []
    for i, bucket in enumerate(buckets):
        height = _H * bucket.finished / scale
        title = f"{timestamp(bucket.start)}: {bucket.finished} finished"
        bars.append(Bar(x=i * step + 1, y=_H - height, width=step - 2, height=height, title=title))
    return BarChart(
        width=_W, height=_H, bars=tuple(bars), marks=(), top=f"{peak}/min", empty=peak == 0
    )


def latency_chart(buckets: list[Bucket]) -> BarChart:
    """Median run time per minute as bars, the 95th percentile as a mark above each."""
    peak = max((b.p95 or 0.0 for b in buckets), default=0.0)
    scale = peak if peak > 0 else 1.0
    step = _W / max(len(buckets), 1)
    bars, marks = [], []
    for i, bucket in enumerate(buckets):
        if bucket.p50 is None or bucket.p95 is None:
            continue
        title = (
            f"{timestamp(bucket.start)}: p50 {duration(bucket.p50)}, "
            f"p95 {duration(bucket.p95)} ({bucket.samples} tasks)"
        )
        height = _H * bucket.p50 / scale
        x, width = i * step + 1, step - 2
        bars.append(Bar(x=x, y=_H - height, width=width, height=height, title=title))
        top = _H - _H * bucket.p95 / scale
        marks.append(Bar(x=x, y=max(0.0, top - 1), width=width, height=2, title=title))
    return BarChart(
        width=_W,
        height=_H,
        bars=tuple(bars),
        marks=tuple(marks),
        top=duration(peak),
        empty=not bars,
    )
