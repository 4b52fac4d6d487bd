"""Job storage backends behind one domain-level interface (``Storage``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from notifyd.config import Settings
from notifyd.storage.base import Storage


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """Open the configured backend for the lifetime of the block."""
    from notifyd.storage.sqlite import SqliteStorage

    async with SqliteStorage.open(
        settings.database_path, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    ) as storage:
        yield storage


__all__ = ["Storage", "open_storage"]
