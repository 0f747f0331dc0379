"""Fixtures for the dashboard: a SQLite store in tmp_path, and the Redis fixtures.

The Redis fixtures are the ones of tests/redis/conftest.py (a private redis-server on a
free loopback port), loaded from that file so both directories share one definition.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskmill.sqlite import SqliteStore

from .web_support import Filled, fill


def _load_redis_fixtures() -> Any:
    path = Path(__file__).parent.parent / "redis" / "conftest.py"
    spec = importlib.util.spec_from_file_location("taskmill_tests_redis_fixtures", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_redis = _load_redis_fixtures()
redis_server = _redis.redis_server
redis_url = _redis.redis_url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "tasks.db") as opened:
        yield opened


@pytest.fixture
async def filled(store: SqliteStore) -> Filled:
    return await fill(store)
