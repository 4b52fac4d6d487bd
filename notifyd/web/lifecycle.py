"""Where the daemon is in its life, as the server knows it and the health checks report it,
and where this process stands among ``serve``'s processes (``notifyd.web.receivers``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from notifyd.storage.enqueue_link import EnqueueLink


@dataclass
class Lifecycle:
    """Set by the server when SIGTERM arrives: from then on the daemon is not ready. In a
    receiver process, ``primary`` is the link to the primary process (its worker's health is
    asked there; the receiver stops when it closes)."""

    draining: bool = False
    primary: EnqueueLink | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    """``link``: the primary's enqueue link, when ``serve`` runs several processes;
    ``receiver_fd``: the listening socket a receiver process was handed (None in the
    primary)."""

    link: Path | None = None
    receiver_fd: int | None = None

    @property
    def is_receiver(self) -> bool:
        return self.receiver_fd is not None
