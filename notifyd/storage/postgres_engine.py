"""The PostgreSQL engine (asyncpg) beneath the job queries of ``postgres.py``: the pool,
migrating at start, LISTEN/NOTIFY, and group commit of new jobs.

Notifications are group-committed before they are answered: what arrives while one commit
runs goes into the next, in one ``INSERT ... SELECT FROM unnest(...)`` statement (one round
trip per batch), falling back to a savepoint per notification only when the batch fails, so
that one bad value costs only its own acknowledgement. A stored job is announced with
``NOTIFY notifyd_jobs``; every host's worker listening wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

import asyncpg
import structlog

from notifyd.config import redact_url_password
from notifyd.errors import StartupError, StorageError
from notifyd.records import EnqueueResult, Origin
from notifyd.storage.postgres_schema import migrate
from notifyd.storage.rows import ORIGIN_COLUMNS, origin_values

log = structlog.get_logger("notifyd.storage")

CHANNEL = "notifyd_jobs"
_INSERT_COLUMNS = ("dedup_key", *ORIGIN_COLUMNS, "max_attempts", "run_after", "created_at")
_INSERT = (
    f"INSERT INTO jobs ({', '.join(_INSERT_COLUMNS)}, status, updated_at) "  # noqa: S608
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(_INSERT_COLUMNS)))}, 'queued', "
    f"${len(_INSERT_COLUMNS)}) ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)


_TYPES = (
    "text",  # dedup_key
    "text",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",  # context_id
    "integer",  # max_attempts
    "double precision",
    "double precision",
)
_INSERT_MANY = (
    f"INSERT INTO jobs ({', '.join(_INSERT_COLUMNS)}, status, updated_at) "  # noqa: S608
    f"SELECT *, 'queued', created_at FROM unnest("
    + ", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(_TYPES))
    + f") AS batch ({', '.join(_INSERT_COLUMNS)}) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)


_BATCH_TRIES = 4
_API_URL_AT = 1 + ORIGIN_COLUMNS.index("api_url")  # in an insert row: the key, then these
_POID_AT = 1 + ORIGIN_COLUMNS.index("poid")


def _project_order(row: tuple[Any, ...]) -> tuple[str, int, str]:
    """The order rows are inserted in: by project, so that every host locks project rows in
    the same order."""
    return (row[_API_URL_AT] or "", row[_POID_AT] or -1, row[0])


class PostgresEngine:
    """The connections and the writes every job starts with; ``PostgresStorage`` adds the
    queries that move jobs through their states."""

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.dsn = dsn
        self._clock = clock
        self._server_settings = server_settings or {}
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._subscribers: list[Callable[[], None]] = []
        self._pending: list[tuple[Origin, int, float, asyncio.Future[EnqueueResult]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._write_failure: str | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        server_settings: dict[str, str] | None = None,
    ) -> AsyncIterator[Self]:
        storage = cls(dsn, clock=clock, server_settings=server_settings)
        await storage.start()
        try:
            yield storage
        finally:
            await storage.close()

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=8, server_settings=self._server_settings
            )
        except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # ValueError and InterfaceError: a database_url asyncpg cannot parse or use.
            raise StartupError(
                f"cannot connect to PostgreSQL at {redact_url_password(self.dsn)}: {exc}; "
                "check the address in database_url and that the server accepts this user"
            ) from None
        try:
            async with self._pool.acquire() as conn:
                applied = await migrate(conn)
        except (OSError, asyncpg.PostgresError) as exc:
            await self._pool.close()
            self._pool = None
            raise StartupError(
                f"cannot migrate the PostgreSQL database at {redact_url_password(self.dsn)}: "
                f"{exc}; the user in database_url must be allowed to create tables"
            ) from None
        if applied:
            log.info("postgres_migrated", versions=applied)

    async def close(self) -> None:
        while self._flushing is not None or self._pending:
            if self._flushing is not None:
                await self._flushing
            else:
                self._flush()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def now(self) -> float:
        return self._clock()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("the job database is not open")
        return self._pool

    async def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever any host stores a job (LISTEN notifyd_jobs)."""
        self._subscribers.append(callback)
        if self._listener is None:
            self._listener = await asyncpg.connect(self.dsn, server_settings=self._server_settings)
            await self._listener.add_listener(CHANNEL, self._announced)

    def _announced(self, *_args: Any) -> None:
        for callback in self._subscribers:
            callback()

    # -- enqueue: group commit ---------------------------------------------------------

    async def enqueue(self, origin: Origin, *, max_attempts: int) -> EnqueueResult:
        future: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._pending.append((origin, max_attempts, self._clock(), future))
        if self._flushing is None:
            self._flush()
        return await future

    def _flush(self) -> None:
        """Everything that arrived while the last commit ran goes into the next one."""
        batch, self._pending = self._pending, []
        self._flushing = asyncio.get_running_loop().create_task(self._commit(batch))

    async def _commit(self, batch: list[tuple[Origin, int, float, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self._insert_retrying(batch)
            self._write_failure = None
        except Exception as exc:  # every caller is answered, whatever went wrong (a lost
            # connection is an InterfaceError, not a PostgresError): none is left hanging
            self._write_failure = str(exc)
            failure = StorageError(f"the job database could not store the notifications: {exc}")
            outcomes = [(future, None, failure) for *_rest, future in batch]
        finally:
            self._flushing = None
        for future, value, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
        if self._pending:
            self._flush()

    async def _insert_retrying(
        self, batch: list[tuple[Origin, int, float, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Several hosts commit batches at once; the triggers that keep the ``projects``
        table lock project rows, so two batches can deadlock (PostgreSQL then aborts one).
        Rows go in in project order, which makes that rare, and an aborted batch is tried
        again: BIMserver never sends a notification twice, so refusing a whole batch for a
        lock order is not an option."""
        for attempt in range(1, _BATCH_TRIES + 1):
            try:
                return await self._insert(batch)
            except asyncpg.TransactionRollbackError as exc:  # deadlock, serialization
                if attempt == _BATCH_TRIES:
                    raise
                log.warning("postgres_batch_retried", attempt=attempt, error=str(exc))
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    async def _insert(
        self, batch: list[tuple[Origin, int, float, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """The batch in one statement (one round trip); should it fail, each notification on
        its own under a savepoint, so one bad value costs only its own acknowledgement."""
        keys = [origin.dedup_key for origin, *_rest in batch]
        async with self.pool.acquire() as conn, conn.transaction():
            ids = await _ids_by_key(conn, keys)
            new: dict[str, tuple[Any, ...]] = {}
            for origin, max_attempts, now, _future in batch:
                key = origin.dedup_key
                if key not in ids and key not in new:
                    new[key] = (key, *origin_values(origin), max_attempts, now, now)
            failed: dict[str, BaseException] = {}
            created: set[str] = set()
            if new:
                try:
                    async with conn.transaction():
                        ordered = sorted(new.values(), key=_project_order)
                        columns = list(zip(*ordered, strict=True))
                        rows = await conn.fetch(_INSERT_MANY, *columns)
                    created = {row["dedup_key"] for row in rows}
                    ids.update({row["dedup_key"]: row["id"] for row in rows})
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    for key, values in new.items():
                        try:
                            async with conn.transaction():
                                job_id = await conn.fetchval(_INSERT, *values)
                        except (
                            asyncpg.DataError,
                            asyncpg.IntegrityConstraintViolationError,
                        ) as exc:
                            failed[key] = StorageError(str(exc))
                            continue
                        if job_id is not None:
                            ids[key] = job_id
                            created.add(key)
                missing = [k for k in new if k not in ids and k not in failed]
                if missing:  # stored meanwhile by another host
                    ids.update(await _ids_by_key(conn, missing))
            if created:
                await conn.execute(f"NOTIFY {CHANNEL}")
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        first_of: set[str] = set()
        for origin, _max, _now, future in batch:
            key = origin.dedup_key
            if key in failed:
                outcomes.append((future, None, failed[key]))
                continue
            is_new = key in created and key not in first_of
            first_of.add(key)
            outcomes.append((future, EnqueueResult(job_id=ids[key], created=is_new), None))
        return outcomes


async def _ids_by_key(conn: asyncpg.Connection, keys: list[str]) -> dict[str, int]:
    rows = await conn.fetch("SELECT dedup_key, id FROM jobs WHERE dedup_key = ANY($1)", keys)
    return {row["dedup_key"]: row["id"] for row in rows}
