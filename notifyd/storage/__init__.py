"""Job storage backends behind one domain-level interface (``Storage``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from notifyd.config import Settings
from notifyd.storage.base import AccountStore, GrantStore, Storage


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """Open the configured backend for the lifetime of the block."""
    if settings.uses_postgres:
        from notifyd.storage.postgres import PostgresStorage

        assert settings.database_url is not None
        async with PostgresStorage.open(settings.database_url) as pg:
            yield pg
        return
    from notifyd.storage.sqlite import SqliteStorage

    async with SqliteStorage.open(
        settings.database_path, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    ) as storage:
        yield storage


def grants_of(storage: Storage) -> GrantStore:
    """The OAuth provider's records, kept in the same database as the jobs."""
    from notifyd.storage.postgres import PostgresStorage
    from notifyd.storage.postgres_grants import PostgresGrants
    from notifyd.storage.sqlite import SqliteStorage
    from notifyd.storage.sqlite_grants import SqliteGrants

    if isinstance(storage, PostgresStorage):
        return PostgresGrants(storage)
    if isinstance(storage, SqliteStorage):
        return SqliteGrants(storage)
    raise TypeError(f"no grant store for {type(storage).__name__}")


def accounts_of(storage: Storage) -> AccountStore:
    """Accounts' user tokens, private profiles and credit, in the same database as the jobs."""
    from notifyd.storage.postgres import PostgresStorage
    from notifyd.storage.postgres_accounts import PostgresAccounts
    from notifyd.storage.sqlite import SqliteStorage
    from notifyd.storage.sqlite_accounts import SqliteAccounts

    if isinstance(storage, PostgresStorage):
        return PostgresAccounts(storage)
    if isinstance(storage, SqliteStorage):
        return SqliteAccounts(storage)
    raise TypeError(f"no account store for {type(storage).__name__}")


__all__ = ["AccountStore", "GrantStore", "Storage", "accounts_of", "grants_of", "open_storage"]
