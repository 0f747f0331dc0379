"""Enqueue jobs for one contestant, run inside that contestant's virtualenv.

Usage: python enqueue.py APP N PAYLOAD_BYTES [--submit-rates]

Prints one JSON object: ``seconds`` (wall time of the enqueue) and the app's extra figures.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import time
from typing import Any


def main() -> None:
    name, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    module = importlib.import_module(f"{name}_app")
    payload = "x" * size if size else None
    out: dict[str, Any] = {}
    started = time.perf_counter()
    extra = module.enqueue(count, payload)
    if inspect.isawaitable(extra):
        extra = asyncio.run(extra)  # type: ignore[arg-type]
    out["seconds"] = time.perf_counter() - started
    if isinstance(extra, dict):
        out.update(extra)
    if "--submit-rates" in sys.argv:
        out.update(asyncio.run(module.submit_rates(count)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
