"""Reading a request body without letting a caller hold the daemon's memory or a connection.

A body is read within ``body_timeout_seconds`` and never waits more than
``body_idle_seconds`` for its next bytes; bodies being read share ``body_budget_bytes``
beyond the first ``SMALL_BODY`` bytes of each, so a crowd of large, stalled bodies is refused
with 503 while BIMserver's notifications (a kilobyte or two) always pass. aiohttp's own
decompression is off (``SERVER_OPTIONS``): a gzip or deflate body is inflated here, never
past ``max_body_bytes``, and any other encoding is refused by name. Every refusal is a
``BodyError`` carrying the HTTP status it is answered with.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from notifyd.errors import ProtocolError
from notifyd.protocol.rpc import exception_body

SMALL_BODY = 65_536

# For every server that serves notifyd's application: request bodies reach the handler as sent.
SERVER_OPTIONS: dict[str, Any] = {"auto_decompress": False}


class BodyError(ProtocolError):
    """The request body cannot be taken; ``status`` is the HTTP status of the answer."""

    status = 200

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyLimits:
    max_bytes: int
    timeout_seconds: float
    idle_seconds: float


class BodyBudget:
    """Bytes held by bodies being read, beyond the first ``SMALL_BODY`` of each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise BodyError(
                "notifyd is receiving too many large request bodies at once "
                f"(setting body_budget_bytes = {self.limit}); send it again later",
                503,
            )
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size


def expect_handler(limit: int) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """Answer ``Expect: 100-continue`` with the refusal itself when the declared body is over
    ``limit``, instead of inviting the body; an unknown expectation is refused as well."""

    async def expect_continue(request: web.Request) -> web.StreamResponse | None:
        expect = request.headers.get("Expect", "")
        if expect.lower() != "100-continue":
            return _refusal(BodyError(f"unsupported Expect header {expect[:60]!r}", 417))
        length = request.content_length
        if length is not None and length > limit:
            return _refusal(_too_large(length, limit))
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    return expect_continue


def _refusal(error: BodyError) -> web.Response:
    response = web.Response(
        body=orjson.dumps(exception_body(error.message)),
        status=error.status,
        content_type="application/json",
    )
    response.force_close()
    return response


async def read_body(request: web.Request, limits: BodyLimits, budget: BodyBudget) -> bytes:
    """The body as sent, inflated if it was gzip or deflate; raises BodyError."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise BodyError(
            f"Content-Encoding {encoding[:40]!r} is not supported; send the body "
            "uncompressed (as BIMserver does) or gzip",
            415,
        )
    length = request.content_length
    if length is not None and length > limits.max_bytes:
        raise _too_large(length, limits.max_bytes)
    content = request.content
    if content.is_eof():  # the whole body has arrived with the headers: the usual case
        raw = await content.read()
        if len(raw) > limits.max_bytes:
            raise _too_large(None, limits.max_bytes)
    else:
        raw = await _read_slowly(request, limits, budget)
    if encoding in ("identity", ""):
        return raw
    return _inflate(raw, encoding, limits.max_bytes)


async def _read_slowly(request: web.Request, limits: BodyLimits, budget: BodyBudget) -> bytes:
    chunks: list[bytes] = []
    size = 0
    held = 0
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(min(limits.idle_seconds, max(remaining, 0))):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise _timed_out(limits, size, remaining <= limits.idle_seconds) from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limits.max_bytes:
                raise _too_large(None, limits.max_bytes)
            over = max(0, size - SMALL_BODY) - held
            if over:
                budget.take(over)
                held += over
            chunks.append(chunk)
    finally:
        budget.give_back(held)


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    # 32 + 15: a gzip or zlib header, detected; HTTP's "deflate" is zlib, but some send raw.
    wbits = 47 if encoding != "deflate" or raw[:1] == b"\x78" else -15
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise _too_large(None, limit, inflated=True)
        out += inflater.flush()
    except zlib.error as exc:
        raise BodyError(f"the request body is not valid {encoding}: {exc}") from None
    if not inflater.eof:
        raise BodyError(f"the request body is not valid {encoding}: it ends early")
    return out


def _too_large(length: int | None, limit: int, *, inflated: bool = False) -> BodyError:
    if length is not None:
        text = f"the request body has {length} bytes; the limit is {limit}"
    elif inflated:
        text = f"the request body inflates to over the limit of {limit} bytes"
    else:
        text = f"the request body is over the limit of {limit} bytes"
    return BodyError(f"{text} (setting max_body_bytes)", 413)


def _timed_out(limits: BodyLimits, received: int, whole: bool) -> BodyError:
    if whole:
        text = f"the request body did not arrive within {limits.timeout_seconds:g} s"
    else:
        text = f"the request body stopped arriving for {limits.idle_seconds:g} s"
    return BodyError(f"{text} ({received} bytes received)", 408)
