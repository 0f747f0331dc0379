"""Admission control for the engine: the global token bucket and per-key limits.

A popped task is *admitted* when it may start now. Otherwise it is set aside
without holding a worker slot:

* its ``concurrency_key`` is at its limit -> it waits in that key's FIFO and goes
  back to the front of the ready queue when a task with the key finishes;
* the global bucket is empty -> it goes back to the front of the ready queue and
  one worker sleeps until the next token (the others queue behind it);
* its ``rate_key`` bucket is empty -> a token is *reserved* (the bucket borrows
  from the future) and the task waits on the timer heap until that token's time.

Checks run in that order, so a task held back by concurrency consumes no token.
"""

# The engine's mixins and TaskHandle are friends: the handle is the engine's record.
# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ._handle import IN_KEY_WAIT, IN_READY, IN_TIMERS, KEY_RESERVED, TaskHandle
from ._ratelimit import RateLimit, TokenBucket

if TYPE_CHECKING:
    from ._scheduler import ReadyQueue

__all__ = ["ADMITTED", "PARKED", "LimitsMixin"]

ADMITTED: Final = 0.0
PARKED: Final = -1.0
_IDLE_KEYS: Final = 1024  # key buckets kept before full (idle) ones are forgotten
Handle = TaskHandle[Any]


class LimitsMixin:
    """Global and per-key rate and concurrency limits (state lives on the engine)."""

    __slots__ = ()

    _bucket: TokenBucket | None
    _rate_limits: dict[str, RateLimit]
    _concurrency_limits: dict[str, int]
    _key_buckets: dict[str, TokenBucket]
    _key_running: dict[str, int]
    _key_waiting: dict[str, deque[Handle]]
    _rate_lock: asyncio.Lock
    _ready: ReadyQueue[Handle]
    _idle: deque[asyncio.Future[None]]

    if TYPE_CHECKING:  # provided by the engine

        def _now(self) -> float: ...

        def _wake_worker(self) -> None: ...

        def _schedule(self, when: float, handle: Handle) -> None: ...

    def _admit(self, handle: Handle, now: float) -> float:
        """Return ADMITTED (run it), a wait in seconds (> 0), or PARKED (set aside)."""
        opts = handle._opts
        ckey = opts.concurrency_key
        if ckey is not None and self._key_running.get(ckey, 0) >= self._key_limit(ckey):
            handle._where = IN_KEY_WAIT
            self._key_waiting.setdefault(ckey, deque()).append(handle)
            return PARKED
        bucket = self._bucket
        if bucket is not None and not bucket.try_acquire(now):
            self._ready.push_front(opts.priority, handle)
            return bucket.wait_time(now) or 1e-9
        rkey = opts.rate_key
        if rkey is not None and not handle._flags & KEY_RESERVED:
            handle._flags |= KEY_RESERVED
            wait = self._key_bucket(rkey, now).reserve(now)
            if wait > 0.0:
                if bucket is not None:
                    bucket.refund(now)
                handle._where = IN_TIMERS
                handle._when = now + wait
                self._schedule(now + wait, handle)
                return PARKED
        handle._flags &= ~KEY_RESERVED
        if ckey is not None:
            self._key_running[ckey] = self._key_running.get(ckey, 0) + 1
        return ADMITTED

    def _key_limit(self, key: str) -> int:
        limits = self._concurrency_limits
        return limits[key] if key in limits else limits["*"]

    def _key_bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._key_buckets.get(key)
        if bucket is None:
            buckets = self._key_buckets
            if len(buckets) >= _IDLE_KEYS:  # a full bucket is the same as a new one
                for idle_key in [k for k, b in buckets.items() if b.is_full(now)]:
                    del buckets[idle_key]
            limits = self._rate_limits
            limit = limits[key] if key in limits else limits["*"]
            bucket = buckets[key] = limit.bucket(now)
        return bucket

    async def _wait_for_token(self, wait: float) -> None:
        """Sleep until the global bucket has a token; one worker sleeps, the rest queue."""
        bucket = self._bucket
        assert bucket is not None
        async with self._rate_lock:
            while wait > 0.0:
                await asyncio.sleep(wait)
                wait = bucket.wait_time(self._now())

    def _release_key(self, key: str) -> None:
        """A task holding ``key`` ended: free its slot and requeue the next waiter."""
        running = self._key_running[key] - 1
        if running:
            self._key_running[key] = running
        else:
            del self._key_running[key]
        waiting = self._key_waiting.get(key)
        if waiting:
            handle = waiting.popleft()
            if not waiting:
                del self._key_waiting[key]
            handle._where = IN_READY
            self._ready.push_front(handle._opts.priority, handle)
            if self._idle:
                self._wake_worker()

    def _unpark_key_waiter(self, handle: Handle) -> None:
        """Remove a cancelled task from its key's wait list."""
        key = handle._opts.concurrency_key
        assert key is not None
        waiting = self._key_waiting[key]
        waiting.remove(handle)
        if not waiting:
            del self._key_waiting[key]
