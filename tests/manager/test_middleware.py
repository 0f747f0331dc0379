"""Middleware around each attempt (first added = outermost) and lifecycle events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from taskmill import (
    CallNext,
    ConfigurationError,
    Constant,
    Retry,
    TaskInfo,
    TaskManager,
    TaskStatus,
)


def tracer(label: str, trail: list[str]) -> Any:
    async def middleware(task: TaskInfo, call_next: CallNext) -> Any:
        trail.append(f"{label}>")
        try:
            return await call_next()
        finally:
            trail.append(f"<{label}")

    return middleware


class TestMiddleware:
    async def test_first_added_is_outermost(self) -> None:
        """use(a); use(b): a wraps b wraps the task."""
        trail: list[str] = []

        async def task() -> str:
            trail.append("task")
            return "v"

        async with TaskManager() as mgr:
            mgr.use(tracer("a", trail))
            mgr.use(tracer("b", trail))
            assert "v" == await (await mgr.submit(task))
        assert ["a>", "b>", "task", "<b", "<a"] == trail

    async def test_middleware_sees_task_info_and_can_change_the_value(self) -> None:
        """Middleware gets a TaskInfo snapshot and may transform the result."""
        seen: list[TaskInfo] = []

        async def doubling(task: TaskInfo, call_next: CallNext) -> Any:
            seen.append(task)
            return 2 * await call_next()

        async with TaskManager() as mgr:
            mgr.use(doubling)
            handle = await mgr.with_options(name="n", priority=3).submit(asyncio.sleep, 0, 21)
            assert 42 == await handle
        assert 1 == len(seen)
        assert (handle.id, "n", 3, TaskStatus.RUNNING, 1) == (
            seen[0].id,
            seen[0].name,
            seen[0].priority,
            seen[0].status,
            seen[0].attempts,
        )

    async def test_middleware_runs_per_attempt_and_errors_count_as_failures(self) -> None:
        """Each attempt goes through the chain; a middleware error fails the attempt."""
        attempts: list[int] = []

        async def gate(task: TaskInfo, call_next: CallNext) -> Any:
            attempts.append(task.attempts)
            if task.attempts < 3:
                raise ValueError("not yet")
            return await call_next()

        async with TaskManager(retry=Retry(max_attempts=5, backoff=Constant(0))) as mgr:
            mgr.use(gate)
            assert "ok" == await (await mgr.submit(asyncio.sleep, 0, "ok"))
        assert [1, 2, 3] == attempts

    async def test_middleware_wraps_sync_tasks_and_timeouts(self) -> None:
        """Sync callables and timed attempts pass through middleware too."""
        trail: list[str] = []
        async with TaskManager(timeout=1) as mgr:
            mgr.use(tracer("m", trail))
            assert 3 == await (await mgr.submit(len, "abc"))
            handle = await mgr.submit(asyncio.sleep, 5)
            assert TaskStatus.TIMED_OUT == await handle.wait()
        assert ["m>", "<m", "m>", "<m"] == trail

    async def test_use_works_as_a_decorator_and_validates(self) -> None:
        """`use` returns the middleware; non-callables are refused."""
        mgr = TaskManager()

        @mgr.use
        async def noop(task: TaskInfo, call_next: CallNext) -> Any:
            return await call_next()

        assert callable(noop)
        with pytest.raises(ConfigurationError):
            mgr.use(42)  # type: ignore[arg-type]


class TestEvents:
    async def test_events_in_order(self) -> None:
        """submitted, started, retrying, started, finished."""
        events: list[tuple[str, TaskStatus, int]] = []
        calls = 0

        async def flaky() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError

        async with TaskManager(retry=Retry(max_attempts=2, backoff=Constant(1))) as mgr:
            for event in ("submitted", "started", "retrying", "finished"):

                def note(info: TaskInfo, event: str = event) -> None:
                    events.append((event, info.status, info.attempts))

                mgr.on(event, note)
            await (await mgr.submit(flaky)).wait()
        assert [
            ("submitted", TaskStatus.QUEUED, 0),
            ("started", TaskStatus.RUNNING, 1),
            ("retrying", TaskStatus.RETRYING, 1),
            ("started", TaskStatus.RUNNING, 2),
            ("finished", TaskStatus.SUCCEEDED, 2),
        ] == events

    async def test_callback_errors_are_logged_not_raised(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failing callback never affects the task or the manager."""

        def broken(info: TaskInfo) -> None:
            raise RuntimeError("callback bug")

        async with TaskManager() as mgr:
            mgr.on("finished", broken)
            mgr.on("started", broken)
            with caplog.at_level(logging.ERROR):
                assert 1 == await (await mgr.submit(asyncio.sleep, 0, 1))
        assert 2 == sum(
            "callback bug" in r.getMessage() or r.exc_info is not None for r in caplog.records
        )

    async def test_unsubscribe_and_validation(self) -> None:
        """`on` returns an unsubscribe function; unknown events are refused."""
        seen: list[str] = []
        async with TaskManager() as mgr:
            off = mgr.on("finished", lambda info: seen.append(info.id))
            first = await mgr.submit(asyncio.sleep, 0)
            await first
            off()
            await (await mgr.submit(asyncio.sleep, 0)).wait()
            with pytest.raises(ConfigurationError):
                mgr.on("exploded", print)
        assert [first.id] == seen
