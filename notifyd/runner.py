"""Run service functions in worker processes, off the event loop.

IFC work is CPU-bound and runs C++ code that can crash or eat memory, so each service call runs
in a long-lived child process (started once, reused) with an address-space limit. The parent
talks to it over a pipe: the ticket goes in; progress, log lines and the result come out. A
timeout or a cancellation kills the child and starts a fresh one; a crash is reported as
``ServiceCrashed`` and the slot is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import resource
import signal
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from notifyd.errors import (
    InvalidModel,
    JobCancelled,
    Retry,
    ServiceCrashed,
    ServiceFailed,
    ServiceTimeout,
)
from notifyd.services import ExtendedData, Revision, ServiceContext, ServiceOutput, import_handler

log = structlog.get_logger("notifyd.runner")


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a child needs to run one service call; everything in it pickles."""

    handler: str
    context: ServiceContext


ProgressCallback = Callable[[int, str], Awaitable[None]]


class _ChildLog:
    """A service's logger: lines go to the parent, which logs them with the job's context."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn

    def _send(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self._conn.send(("log", level, event, {k: repr(v) for k, v in fields.items()}))

    def info(self, event: str, **fields: Any) -> None:
        self._send("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._send("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._send("error", event, fields)


def _child_main(conn: multiprocessing.connection.Connection, memory_limit_mb: int | None) -> None:
    """Serve tickets until the parent goes away; then end quietly, whatever was being sent.

    Ctrl-C reaches the whole process group: the parent decides what happens to running
    services (drain, then kill), so the child ignores SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        while True:
            ticket: Ticket = conn.recv()
            conn.send(("result", *_run_ticket(conn, ticket)))
    except (EOFError, OSError):  # the pipe is closed: the daemon stopped or was killed
        return


def _run_ticket(
    conn: multiprocessing.connection.Connection, ticket: Ticket
) -> tuple[str, Any, Any]:
    """(kind, value, detail): ("ok", output, None) or an error kind with its message."""

    def progress(percent: int, message: str = "") -> None:
        conn.send(("progress", int(percent), str(message)))

    try:
        handler = import_handler(ticket.handler)
        context = dataclasses.replace(ticket.context, log=_ChildLog(conn), progress=progress)
        output = handler(context)
    except (BrokenPipeError, EOFError):
        raise  # the parent is gone: nobody is waiting for the answer
    except InvalidModel as exc:
        return "invalid_model", str(exc), None
    except Retry as exc:
        return "retry", str(exc), exc.delay
    except MemoryError:
        return "memory", "the service ran out of memory (memory_limit_mb)", None
    except Exception as exc:
        return "exception", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=20)
    if not isinstance(output, ExtendedData | Revision):
        return (
            "exception",
            f"the service returned {type(output).__name__}, not ExtendedData or Revision",
            None,
        )
    return "ok", output, None


