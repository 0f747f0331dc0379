"""A loopback TCP proxy for partition tests: pass, delay, stall (blackhole) or cut traffic.

The proxy runs its own asyncio loop in a daemon thread, so sync tests (which spawn
worker processes) and async tests can both drive it. Clients connect to
``proxy.port`` and are forwarded to ``127.0.0.1:target``. Faults, in both directions:

* :meth:`stall` (a blackhole): bytes are held, nothing is delivered, new connections
  are accepted but go nowhere; :meth:`heal` delivers what was held, as TCP would once a
  partition ends. A request the client gave up on may thus still reach the server
  later: a lost reply.
* :meth:`cut`: every open connection is reset and new ones are reset at once.
* :meth:`delay`: each chunk is delivered ``seconds`` late (``0`` turns it off).

Usage::

    with Proxy(target_port) as proxy:
        url = proxy.url
        proxy.stall()
        ...
        proxy.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

_CHUNK = 65536


class Proxy:
    """Forward loopback TCP connections to ``127.0.0.1:target``, with injectable faults."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._cut = False
        self._delay = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- faults -------------------------------------------------------------------------
    def stall(self) -> None:
        """Hold every byte in both directions until :meth:`heal` (a blackhole)."""
        self._call(self._set(flowing=False))

    def cut(self) -> None:
        """Reset every connection now and every new one until :meth:`heal`."""
        self._call(self._set(cut=True))

    def delay(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` late (both directions)."""
        self._call(self._set(delay=seconds))

    def heal(self) -> None:
        """End :meth:`stall`, :meth:`cut` and :meth:`delay`; held bytes are delivered."""
        self._call(self._set(flowing=True, cut=False, delay=0.0))

    # -- the loop side ------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _set(
        self, *, flowing: bool | None = None, cut: bool | None = None, delay: float | None = None
    ) -> None:
        assert self._flowing is not None
        if delay is not None:
            self._delay = delay
        if cut is not None:
            self._cut = cut
            if cut:
                for writer in list(self._writers):
                    writer.transport.abort()
        if flowing is True:
            self._flowing.set()
        elif flowing is False:
            self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, writer)),
            asyncio.create_task(self._pump(up_reader, writer, up_writer)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            self._writers.difference_update((writer, up_writer))

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, other: asyncio.StreamWriter
    ) -> None:
        assert self._flowing is not None
        clean = False
        try:
            while True:
                await self._flowing.wait()
                chunk = await source.read(_CHUNK)
                if not chunk:
                    clean = not self._cut
                    break
                await self._flowing.wait()
                if self._delay > 0:
                    await asyncio.sleep(self._delay)
                if self._cut:
                    break
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end the other one too. A clean end (EOF) closes after
            # delivering what was written; anything else is a reset.
            for end in (sink, other):
                with contextlib.suppress(Exception):
                    if clean:
                        end.close()
                    else:
                        end.transport.abort()
