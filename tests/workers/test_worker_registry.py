"""WorkerRegistry: rebuy's WorkerConfiger / ProvideWorker / RunProvidedWorkers, no DI framework."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

import taskmill as tm


class Fetcher:
    """A component declaring two workers (like rebuy's CommitFetcher example)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def commits(self) -> None:
        self.seen.append(tm.current_subsystem())
        await asyncio.Event().wait()

    async def prs(self) -> None:
        self.seen.append(tm.current_subsystem())
        await asyncio.Event().wait()

    def workers(self) -> Iterable[tm.WorkerLike]:
        return [
            tm.DeclarativeWorker(worker=self.commits, name="Commits"),
            tm.DeclarativeWorker(worker=self.prs, name="PRs"),
        ]


class Failing:
    def workers(self) -> list[tm.WorkerLike]:
        async def fails() -> None:
            raise RuntimeError("broken")

        return [fails]


async def run_briefly(registry: tm.WorkerRegistry) -> None:
    task = asyncio.create_task(registry.run())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class TestWorkerRegistry:
    async def test_workers_are_named_after_their_component_type(self) -> None:
        """Each worker runs under 'module/Type', then its own name."""
        fetcher = Fetcher()
        registry = tm.WorkerRegistry()
        registry.provide(fetcher)
        await run_briefly(registry)
        assert ["/test_worker_registry/Fetcher/Commits", "/test_worker_registry/Fetcher/PRs"] == (
            fetcher.seen
        )

    async def test_factories_are_called_once_and_none_is_skipped(self) -> None:
        """A factory builds the component lazily, once; None (disabled) provides nothing."""
        built: list[Fetcher] = []

        def factory() -> Fetcher:
            built.append(Fetcher())
            return built[-1]

        registry = tm.WorkerRegistry()
        registry.provide(factory)
        registry.provide(lambda: None)
        registry.provide(None)
        assert 2 == len(registry)
        assert 2 == len(registry.workers())
        assert 2 == len(registry.workers())
        assert 1 == len(built)
        assert 1 == len(registry)

    async def test_a_class_is_used_as_a_factory(self) -> None:
        """Providing the class itself constructs it (like a dig constructor)."""
        registry = tm.WorkerRegistry()
        registry.provide(Fetcher)
        [component] = registry.components()
        assert isinstance(component, Fetcher)

    async def test_run_has_run_all_workers_semantics(self) -> None:
        """One failing worker stops the others and the error is raised in a group."""
        registry = tm.WorkerRegistry()
        registry.provide(Fetcher())
        registry.provide(Failing())
        with pytest.raises(ExceptionGroup) as info:
            await registry.run()
        assert ["broken"] == [str(e) for e in info.value.exceptions]

    def test_something_else_is_refused(self) -> None:
        """Neither a provider nor a factory: ConfigurationError at provide()."""
        with pytest.raises(tm.ConfigurationError):
            tm.WorkerRegistry().provide(42)  # type: ignore[arg-type]

    def test_factory_returning_junk_is_refused(self) -> None:
        """A factory must return a provider or None."""
        registry = tm.WorkerRegistry()
        registry.provide(lambda: 42)  # type: ignore[arg-type,return-value]
        with pytest.raises(tm.ConfigurationError):
            registry.workers()

    async def test_empty_registry_runs_nothing(self) -> None:
        """No providers: run() returns at once."""
        registry = tm.WorkerRegistry()
        await registry.run()
        assert "<WorkerRegistry providers=0>" == repr(registry)
