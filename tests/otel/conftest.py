"""Fixtures: the Redis server fixtures of tests/redis/conftest.py, loaded under another name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _redis_fixtures() -> ModuleType:
    name = "taskmill_tests_redis_fixtures"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "redis" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_fixtures = _redis_fixtures()
redis_server = _fixtures.redis_server
redis_url = _fixtures.redis_url
