"""Named workers and logging subsystems (rebuy NamedWorker / logutil)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

import taskmill as tm


class TestSubsystem:
    def test_outside_any_subsystem_is_empty(self) -> None:
        """No subsystem: empty path and trace id."""
        assert ("", "") == (tm.current_subsystem(), tm.current_trace_id())

    def test_levels_nest_as_a_path_with_a_trace_id_each(self) -> None:
        """Each level adds '/name' and a 12-hex-character trace id."""
        with tm.subsystem("app") as outer:
            outer_trace = tm.current_trace_id()
            with tm.subsystem("indexer") as inner:
                assert ("/app", "/app/indexer") == (outer, inner)
                traces = tm.current_trace_id().split("/")
                assert outer_trace == traces[0]
                assert all(re.fullmatch(r"[0-9a-f]{12}", t) for t in traces)
            assert "/app" == tm.current_subsystem()
        assert "" == tm.current_subsystem()

    async def test_tasks_inherit_the_subsystem(self) -> None:
        """A task created inside a subsystem logs under the same path."""

        async def child() -> str:
            return tm.current_subsystem()

        with tm.subsystem("parent"):
            task = asyncio.create_task(child())
        assert "/parent" == await task

    def test_filter_adds_subsystem_and_trace_id(self) -> None:
        """SubsystemFilter adds the attributes and keeps every record."""
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
        with tm.subsystem("a"):
            assert tm.SubsystemFilter().filter(record)
            assert "/a" == getattr(record, "subsystem", None)
            assert tm.current_trace_id() == getattr(record, "trace_id", None)

    def test_filter_keeps_explicit_extras(self) -> None:
        """A record that already has a subsystem (extra=) keeps it."""
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
        record.subsystem = "/given"
        with tm.subsystem("a"):
            tm.SubsystemFilter().filter(record)
        assert "/given" == getattr(record, "subsystem", None)


class TestNamedWorker:
    async def test_each_run_is_a_subsystem_with_a_fresh_trace_id(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Logs inside a named worker carry its path; each run gets a new trace id."""
        log = logging.getLogger("test.named")
        caplog.set_level(logging.INFO, logger="test.named")
        caplog.handler.addFilter(tm.SubsystemFilter())

        async def work() -> None:
            log.info("working")

        worker = tm.named("outer", tm.named("inner", work))
        await worker.run()
        await worker.run()
        paths = [r.subsystem for r in caplog.records]  # type: ignore[attr-defined]
        traces = [r.trace_id for r in caplog.records]  # type: ignore[attr-defined]
        assert ["/outer/inner", "/outer/inner"] == paths
        assert traces[0] != traces[1]
        assert "" == tm.current_subsystem()

    def test_empty_name_is_refused(self) -> None:
        """A named worker needs a name."""
        with pytest.raises(tm.ConfigurationError):
            tm.named("", asyncio.sleep)  # type: ignore[arg-type]

    def test_repr_and_name(self) -> None:
        """The name is the worker's name (used by run_all_workers errors)."""

        async def work() -> None:
            return None

        worker = tm.named("fetch", work)
        assert "fetch" == worker.name
        assert repr(worker).startswith("<NamedWorker 'fetch'")

    async def test_run_all_workers_reports_the_name(self) -> None:
        """WorkerExitedPrematurely names a named worker by its name."""

        async def quick() -> None:
            return None

        with pytest.raises(ExceptionGroup) as info:
            await tm.run_all_workers(tm.named("quick", quick))
        error = info.value.exceptions[0]
        assert isinstance(error, tm.WorkerExitedPrematurely)
        assert "quick" == error.worker
