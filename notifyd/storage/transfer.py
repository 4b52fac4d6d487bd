"""Moving a whole job database between backends (SQLite to PostgreSQL, or back): every job
with its id, attempts, kept tokens and steps, every outage, account, client, code and token.

The stream is JSON lines, ``{"table": ..., "row": {...}}``, the same columns in both
backends. ``projects`` is not carried: the target's triggers rebuild it as the jobs arrive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from notifyd.errors import StorageError
from notifyd.storage.base import Storage
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage

# In an order that keeps every reference satisfied as rows arrive.
TABLES = (
    "jobs",
    "attempts",
    "servers",
    "accounts",
    "oauth_clients",
    "oauth_client_secrets",
    "oauth_codes",
    "oauth_tokens",
    "user_tokens",
    "private_profiles",
    "ledger",
    "platforms",
    "webhook_ids",
)
# SQLite keeps booleans as 0/1; PostgreSQL wants them typed.
_BOOLEANS = {"accounts": ("is_admin",)}
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class TransferRow:
    table: str
    row: dict[str, Any]


async def export_rows(storage: Storage) -> AsyncIterator[TransferRow]:
    for table in TABLES:
        last = None
        while True:
            page = await _page(storage, table, last)
            for row in page:
                yield TransferRow(table, row)
            if len(page) < _PAGE:
                break
            last = _key(table, page[-1])


async def import_rows(storage: Storage, rows: Iterable[TransferRow]) -> dict[str, int]:
    """Into an empty database (refused otherwise: nothing is merged or overwritten)."""
    if sum((await storage.counts()).values()):
        raise StorageError("the target database already holds jobs; import into an empty one")
    counts = dict.fromkeys(TABLES, 0)
    batch: list[TransferRow] = []
    for item in rows:
        if item.table not in counts:
            raise StorageError(f"the export names an unknown table {item.table!r}")
        batch.append(item)
        if len(batch) >= _PAGE:
            await _insert(storage, batch)
            batch = []
        counts[item.table] += 1
    if batch:
        await _insert(storage, batch)
    await _after_import(storage)
    return counts


async def _insert(storage: Storage, batch: list[TransferRow]) -> None:
    """A batch of rows, or a StorageError that names the table and what is left behind."""
    try:
        await _insert_rows(storage, batch)
    except StorageError:
        raise
    except Exception as exc:  # the engine's own error, whichever engine: said in one line
        tables = sorted({item.table for item in batch})
        raise StorageError(
            f"the import stopped in {', '.join(tables)}: {exc}; the target holds what came "
            "before: empty it (a new file, or drop its schema) before importing again"
        ) from None


_ORDER = {
    "jobs": ("id",),
    "attempts": ("job_id", "number"),
    "servers": ("api_url",),
    "accounts": ("name",),
    "oauth_clients": ("client_id",),
    "oauth_client_secrets": ("client_id", "secret_hash"),
    "oauth_codes": ("code_hash",),
    "oauth_tokens": ("token_hash",),
    "user_tokens": ("id",),
    "private_profiles": ("account", "service", "identifier"),
    "ledger": ("id",),
    "platforms": ("name",),
    "webhook_ids": ("platform", "id"),
}


def _key(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column] for column in _ORDER[table])


async def _page(
    storage: Storage, table: str, after: tuple[Any, ...] | None
) -> list[dict[str, Any]]:
    columns = _ORDER[table]
    order = ", ".join(columns)
    if isinstance(storage, SqliteStorage):
        where = f"WHERE ({order}) > ({', '.join('?' * len(columns))})" if after else ""
        sql = f"SELECT * FROM {table} {where} ORDER BY {order} LIMIT {_PAGE}"  # noqa: S608

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql, after or ())]

        return await storage.run_read(read)
    if isinstance(storage, PostgresStorage):
        marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
        where = f"WHERE ({order}) > ({marks})" if after else ""
        sql = f"SELECT * FROM {table} {where} ORDER BY {order} LIMIT {_PAGE}"  # noqa: S608
        return [dict(row) for row in await storage.pool.fetch(sql, *(after or ()))]
    raise StorageError(f"cannot export from {type(storage).__name__}")


async def _insert_rows(storage: Storage, batch: list[TransferRow]) -> None:
    by_table: dict[str, list[dict[str, Any]]] = {}
    for item in batch:
        by_table.setdefault(item.table, []).append(item.row)
    for table, rows in by_table.items():
        columns = list(rows[0])
        names = ", ".join(columns)
        booleans = _BOOLEANS.get(table, ()) if isinstance(storage, PostgresStorage) else ()
        values = [
            tuple(bool(row[c]) if c in booleans else row.get(c) for c in columns) for row in rows
        ]
        if isinstance(storage, SqliteStorage):
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608

            def write(conn: sqlite3.Connection, sql: str = sql, values: Any = values) -> None:
                conn.executemany(sql, values)

            await storage.run_write(write)
        elif isinstance(storage, PostgresStorage):
            overriding = " OVERRIDING SYSTEM VALUE" if table == "jobs" else ""
            marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
            await storage.pool.executemany(
                f"INSERT INTO {table} ({names}){overriding} VALUES ({marks})",  # noqa: S608
                values,
            )
        else:
            raise StorageError(f"cannot import into {type(storage).__name__}")


async def _after_import(storage: Storage) -> None:
    """New jobs continue the ids where the old database left them."""
    if isinstance(storage, PostgresStorage):
        await storage.pool.execute(
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
            "coalesce((SELECT max(id) FROM jobs), 0) + 1, false)"
        )
