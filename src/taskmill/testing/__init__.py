"""Tools for testing code that uses taskmill (and any asyncio code) on virtual time.

* :class:`VirtualTimeLoop`: an event loop whose clock jumps to the next timer
  whenever every task is blocked, so hour-long waits take microseconds and land
  on exact timestamps.
* :func:`run`: run a coroutine function on that loop (like :func:`asyncio.run`).
* :func:`wait_all_tasks_blocked`: order steps in a test without sleeping.
* The pytest plugin (installed with taskmill) runs ``async def`` tests on the
  virtual loop; ``@pytest.mark.real_time`` opts a test out.
* :class:`BackendConformance`: the checks every :class:`taskmill.abc.Backend`
  must pass; subclass it and provide a ``backend`` fixture.
"""

from taskmill.testing._conformance import BackendConformance as BackendConformance
from taskmill.testing._loop import VirtualTimeLoop as VirtualTimeLoop
from taskmill.testing._loop import run as run
from taskmill.testing._loop import wait_all_tasks_blocked as wait_all_tasks_blocked

__all__ = ["BackendConformance", "VirtualTimeLoop", "run", "wait_all_tasks_blocked"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
