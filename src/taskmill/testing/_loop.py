"""An asyncio event loop on virtual time that jumps to the next timer when idle.

This is asyncio's counterpart of trio's ``MockClock(autojump_threshold=...)``. It
is built on public asyncio API only: :class:`asyncio.SelectorEventLoop` accepts a
selector, and the selector is where the loop goes when it has nothing ready to run.
Our selector first polls real I/O; when nothing is ready it moves the virtual clock
straight to the earliest timer instead of waiting for it.

Real I/O and threads still work:

* work submitted with :meth:`~asyncio.AbstractEventLoop.run_in_executor` (and so
  :func:`asyncio.to_thread`) is counted; while any is in flight the loop waits in
  real time, so a thread is never "timed out" by a jump;
* with ``autojump_threshold > 0`` the loop waits that much real time for I/O before
  it jumps, for tests that talk to real sockets or subprocesses.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import selectors
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack, final

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

from taskmill import _clock
from taskmill._errors import ConfigurationError

__all__ = ["VirtualTimeLoop", "run", "wait_all_tasks_blocked"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Largest relative gap between the loop's computed deadline and a recorded timer
# for the two to be treated as the same instant (float rounding of now + timeout).
_SNAP = 1e-9


@final
class _AutojumpSelector(selectors.BaseSelector):
    """Delegating selector that advances the owning loop's virtual clock when idle."""

    def __init__(self, inner: selectors.BaseSelector, threshold: float) -> None:
        self._inner = inner
        self._threshold = threshold
        self.loop: VirtualTimeLoop | None = None

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        if loop is None or timeout == 0:
            return self._inner.select(timeout)
        # Nothing is ready to run: every task is blocked. Real I/O first.
        events = self._inner.select(0)
        if events:
            return events
        if loop.wake_idle_waiters():
            return []
        if timeout is None:
            # No timers at all: only real I/O or a thread can make progress.
            return self._inner.select(None)
        wait = timeout if loop.executor_jobs else min(timeout, self._threshold)
        if wait > 0:
            events = self._inner.select(wait)
            if events:
                return events
        loop.jump_to_next_timer(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is virtual and jumps to the next timer.

    ``loop.time()`` starts at ``start`` and only moves when every task is blocked:
    then it jumps exactly to the earliest scheduled timer, so ``await
    asyncio.sleep(3600)`` returns at once with ``loop.time() == start + 3600``.

    Args:
        start: The initial value of ``loop.time()``.
        wall_start: The POSIX wall time that corresponds to ``start``; defaults to
            the real wall time at construction. :func:`taskmill._clock.now` follows it.
        autojump_threshold: Real seconds to wait for real I/O before jumping.
            ``0`` (the default) jumps as soon as the loop is idle; threads started
            with ``run_in_executor`` always hold the jump back until they finish.
    """

    def __init__(
        self,
        *,
        start: float = 0.0,
        wall_start: float | None = None,
        autojump_threshold: float = 0.0,
    ) -> None:
        self._virtual = float(start)
        self._start = float(start)
        self._wall_start = _clock.real_now().timestamp() if wall_start is None else wall_start
        self._whens: list[float] = []
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.executor_jobs = 0
        self.autojump_threshold = autojump_threshold
        selector = _AutojumpSelector(selectors.DefaultSelector(), autojump_threshold)
        super().__init__(selector)
        selector.loop = self
        if not autojump_threshold >= 0:  # also rejects NaN
            self.close()
            raise ConfigurationError(f"autojump_threshold must be >= 0, got {autojump_threshold!r}")

    # -- the clock --------------------------------------------------------------
    def time(self) -> float:
        """Return the virtual time."""
        return self._virtual

    def virtual_wall_time(self) -> float:
        """Return the POSIX wall time that corresponds to the current virtual time."""
        return self._wall_start + (self._virtual - self._start)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` at once; due timers run next."""
        if seconds < 0:
            raise ConfigurationError(f"cannot move time backwards by {seconds!r}")
        self._virtual += seconds

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` at loop time ``when`` (recorded for exact jumps)."""
        heapq.heappush(self._whens, when)
        return super().call_at(when, callback, *args, context=context)

    def jump_to_next_timer(self, timeout: float) -> None:
        """Advance to the timer the loop is waiting for (``timeout`` from now)."""
        target = self._virtual + timeout
        whens = self._whens
        tolerance = _SNAP * max(1.0, abs(target))
        # Deadlines at or before "now" have fired (the loop only asks to wait when its
        # earliest live timer is in the future); earlier ones than the target are
        # cancelled timers. Neither may pin the clock.
        while whens and (whens[0] <= self._virtual or whens[0] < target - tolerance):
            heapq.heappop(whens)
        if whens and whens[0] <= target + tolerance:
            target = whens[0]
        self._virtual = max(self._virtual, target)

    # -- threads ----------------------------------------------------------------
    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        """Run ``func`` in a thread; the clock does not jump while it runs."""
        future = super().run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _future: asyncio.Future[Any]) -> None:
        self.executor_jobs -= 1

    # -- idleness -----------------------------------------------------------------
    def add_idle_waiter(self) -> asyncio.Future[None]:
        """Return a future resolved the next time every task is blocked."""
        future: asyncio.Future[None] = self.create_future()
        self._idle_waiters.append(future)
        return future

    def wake_idle_waiters(self) -> bool:
        """Resolve pending idle waiters; return whether any were woken."""
        waiters, self._idle_waiters = self._idle_waiters, []
        woken = False
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
                woken = True
        return woken


async def wait_all_tasks_blocked() -> None:
    """Return once every other task on the virtual-time loop is blocked.

    The asyncio counterpart of :func:`trio.testing.wait_all_tasks_blocked`: it
    resumes before the clock would jump, so it orders steps in a test without sleeps.

    Raises:
        ConfigurationError: when the running loop is not a :class:`VirtualTimeLoop`.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise ConfigurationError(
            "wait_all_tasks_blocked() needs the virtual-time loop "
            "(taskmill.testing.VirtualTimeLoop); this test runs on real time"
        )
    await loop.add_idle_waiter()


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
