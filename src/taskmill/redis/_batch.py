"""Coalescing: concurrent single calls ride in one round trip.

A caller that finds nothing in flight sends its own item at once (no added latency
for a lone caller); items that arrive meanwhile wait and go out together as the next
batch, so 100 concurrent submitters cost a handful of round trips, not 100.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar, final

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


@final
class Coalescer(Generic[T, R]):
    """Send items through ``send`` (one call per batch, results in order).

    Args:
        send: Sends a batch and returns one result per item, in order.
        max_batch: Largest batch sent at once.
    """

    __slots__ = ("_busy", "_max", "_pending", "_send", "_task")

    def __init__(
        self, send: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 500
    ) -> None:
        self._send = send
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        """Send ``item`` (alone, or with whatever else is waiting) and return its result."""
        if self._busy:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._pending.append((item, future))
            return await future
        self._busy = True
        try:
            (result,) = await self._send([item])
        finally:
            self._hand_over()
        return result

    def _hand_over(self) -> None:
        if self._pending:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max]
                del self._pending[: self._max]
                await self._deliver(batch)
        finally:
            self._busy = False
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to every waiter of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Stop draining; waiters still pending are cancelled."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
