"""The pure queues: ReadyQueue (priority, FIFO) and TimerHeap (when, FIFO)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill._scheduler import ReadyQueue, TimerHeap


def drain_ready(queue: ReadyQueue[object]) -> list[object]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


class TestReadyQueue:
    def test_go_worker_sequence(self) -> None:
        """Priorities 1,10,5,90,150 pop as 1,5,10,90,150 (go-worker popped 1 last)."""
        queue: ReadyQueue[object] = ReadyQueue()
        for priority in (1, 10, 5, 90, 150):
            queue.push(priority, priority)
        assert [1, 5, 10, 90, 150] == drain_ready(queue)

    @pytest.mark.parametrize(
        ("pushes", "expected"),
        [
            ([], []),
            ([(0, "a")], ["a"]),
            ([(0, "a"), (0, "b"), (0, "c")], ["a", "b", "c"]),
            ([(2, "a"), (1, "b"), (2, "c"), (1, "d")], ["b", "d", "a", "c"]),
            ([(-5, "neg"), (5, "pos"), (0, "zero")], ["neg", "zero", "pos"]),
        ],
    )
    def test_table(self, pushes: list[tuple[int, str]], expected: list[str]) -> None:
        """Lower priority first; FIFO within a priority."""
        queue: ReadyQueue[object] = ReadyQueue()
        for priority, item in pushes:
            queue.push(priority, item)
        assert len(pushes) == len(queue)
        assert expected == list(queue)
        assert expected == drain_ready(queue)
        assert 0 == len(queue)

    def test_push_front_goes_back_to_the_head(self) -> None:
        """An item put back is popped before its peers, not before better priorities."""
        queue: ReadyQueue[object] = ReadyQueue()
        queue.push(1, "a")
        queue.push(1, "b")
        first = queue.pop()
        queue.push(0, "urgent")
        queue.push_front(1, first)
        assert ["urgent", "a", "b"] == drain_ready(queue)
        queue.push_front(7, "alone")
        assert ["alone"] == drain_ready(queue)

    def test_compact_and_clear(self) -> None:
        """compact() drops unwanted entries keeping order; clear() empties."""
        queue: ReadyQueue[object] = ReadyQueue()
        for i in range(10):
            queue.push(i % 3, i)
        assert 5 == queue.compact(lambda item: item % 2 == 0)  # type: ignore[operator]
        assert 5 == len(queue)
        assert [0, 6, 4, 2, 8] == queue.clear()
        assert 0 == len(queue)
        assert queue.pop() is None
        assert "entries=0" in repr(queue)

    @given(st.lists(st.integers(min_value=-20, max_value=20), max_size=300))
    def test_pop_order_is_sorted_by_priority_then_arrival(self, priorities: list[int]) -> None:
        """Property: the pop order equals sorting by (priority, arrival)."""
        queue: ReadyQueue[object] = ReadyQueue()
        for seq, priority in enumerate(priorities):
            queue.push(priority, (priority, seq))
        assert sorted((p, s) for s, p in enumerate(priorities)) == drain_ready(queue)

    @given(st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=5)), max_size=200))
    def test_interleaved_push_pop_matches_a_model(self, ops: list[tuple[bool, int]]) -> None:
        """Property: any interleaving of pushes and pops matches a sorted-list model."""
        queue: ReadyQueue[object] = ReadyQueue()
        model: list[tuple[int, int]] = []
        for seq, (is_push, priority) in enumerate(ops):
            if is_push:
                queue.push(priority, (priority, seq))
                model.append((priority, seq))
                model.sort()
            else:
                assert (model.pop(0) if model else None) == queue.pop()
            assert len(model) == len(queue)


class TestTimerHeap:
    def test_fifo_for_equal_times(self) -> None:
        """marionette: equal timestamps keep insertion order."""
        heap: TimerHeap[object] = TimerHeap()
        for item in ("a", "b", "c"):
            heap.push(5.0, item)
        heap.push(1.0, "first")
        assert [(1.0, "first"), (5.0, "a"), (5.0, "b"), (5.0, "c")] == list(heap)
        assert "first" == heap.pop_due(5.0)
        assert ["a", "b", "c"] == [heap.pop_due(5.0) for _ in range(3)]

    def test_pop_due_respects_now(self) -> None:
        """Nothing is popped before its time; next_when tells the sleeper how long to wait."""
        heap: TimerHeap[object] = TimerHeap()
        assert heap.next_when() is None
        assert heap.peek() is None
        heap.push(10.0, "x")
        assert heap.pop_due(9.999) is None
        assert 10.0 == heap.next_when()
        assert (10.0, "x") == heap.peek()
        assert "x" == heap.pop_due(10.0)
        assert heap.pop_due(100.0) is None

    def test_push_reports_a_new_head(self) -> None:
        """push() says whether the sleeper must be woken (a new earliest entry)."""
        heap: TimerHeap[object] = TimerHeap()
        assert heap.push(10.0, "a")
        assert not heap.push(20.0, "b")
        assert not heap.push(10.0, "c")  # equal time goes behind: no new head
        assert heap.push(5.0, "d")

    def test_marionette_thousand_random_inserts_stay_sorted(self) -> None:
        """marionette: 1000 random inserts come out sorted."""
        rng = random.Random(7)
        heap: TimerHeap[object] = TimerHeap()
        times = [rng.uniform(-1000, 1000) for _ in range(1000)]
        for i, when in enumerate(times):
            heap.push(when, i)
        out = []
        while heap.next_when() is not None:
            out.append(heap.pop()[0])
        assert sorted(times) == out

    def test_compact_and_clear(self) -> None:
        """compact() keeps heap order; clear() returns items in due order."""
        heap: TimerHeap[object] = TimerHeap()
        for i in range(10):
            heap.push(float(10 - i), i)
        assert 5 == heap.compact(lambda item: item % 2 == 1)  # type: ignore[operator]
        assert [9, 7, 5, 3, 1] == heap.clear()
        assert 0 == len(heap)
        assert "entries=0" in repr(heap)

    @given(
        st.lists(
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda f: round(f, 1)),
            max_size=300,
        )
    )
    def test_pop_order_is_sorted_by_when_then_seq(self, times: list[float]) -> None:
        """Property: pop order equals sorting by (when, insertion order)."""
        heap: TimerHeap[object] = TimerHeap()
        for seq, when in enumerate(times):
            heap.push(when, seq)
        out = []
        while heap.next_when() is not None:
            out.append(heap.pop())
        assert sorted((w, s) for s, w in enumerate(times)) == out
