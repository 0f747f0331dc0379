"""Settings shared by every contestant's app module (read from the environment)."""

from __future__ import annotations

import os

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
COUNTER = "bench:counter"
