"""The two pure queues behind the task manager: ready work by priority, and timers.

* :class:`ReadyQueue` orders runnable items by ``(priority, arrival)``: lower
  priority numbers first, first-in first-out within a priority. Each priority
  level is a :class:`collections.deque`, and a small heap holds the levels in use,
  so the common case (few distinct priorities) costs O(1) per push and pop; with
  ``k`` distinct priorities in use it is O(log k). go-worker v0.0.5 popped the best
  task *last*; this queue never does (tested with 1, 10, 5, 90, 150).
* :class:`TimerHeap` orders future items by ``(when, seq)``: the earliest first,
  first-in first-out for equal times (marionette's sorted futures, with O(log n)
  inserts instead of an O(n) sorted-list insert).

Both are synchronous and read no clock: the caller passes ``now``. Neither
removes an item in the middle; the caller drops entries lazily (it knows which
items became stale, e.g. cancelled tasks) and calls ``compact(keep)`` when stale
entries pile up, so cancelling is O(1) and memory stays bounded.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, final

__all__ = ["ReadyQueue", "TimerHeap"]

T = TypeVar("T")


@final
class ReadyQueue(Generic[T]):
    """Runnable items by ``(priority, arrival order)``; lower priority first."""

    __slots__ = ("_levels", "_priorities")

    def __init__(self) -> None:
        self._levels: dict[int, deque[T]] = {}
        self._priorities: list[int] = []

    def __len__(self) -> int:
        """Return the number of entries (stale ones included until popped or compacted)."""
        return sum(map(len, self._levels.values()))

    def __repr__(self) -> str:
        return f"<ReadyQueue entries={len(self)} priorities={len(self._levels)}>"

    def push(self, priority: int, item: T) -> None:
        """Add ``item`` behind every entry of the same or a better priority."""
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = deque()
            heapq.heappush(self._priorities, priority)
        level.append(item)

    def push_front(self, priority: int, item: T) -> None:
        """Put ``item`` back at the head of its priority (it was popped and not run)."""
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = deque()
            heapq.heappush(self._priorities, priority)
        level.appendleft(item)

    def pop(self) -> T | None:
        """Remove and return the first entry of the best priority, or ``None`` if empty."""
        priorities = self._priorities
        levels = self._levels
        while priorities:
            level = levels[priorities[0]]
            if level:
                return level.popleft()
            del levels[heapq.heappop(priorities)]
        return None

    def __iter__(self) -> Iterator[T]:
        """Iterate over the entries in pop order (for inspection; O(n log k))."""
        for priority in sorted(self._levels):
            yield from self._levels[priority]

    def compact(self, keep: Callable[[T], bool]) -> int:
        """Drop every entry for which ``keep`` is false; return how many were dropped."""
        dropped = 0
        for priority, level in list(self._levels.items()):
            kept = deque(item for item in level if keep(item))
            dropped += len(level) - len(kept)
            self._levels[priority] = kept
        return dropped

    def clear(self) -> list[T]:
        """Remove every entry and return them in pop order."""
        items = list(self)
        self._levels.clear()
        self._priorities.clear()
        return items


@final
class TimerHeap(Generic[T]):
    """Items due at a time, earliest first and FIFO among equal times (a binary heap)."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    def __len__(self) -> int:
        """Return the number of entries (stale ones included until popped or compacted)."""
        return len(self._heap)

    def __repr__(self) -> str:
        return f"<TimerHeap entries={len(self._heap)} next={self.next_when()!r}>"

    def push(self, when: float, item: T) -> bool:
        """Add ``item`` due at ``when``; return whether it is now the earliest entry."""
        seq = self._seq = self._seq + 1
        heap = self._heap
        heapq.heappush(heap, (when, seq, item))
        return heap[0][1] == seq

    def next_when(self) -> float | None:
        """Return when the earliest entry is due, or ``None`` if there is none."""
        heap = self._heap
        return heap[0][0] if heap else None

    def peek(self) -> tuple[float, T] | None:
        """Return the earliest ``(when, item)`` without removing it, or ``None``."""
        heap = self._heap
        if not heap:
            return None
        when, _, item = heap[0]
        return when, item

    def pop_due(self, now: float) -> T | None:
        """Remove and return the earliest entry if it is due at ``now``, else ``None``."""
        heap = self._heap
        if heap and heap[0][0] <= now:
            return heapq.heappop(heap)[2]
        return None

    def pop(self) -> tuple[float, T]:
        """Remove and return the earliest ``(when, item)``; raise IndexError if empty."""
        when, _, item = heapq.heappop(self._heap)
        return when, item

    def __iter__(self) -> Iterator[tuple[float, T]]:
        """Iterate over ``(when, item)`` in due order (for inspection; O(n log n))."""
        for when, _, item in sorted(self._heap, key=lambda entry: entry[:2]):
            yield when, item

    def compact(self, keep: Callable[[T], bool]) -> int:
        """Drop every entry for which ``keep`` is false; return how many were dropped."""
        before = len(self._heap)
        self._heap = [entry for entry in self._heap if keep(entry[2])]
        heapq.heapify(self._heap)
        return before - len(self._heap)

    def clear(self) -> list[T]:
        """Remove every entry and return the items in due order."""
        items = [item for _, item in self]
        self._heap.clear()
        return items
