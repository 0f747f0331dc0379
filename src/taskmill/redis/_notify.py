"""Cross-process completion notification over one shared pub/sub connection.

The terminal transition of every task PUBLISHes on the task's channel (inside the
same script). A waiter subscribes *first*, waits for Redis to confirm, and only then
reads the record, so a completion between the read and the wait cannot be missed.
While subscribed nothing polls; a slow safety re-read (``recheck`` seconds) covers a
pub/sub connection that dropped and lost a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

__all__ = ["Completions"]

logger = logging.getLogger(__name__)


@final
class Completions:
    """Routes published completions to the coroutines waiting for them."""

    __slots__ = ("_client", "_confirmed", "_pubsub", "_reader", "_waiters")

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}

    @property
    def waiting(self) -> int:
        """How many waits are in progress."""
        return sum(len(events) for events in self._waiters.values())

    @contextlib.asynccontextmanager
    async def subscribed(self, channel: str) -> AsyncIterator[asyncio.Event]:
        """Subscribe to ``channel``; the event is set on every message after Redis confirmed."""
        event = asyncio.Event()
        events = self._waiters.setdefault(channel, set())
        events.add(event)
        try:
            if channel not in self._confirmed:
                self._confirmed[channel] = asyncio.get_running_loop().create_future()
                await self._subscribe(channel)
            await asyncio.shield(self._confirmed[channel])
            yield event
        finally:
            events.discard(event)
            if not events:
                await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _unsubscribe(self, channel: str) -> None:
        del self._waiters[channel]
        confirmed = self._confirmed.pop(channel, None)
        if confirmed is not None and not confirmed.done():
            confirmed.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while self._waiters:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError):
                logger.warning("completion channel read failed; retrying", exc_info=True)
                await asyncio.sleep(0.1)
                continue
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif message["type"] == "message":
            for event in self._waiters.get(channel, ()):
                event.set()

    async def close(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        for confirmed in self._confirmed.values():
            confirmed.cancel()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