class _Slot:
    def __init__(self, ctx: multiprocessing.context.BaseContext, memory_limit_mb: int | None):
        parent, child = ctx.Pipe()
        self.conn = parent
        self.process = ctx.Process(  # type: ignore[attr-defined]
            target=_child_main, args=(child, memory_limit_mb), daemon=True, name="notifyd-service"
        )
        self.process.start()
        child.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ServicePool:
    """A fixed number of service processes; ``run`` borrows one for one service call."""

    def __init__(self, size: int, *, memory_limit_mb: int | None = None) -> None:
        self.size = size
        self.memory_limit_mb = memory_limit_mb
        # spawn, not fork: the parent has threads (the SQLite writer), which fork would copy
        # in whatever state they are in.
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Slot] | None = None
        self._all: set[_Slot] = set()

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        slots = await asyncio.gather(
            *(asyncio.to_thread(_Slot, self._ctx, self.memory_limit_mb) for _ in range(self.size))
        )
        for slot in slots:
            self._all.add(slot)
            self._idle.put_nowait(slot)

    async def close(self) -> None:
        for slot in list(self._all):
            slot.kill()
        self._all.clear()

    async def restart(self) -> None:
        """Replace every process, so that changed service code is imported afresh."""
        assert self._idle is not None
        for _ in range(self.size):
            slot = await self._idle.get()
            await self._replace(slot)

    async def _replace(self, slot: _Slot) -> None:
        assert self._idle is not None
        self._all.discard(slot)
        await asyncio.to_thread(slot.kill)
        fresh = await asyncio.to_thread(_Slot, self._ctx, self.memory_limit_mb)
        self._all.add(fresh)
        self._idle.put_nowait(fresh)

    async def run(
        self,
        ticket: Ticket,
        *,
        timeout: float,
        on_progress: ProgressCallback,
        cancelled: asyncio.Event | None = None,
    ) -> ServiceOutput:
        assert self._idle is not None, "ServicePool.start() was not awaited"
        slot = await self._idle.get()
        healthy = False
        try:
            output = await self._exchange(slot, ticket, timeout, on_progress, cancelled)
            healthy = True
            return output
        except (ServiceFailed, Retry):
            healthy = True  # the child answered; it can serve the next call
            raise
        finally:
            if healthy:
                self._idle.put_nowait(slot)
            else:
                await asyncio.shield(self._replace(slot))

    async def _exchange(
        self,
        slot: _Slot,
        ticket: Ticket,
        timeout: float,
        on_progress: ProgressCallback,
        cancelled: asyncio.Event | None,
    ) -> ServiceOutput:
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[Any] = asyncio.Queue()

        def readable() -> None:
            try:
                while slot.conn.poll():
                    messages.put_nowait(slot.conn.recv())
            except (EOFError, OSError):
                loop.remove_reader(slot.conn.fileno())
                messages.put_nowait(("died",))

        try:
            slot.conn.send(ticket)
        except OSError as exc:
            raise ServiceCrashed(f"the service process is gone ({exc})") from exc
        loop.add_reader(slot.conn.fileno(), readable)
        cancel_wait = asyncio.ensure_future(cancelled.wait()) if cancelled else None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    get = asyncio.ensure_future(messages.get())
                    waiting = {get} | ({cancel_wait} if cancel_wait else set())
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        raise JobCancelled(f"job {ticket.context.job_id} was cancelled")
                    message = get.result()
                    kind = message[0]
                    if kind == "progress":
                        await on_progress(message[1], message[2])
                    elif kind == "log":
                        _, level, event, fields = message
                        getattr(log, level, log.info)(event, job_id=ticket.context.job_id, **fields)
                    elif kind == "died":
                        await asyncio.to_thread(slot.process.join, 2)
                        code = slot.process.exitcode
                        raise ServiceCrashed(
                            f"the service process died (exit code {code}) while running "
                            f"{ticket.context.service}"
                        )
                    elif kind == "result":
                        return _outcome(message[1], message[2], message[3], ticket)
        except TimeoutError:
            raise ServiceTimeout(
                f"service {ticket.context.service} ran longer than its timeout of {timeout:g} s"
            ) from None
        finally:
            if cancel_wait is not None:
                cancel_wait.cancel()
            with contextlib.suppress(Exception):
                loop.remove_reader(slot.conn.fileno())


def _outcome(kind: str, value: Any, detail: Any, ticket: Ticket) -> ServiceOutput:
    if kind == "ok":
        return value
    if kind == "invalid_model":
        raise InvalidModel(value)
    if kind == "retry":
        raise Retry(value, delay=detail)
    if kind == "memory":
        raise ServiceFailed(f"service {ticket.context.service}: {value}")
    if detail:
        log.error(
            "service_raised",
            job_id=ticket.context.job_id,
            service=ticket.context.service,
            traceback=detail,
        )
    raise ServiceFailed(f"service {ticket.context.service} raised {value}")
