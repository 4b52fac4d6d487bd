"""Several processes answering on one port (setting ``processes``).

One Python process answers at most one core's worth of requests; an acknowledgement costs
several times a bare aiohttp handler's CPU (validation, the log line, the durable insert),
so on a machine with more cores the daemon needs more processes to keep up with a burst.

The primary (the process ``serve`` started) binds one listening socket per process on the
same address with ``SO_REUSEPORT`` (the kernel spreads connections over them), keeps one,
and starts a receiver for each other one: ``notifyd serve`` again, with the socket and the
primary's enqueue link handed over. Receivers serve every route but run no worker; their
jobs are committed by the primary (``notifyd.storage.enqueue_link``). A receiver that dies
is started again on the same socket, whose queued connections wait for it (one that keeps
dying at start-up has its socket served by the primary). SIGHUP is passed on; on SIGTERM
the primary lets the receivers answer what they hold, then drains its worker. A receiver
whose primary is gone stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

log = structlog.get_logger("notifyd")

RESTART_DELAY_SECONDS = 1.0
STOP_SECONDS = 60.0
# A receiver that exits this soon after it started, this many times in a row, cannot run
# (a broken config read only by it, a resource limit): the primary answers on its socket.
QUICK_EXIT_SECONDS = 10.0
QUICK_EXITS = 3


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on one address, the kernel balancing connections between
    them. Port 0 takes a free port for all of them."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockets[0].getsockname() if len(sockets) > 1 else address)
            sock.listen(512)
        return sockets
    except OSError:
        for sock in sockets:
            sock.close()
        raise


class Receivers:
    """The primary's receiver processes: started, restarted when they die, told of SIGHUP,
    and stopped last."""

    def __init__(
        self,
        sockets: list[socket.socket],
        enqueue_link: Path,
        argv: list[str],
        take_over: Callable[[socket.socket], Awaitable[None]],
    ) -> None:
        """``argv``: the ``serve`` options the primary was started with (config, overrides);
        ``take_over``: serve a socket in the primary, for a receiver that cannot run (the
        kernel keeps giving that socket connections, which must not wait forever)."""
        self.sockets = sockets
        self.enqueue_link = enqueue_link
        self.argv = argv
        self.take_over = take_over
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False
        self._served_here: list[socket.socket] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._supervisors = [
            loop.create_task(self._supervise(number, sock))
            for number, sock in enumerate(self.sockets, start=1)
        ]

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes.values() if p.returncode is None]

    def send(self, signum: int) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM to every receiver and wait for them (they answer what they hold first)."""
        self._stopping = True
        self.send(signal.SIGTERM)
        waiting = [p.wait() for p in self._processes.values() if p.returncode is None]
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), STOP_SECONDS)
        except TimeoutError:
            self.send(signal.SIGKILL)
        for task in self._supervisors:
            task.cancel()
        for task in self._supervisors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self.sockets:
            if sock not in self._served_here:  # a site of the primary closes those
                sock.close()

    async def _supervise(self, number: int, sock: socket.socket) -> None:
        quick_exits = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            fd = sock.fileno()
            env = {k: v for k, v in os.environ.items() if k not in _PRIMARY_ONLY}
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "notifyd",
                "serve",
                *self.argv,
                "--receiver-fd",
                str(fd),
                "--receiver-link",
                str(self.enqueue_link),
                pass_fds=[fd],
                env=env,
                start_new_session=False,
            )
            self._processes[number] = process
            log.info("receiver_started", receiver=number, pid=process.pid)
            code = await process.wait()
            if self._stopping:
                return
            quick_exits = quick_exits + 1 if loop.time() - started < QUICK_EXIT_SECONDS else 1
            if quick_exits >= QUICK_EXITS:
                log.error(
                    "receiver_failing",
                    receiver=number,
                    exit_code=code,
                    consequence="the primary answers on its socket from now on; "
                    "see the receiver's lines above for why it stops",
                )
                await self.take_over(sock)
                self._served_here.append(sock)
                return
            log.error(
                "receiver_exited",
                receiver=number,
                pid=process.pid,
                exit_code=code,
                consequence=f"started again in {RESTART_DELAY_SECONDS:g} s",
            )
            await asyncio.sleep(RESTART_DELAY_SECONDS)


# systemd's notification socket belongs to the main process (NotifyAccess=main).
_PRIMARY_ONLY = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
