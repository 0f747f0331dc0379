"""The SQLite store against the shared Backend conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskmill.abc import Backend
from taskmill.sqlite import SqliteStore
from taskmill.testing import BackendConformance


class TestSqliteStore(BackendConformance):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[SqliteStore]:
        store = await SqliteStore.open(
            tmp_path / "conformance.db", lease=self.lease, max_worker_lost=self.max_worker_lost
        )
        async with store:
            yield store


async def test_sqlite_store_is_a_backend(tmp_path: Path) -> None:
    """SqliteStore satisfies the runtime-checkable Backend protocol."""
    async with await SqliteStore.open(tmp_path / "p.db") as store:
        typed: Backend = store  # a static check: mypy verifies the protocol's signatures
        assert isinstance(typed, Backend)
