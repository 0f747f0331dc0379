"""The dashboard's one poller: live counters for every open page, and the last hour's history.

Every ``refresh`` seconds one task reads ``store.statistics()`` (one call however
many browsers are watching), publishes it to the server-sent-event streams, and keeps
a bounded ring buffer of points covering the last hour. It also reads the newest
finished records of each queue (at most ``latency_sample`` per queue per poll) and
remembers each one's run time, ``finished_at - started_at`` of its last attempt.

What the charts show, exactly:

* throughput: per minute, the increase of the count of records in a terminal status
  (succeeded, failed, timed out, cancelled, dead) between consecutive polls, summed.
  Records purged or expired during a poll interval make the increase smaller (a
  negative change counts as zero).
* latency: per minute (by ``finished_at``), the median and the 95th percentile of the
  run time of the finished records the poller saw (succeeded, failed, timed out).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

from taskmill import _clock
from taskmill._errors import TaskmillError

from ._store import InspectableStore, StoreStats

__all__ = ["TERMINAL", "Bucket", "Monitor", "Snapshot"]

logger = logging.getLogger(__name__)

TERMINAL: Final = ("succeeded", "failed", "timed_out", "cancelled", "dead")
_FINISHED: Final = ("succeeded", "failed", "timed_out")
_WINDOW: Final = 3600.0
_BUCKET: Final = 60.0
_SEEN_MAX: Final = 20_000


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One poll: what the live counters show.

    Attributes:
        at: Wall time of the poll (POSIX seconds).
        stats: The store's statistics, or ``None`` when the poll failed.
        error: Why the poll failed (``"Type: message"``), else ``None``.
    """

    at: float
    stats: StoreStats | None
    error: str | None = None

    def as_event(self) -> dict[str, Any]:
        """Return the JSON object one server-sent event carries."""
        stats = self.stats
        if stats is None:
            return {"at": self.at, "error": self.error}
        return {
            "at": self.at,
            "error": None,
            "by_status": dict(stats.by_status),
            "total": stats.total,
            "running": stats.running,
            "dead_letters": stats.dead_letters,
            "expired_leases": stats.expired_leases,
            "lag": round(stats.lag, 3),
            "next_scheduled": stats.next_scheduled,
        }


@dataclass(frozen=True, slots=True)
class _Point:
    at: float
    terminal: int
    by_queue: Mapping[str, int]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """One minute of the charts.

    Attributes:
        start: Wall time the minute starts.
        finished: Tasks that reached a terminal status in it (see the module doc).
        p50: Median run time of the finished tasks seen in it (seconds), if any.
        p95: 95th percentile of the same, if any.
        samples: How many run times the percentiles come from.
    """

    start: float
    finished: int
    p50: float | None = None
    p95: float | None = None
    samples: int = 0


def _terminal(counts: Mapping[str, int]) -> int:
    return sum(counts.get(status, 0) for status in TERMINAL)


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@final
@dataclass(slots=True)
class _History:
    """The ring buffers: poll points, and run times by finish time."""

    points: deque[_Point]
    runs: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=50_000))
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def add_run(self, task_id: str, finished_at: float, seconds: float) -> None:
        if task_id in self.seen:
            return
        self.seen[task_id] = None
        if len(self.seen) > _SEEN_MAX:
            self.seen.popitem(last=False)
        self.runs.append((finished_at, max(0.0, seconds)))


