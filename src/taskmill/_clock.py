"""The one place in taskmill that reads time.

Everything else asks this module, so the virtual-time loop in :mod:`taskmill.testing`
can make every time-dependent test instant and exact.

* :func:`monotonic` is the running event loop's clock (``loop.time()``) when called
  inside a loop, otherwise :func:`time.monotonic`.
* :func:`now` is aware UTC wall time. Inside a virtual-time loop it follows the
  virtual clock: ``start wall time + (loop.time() - start loop time)``.
* :func:`sleep_sync` is the blocking sleep used by the synchronous retry driver.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import time as _time

__all__ = ["monotonic", "now", "real_monotonic", "real_now", "sleep_sync", "wall_time"]

UTC = _dt.UTC


def real_monotonic() -> float:
    """Return the process' real monotonic clock, ignoring any virtual time."""
    return _time.monotonic()


def real_now() -> _dt.datetime:
    """Return the real aware UTC wall time, ignoring any virtual time."""
    return _dt.datetime.now(UTC)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def monotonic() -> float:
    """Return seconds on the running loop's clock (or the process' monotonic clock)."""
    loop = _running_loop()
    if loop is None:
        return _time.monotonic()
    return loop.time()


def wall_time() -> float:
    """Return POSIX seconds of wall time that follow the virtual clock when one runs."""
    loop = _running_loop()
    wall_at = getattr(loop, "virtual_wall_time", None)
    if wall_at is not None:
        return float(wall_at())
    return _time.time()


def now() -> _dt.datetime:
    """Return the current aware UTC datetime (virtual inside a virtual-time loop)."""
    loop = _running_loop()
    wall_at = getattr(loop, "virtual_wall_time", None)
    if wall_at is not None:
        return _dt.datetime.fromtimestamp(float(wall_at()), UTC)
    return _dt.datetime.now(UTC)


def sleep_sync(seconds: float) -> None:
    """Block the calling thread for ``seconds`` (used by the synchronous retry driver)."""
    if seconds > 0:
        _time.sleep(seconds)
