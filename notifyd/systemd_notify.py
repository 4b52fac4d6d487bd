"""systemd's notify protocol (``sd_notify(3)``): newline-separated ``KEY=VALUE`` states in
one datagram to the Unix socket named by ``$NOTIFY_SOCKET``.

The protocol is a single ``sendto``; the stdlib socket does it without a dependency. Outside
systemd (no ``NOTIFY_SOCKET``) every call does nothing, so the daemon runs the same under a
terminal, Docker or ``Type=notify``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("notifyd.systemd")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self._watchdog_seconds = _watchdog_seconds(environ)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_seconds(self) -> float | None:
        """``WatchdogSec`` for this process, when systemd asked for keep-alive pings."""
        return self._watchdog_seconds

    def notify(self, *states: str) -> bool:
        """Send the states (``READY=1``, ``STOPPING=1``, ``STATUS=...``); whether it was sent.
        A failure is logged once and never raised: systemd not listening must not stop us."""
        if self.address is None:
            return False
        payload = "\n".join(states).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("systemd_notify_failed", socket=self.address, error=str(exc))
                self._warned = True
            return False
        return True


def _socket_address(value: str) -> str | bytes | None:
    """A path, or an abstract-namespace name (``@name``, sent with a leading NUL)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # sd_notify ignores anything else (vsock addresses are not used here)


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """From ``WATCHDOG_USEC``; ``WATCHDOG_PID``, when set, must be this process (a child the
    daemon started inherits the variables but is not the one being watched)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    return usec / 1_000_000 if usec > 0 else None