@final
class Monitor:
    """Polls a store every ``refresh`` seconds; see the module doc.

    Args:
        store: The store to read.
        refresh: Seconds between polls.
        latency_sample: Newest finished records read per queue per poll.
    """

    def __init__(
        self, store: InspectableStore, *, refresh: float, latency_sample: int = 50
    ) -> None:
        self._store = store
        self._refresh = refresh
        self._latency_sample = latency_sample
        self._history = _History(points=deque(maxlen=math.ceil(_WINDOW / refresh) + 2))
        self._latest: Snapshot | None = None
        self._tick = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.polls = 0

    @property
    def refresh(self) -> float:
        """Seconds between polls."""
        return self._refresh

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (every event stream has ended)."""
        return self._closed.is_set()

    def ensure_started(self) -> None:
        """Start polling (once; a no-op when running or closed)."""
        if self._task is None and not self._closed.is_set():
            self._task = asyncio.create_task(self._run(), name="taskmill-dashboard-monitor")

    async def close(self) -> None:
        """Stop polling and end every event stream."""
        self._closed.set()
        self._tick.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._refresh)

    async def poll(self) -> Snapshot:
        """Read the store once, record the point and wake every stream."""
        wall = _clock.wall_time()
        try:
            stats = await self._store.statistics()
            await self._sample_runs(stats)
        except (TaskmillError, OSError) as exc:
            logger.warning("dashboard: reading the store failed: %s", exc)
            snapshot = Snapshot(at=wall, stats=None, error=f"{type(exc).__name__}: {exc}")
        else:
            snapshot = Snapshot(at=wall, stats=stats)
            by_queue = {queue: _terminal(counts) for queue, counts in stats.by_queue.items()}
            self._history.points.append(_Point(wall, _terminal(stats.by_status), by_queue))
        self._publish(snapshot)
        return snapshot

    async def _sample_runs(self, stats: StoreStats) -> None:
        for queue, counts in stats.by_queue.items():
            finished = sum(counts.get(status, 0) for status in _FINISHED)
            if finished == 0:
                continue
            offset = max(0, finished - self._latency_sample)
            records = await self._store.list(
                status=_FINISHED, queue=queue, limit=self._latency_sample, offset=offset
            )
            for record in records:
                if record.finished_at is not None and record.started_at is not None:
                    seconds = record.finished_at - record.started_at
                    self._history.add_run(record.task_id, record.finished_at, seconds)

    def _publish(self, snapshot: Snapshot) -> None:
        self._latest = snapshot
        self.polls += 1
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def latest(self) -> Snapshot:
        """Return the newest snapshot (polling now if there is none yet)."""
        self.ensure_started()
        if self._latest is None:
            return await self.poll()
        return self._latest

    async def updates(self, *, until: float | None = None) -> AsyncIterator[Snapshot]:
        """Yield the newest snapshot, then each new one, until :meth:`close`.

        Args:
            until: Also stop at this event-loop time (``loop.time()``).
        """
        yield await self.latest()
        while not self._closed.is_set():
            tick = self._tick
            try:
                async with asyncio.timeout_at(until):
                    await tick.wait()
            except TimeoutError:
                return
            if self._closed.is_set() or self._latest is None:
                return
            yield self._latest

    # ---------------------------------------------------------------- history

    def queue_rates(self, *, span: float = 300.0) -> dict[str, float]:
        """Return, per queue, tasks finished per minute over the last ``span`` seconds."""
        points = [p for p in self._history.points if p.at >= _clock.wall_time() - span]
        if len(points) < 2:
            return {}
        elapsed = max(points[-1].at - points[0].at, self._refresh)
        totals: dict[str, int] = {}
        for before, after in itertools.pairwise(points):
            for queue, count in after.by_queue.items():
                grown = max(0, count - before.by_queue.get(queue, 0))
                totals[queue] = totals.get(queue, 0) + grown
        return {queue: 60.0 * count / elapsed for queue, count in totals.items()}

    def buckets(self) -> list[Bucket]:
        """Return the last hour as 60 one-minute buckets, oldest first."""
        end = _clock.wall_time()
        start = end - _WINDOW
        finished = [0] * 60
        points = list(self._history.points)
        for before, after in itertools.pairwise(points):
            index = _index(after.at, start)
            if index is not None:
                finished[index] += max(0, after.terminal - before.terminal)
        runs: list[list[float]] = [[] for _ in range(60)]
        for finished_at, seconds in self._history.runs:
            index = _index(finished_at, start)
            if index is not None:
                runs[index].append(seconds)
        return [_bucket(start + i * _BUCKET, finished[i], runs[i]) for i in range(60)]


def _index(at: float, start: float) -> int | None:
    """The minute ``at`` falls in (the last one includes "now"), or ``None`` if outside."""
    index = math.floor((at - start) / _BUCKET)
    if index == 60 and at <= start + _WINDOW:
        return 59
    return index if 0 <= index < 60 else None


def _bucket(start: float, finished: int, runs: list[float]) -> Bucket:
    if not runs:
        return Bucket(start=start, finished=finished)
    runs.sort()
    return Bucket(
        start=start,
        finished=finished,
        p50=_percentile(runs, 0.5),
        p95=_percentile(runs, 0.95),
        samples=len(runs),
    )
