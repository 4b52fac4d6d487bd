"""One writer of notifications for several receiving processes on one SQLite database.

SQLite lets one connection write at a time and makes the others wait by sleeping (1, 2, 5,
10 ms… between tries): two processes group-committing side by side spend their time asleep,
and their acknowledgements' p99 went from 30 ms to over a second (measured with two
``serve`` processes on one port). So when ``serve`` runs several processes, only the primary
commits notifications; the others (receivers) send each one over a Unix socket and answer
their caller once the primary says it is committed. The primary enqueues what arrives exactly
as if its own endpoint had received it, so it joins the same group commits.

The frames are a 4-byte length and an orjson object: ``{"id", "origin", "max_attempts"}`` in,
``{"id", "job_id", "created"}`` or ``{"id", "error"}`` out; ``{"id", "ask": "problems"}``
asks what the primary's health check would report (its worker is there), answered
``{"id", "problems": [...]}``. The socket lives in the data
folder (0700): only the daemon's user can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from notifyd.errors import StorageError
from notifyd.records import (
    Dialect,
    EnqueueResult,
    Notification,
    NotificationKind,
    Origin,
    Upload,
)

log = structlog.get_logger("notifyd.storage")

_LENGTH = struct.Struct("!I")
MAX_FRAME = 1024 * 1024  # a notification is a few hundred bytes

Enqueue = Callable[[Origin, int], Awaitable[EnqueueResult]]


def origin_to_wire(origin: Origin) -> dict[str, Any]:
    """orjson writes the dataclass itself (its enums as their values)."""
    kind = "upload" if isinstance(origin, Upload) else "notification"
    return {"type": kind, "fields": origin}


def origin_from_wire(data: dict[str, Any]) -> Origin:
    """The origin a receiver sent; a frame that is not one raises ValueError naming why."""
    kind = data.get("type")
    fields = data.get("fields")
    if not isinstance(fields, dict):
        raise ValueError("an origin without its fields")
    try:
        if kind == "upload":
            return Upload(**fields)
        if kind == "notification":
            fields["kind"] = NotificationKind(fields["kind"])
            fields["dialect"] = Dialect(fields["dialect"])
            return Notification(**fields)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a {kind}: {exc}") from None
    raise ValueError(f"unknown origin type {kind!r}")


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of the stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    value = orjson.loads(await reader.readexactly(length))
    if not isinstance(value, dict):
        raise ValueError("a frame that is not an object")
    return value


def _frame(value: dict[str, Any]) -> bytes:
    body = orjson.dumps(value)
    return _LENGTH.pack(len(body)) + body


class _Outbox:
    """Frames written in one turn of the event loop leave in one send, not one each."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []

    def put(self, value: dict[str, Any]) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self._flush)
        self._frames.append(_frame(value))

    def _flush(self) -> None:
        frames, self._frames = self._frames, []
        if not self.writer.is_closing():
            self.writer.write(b"".join(frames))


class EnqueueServer:
    """The primary's side: enqueue what receivers send, answer each when committed."""

    def __init__(self, path: Path, enqueue: Enqueue, problems: Callable[[], list[str]]) -> None:
        self.path = path
        self._enqueue = enqueue
        self._problems = problems
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.receivers_ready = 0

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # Closing a connection ends its reading; what it has under way is still answered.
        for writer in list(self._connections.values()):
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        answering: set[asyncio.Task[None]] = set()
        outbox = _Outbox(writer)
        try:
            while (frame := await _read_frame(reader)) is not None:
                job = asyncio.get_running_loop().create_task(self._answer(frame, outbox))
                answering.add(job)
                job.add_done_callback(answering.discard)
        except asyncio.IncompleteReadError:
            log.error("enqueue_link_broken", error="a receiver stopped in the middle of a frame")
        except (ValueError, ConnectionError) as exc:
            log.error("enqueue_link_broken", error=str(exc) or type(exc).__name__)
        finally:
            # What is under way is committed and answered before the connection closes.
            if answering:
                await asyncio.gather(*answering, return_exceptions=True)
            writer.close()
            self._connections.pop(task, None)

    async def _answer(self, frame: dict[str, Any], outbox: _Outbox) -> None:
        request_id = frame.get("id")
        reply: dict[str, Any]
        if frame.get("ask") == "problems":
            outbox.put({"id": request_id, "problems": self._problems()})
            return
        try:
            origin = origin_from_wire(frame["origin"])
            stored = await self._enqueue(origin, int(frame["max_attempts"]))
        except StorageError as exc:
            reply = {"id": request_id, "error": exc.message}
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"id": request_id, "error": f"a malformed enqueue frame: {exc}"}
        else:
            reply = {"id": request_id, "job_id": stored.job_id, "created": stored.created}
        outbox.put(reply)


class EnqueueLink:
    """A receiver's side: one connection to the primary, many enqueues in flight on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: _Outbox | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._replies: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect, waiting for the primary to listen (it starts its receivers first)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                self._outbox = _Outbox(self._writer)
                break
            except OSError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise StorageError(
                        f"cannot reach the primary process at {self.path}: {exc}"
                    ) from None
                await asyncio.sleep(0.05)
        self._replies = asyncio.get_running_loop().create_task(self._read_replies())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._replies is not None:
            self._replies.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replies

    async def enqueue(self, origin: Origin, *, max_attempts: int) -> EnqueueResult:
        reply = await self._request(
            {"origin": origin_to_wire(origin), "max_attempts": max_attempts}
        )
        if "error" in reply:
            raise StorageError(str(reply["error"]))
        return EnqueueResult(job_id=int(reply["job_id"]), created=bool(reply["created"]))

    async def primary_problems(self) -> list[str]:
        """What stops the primary (its worker, its database) from doing its work."""
        try:
            reply = await asyncio.wait_for(self._request({"ask": "problems"}), 5.0)
        except (StorageError, TimeoutError) as exc:
            return [f"the primary process does not answer: {exc or 'no answer in 5 s'}"]
        return [str(problem) for problem in reply.get("problems", [])]

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        writer, outbox = self._writer, self._outbox
        if writer is None or outbox is None or writer.is_closing() or self.closed.is_set():
            raise StorageError("the primary process is gone: this receiver is stopping")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        outbox.put({"id": request_id, **frame})
        try:
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def _read_replies(self) -> None:
        assert self._reader is not None
        reason = "the primary process closed the link"
        try:
            while (reply := await _read_frame(self._reader)) is not None:
                future = self._waiting.pop(reply.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (ValueError, asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"the link to the primary process broke: {exc}"
        finally:
            # Whether those were committed is unknown: their callers are not acknowledged
            # (a notification BIMserver resends, or that reached the primary, is one job).
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(StorageError(reason))
            self._waiting.clear()
            self.closed.set()
