"""Where the daemon is in its life, as the server knows it and the health checks report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Lifecycle:
    """Set by the server when SIGTERM arrives: from then on the daemon is not ready."""

    draining: bool = False
