"""Limits aiohttp does not have: how many connections are open at once, and how long a new
connection may take to send its first request head.

aiohttp bounds a head's size, idle keep-alive connections and (through ``web.body``) bodies,
but a client that opens a connection and sends its head a byte every few seconds
(slowloris) holds it forever, and enough of them exhaust the process's file descriptors so
that BIMserver's notification cannot connect. The guard wraps each connection's protocol:
past ``max_connections`` a new connection is answered 503 and closed at once, and a
connection whose first head is not complete within ``head_timeout`` is closed. (A later
request on a kept-alive connection starts inside aiohttp's keep-alive handling; the
connection limit bounds what such a client can hold.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiohttp import web

log = structlog.get_logger("notifyd.web")

_END_OF_HEAD = b"\r\n\r\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 1\r\nContent-Length: 56\r\n\r\n"
    b'{"error": "too many connections to notifyd; try again"}\n'
)


@dataclass
class ConnectionLimits:
    max_connections: int = 1024
    head_timeout: float = 10.0
    open: int = 0


class _GuardedProtocol(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.counted = False
        self.head_seen = False
        self.tail = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.limits.open >= self.limits.max_connections:
            self.transport.write(_BUSY)
            self.transport.close()
            return
        self.limits.open += 1
        self.counted = True
        self.timer = asyncio.get_running_loop().call_later(
            self.limits.head_timeout, self._head_too_slow
        )
        self.inner.connection_made(transport)

    def _head_too_slow(self) -> None:
        if not self.head_seen and self.transport is not None:
            log.info("connection_closed_slow_head", seconds=self.limits.head_timeout)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.counted:
            return
        if not self.head_seen:
            window = self.tail + data
            if _END_OF_HEAD in window:
                self.head_seen = True
                if self.timer is not None:
                    self.timer.cancel()
            else:
                self.tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.counted:
            self.limits.open -= 1
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.counted:
            self.inner.resume_writing()


class GuardedTCPSite(web.TCPSite):
    """aiohttp's TCP site with every connection behind the guard."""

    def __init__(self, runner: web.BaseRunner, *args: Any, limits: ConnectionLimits, **kw: Any):
        super().__init__(runner, *args, **kw)
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        factory = cast(Callable[[], asyncio.Protocol], server)
        limits = self.limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GuardedProtocol(factory(), limits),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
