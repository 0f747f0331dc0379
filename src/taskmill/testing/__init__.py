"""Tools for testing code that uses taskmill (and any asyncio code) on virtual time.

* :class:`VirtualTimeLoop`: an event loop whose clock jumps to the next timer
  whenever every task is blocked, so hour-long waits take microseconds and land
  on exact timestamps.
* :func:`run`: run a coroutine function on that loop (like :func:`asyncio.run`).
* :func:`wait_all_tasks_blocked`: order steps in a test without sleeping.
* The pytest plugin (installed with taskmill) runs ``async def`` tests on the
  virtual loop; ``@pytest.mark.real_time`` opts a test out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._loop import VirtualTimeLoop as VirtualTimeLoop
from ._loop import wait_all_tasks_blocked as wait_all_tasks_blocked

__all__ = ["VirtualTimeLoop", "run", "wait_all_tasks_blocked"]

T = TypeVar("T")


def run(
    main: Callable[[], Coroutine[Any, Any, T]],
    *,
    start: float = 0.0,
    wall_start: float | None = None,
    autojump_threshold: float = 0.0,
) -> T:
    """Run ``main()`` to completion on a fresh :class:`VirtualTimeLoop`.

    Args:
        main: A coroutine function taking no arguments.
        start: The initial ``loop.time()``.
        wall_start: POSIX wall time matching ``start`` (default: the real time now).
        autojump_threshold: Real seconds to wait for real I/O before jumping.

    Returns:
        Whatever ``main()`` returns.
    """

    def factory() -> asyncio.AbstractEventLoop:
        return VirtualTimeLoop(
            start=start, wall_start=wall_start, autojump_threshold=autojump_threshold
        )

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


for _name in __all__:
    if _name != "run":
        globals()[_name].__module__ = __name__
