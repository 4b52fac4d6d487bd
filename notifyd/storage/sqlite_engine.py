"""The SQLite engine: connections and their PRAGMAs, the writer thread, group commit,
checkpoints, private files and migrating. The job queries live in ``sqlite.py``.

Notifications are group-committed from the event loop's thread: those that arrive together are
inserted in one ``BEGIN IMMEDIATE`` transaction there, and only the COMMIT (the fsync, which
releases the GIL) runs in a thread; their callers are answered after it returns. Every other
write is a small function queued to one writer thread, which takes all that are waiting into
one transaction (each under its own savepoint, so one bad write cannot undo another) and
commits once with ``synchronous=FULL``. A thread of its own checkpoints the WAL. Several
processes may share the file: ``BEGIN IMMEDIATE`` and ``busy_timeout`` serialise their writers,
and the event loop never waits for a lock (a busy batch goes to the writer thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, Self, TypeVar

import sqlite_utils
import structlog

from notifyd.errors import StartupError, StorageError
from notifyd.records import (
    EnqueueResult,
    Origin,
)
from notifyd.storage.sqlite_schema import MIGRATION_NAMES, migrations

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]

MAX_BATCH = 256
LOW_DISK_BYTES = 16 * 1024 * 1024
CHECKPOINT_SECONDS = 1.0

log = structlog.get_logger("notifyd.storage")


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by its owner only."""
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for created in reversed(missing):
        created.mkdir(mode=0o700)
        created.chmod(0o700)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """The one place the PRAGMAs are set."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Savepoints and statement journals (every insert whose trigger may need undoing) in
    # memory: on disk they cost each insert a page copy to a temporary file.
    conn.execute("PRAGMA temp_store = MEMORY")
    # Checkpoints run in their own thread (SqliteStorage._checkpoint_loop), never inside a
    # commit that callers are waiting for.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


class SqliteEngine:
    """The connections, the writer thread, group commit, checkpoints and migrating: what
    any SQLite store needs, whatever its rows. ``_insert_enqueues`` (the store's) inserts a
    group commit's batch."""

    def __init__(
        self, path: Path, *, busy_timeout_ms: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()
        self._enqueue_conn: sqlite3.Connection | None = None
        self._pending: list[Enqueue] = []
        self._flush_scheduled = False
        self._commit: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_failure: str | None = None  # the last commit failed, with this reason

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, *, busy_timeout_ms: int = 10_000, clock: Callable[[], float] = time.time
    ) -> AsyncIterator[Self]:
        storage = cls(path, busy_timeout_ms=busy_timeout_ms, clock=clock)
        await storage.start()
        try:
            yield storage
        finally:
            await storage.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._prepare)
        await asyncio.to_thread(self._migrate)
        self._read_conn = _connect(self.path, self._busy_timeout_ms)
        self._enqueue_conn = _connect(self.path, busy_timeout_ms=0)
        self._writer = threading.Thread(target=self._write_loop, name="notifyd-sqlite-writer")
        self._writer.daemon = True
        self._writer.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="notifyd-sqlite-checkpointer", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        while self._commit is not None or self._pending:
            if self._commit is not None:
                await self._commit
            elif self._pending:
                self._flush_enqueues()
                await asyncio.sleep(0)
        if self._enqueue_conn is not None:
            self._enqueue_conn.close()
            self._enqueue_conn = None
        self._closing.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._writer is not None:
            self._ops.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    def _prepare(self) -> None:
        """Create the database private to its owner, and refuse one that is corrupt, with one
        line that names the fault and the fix. It holds BIMserver tokens: its folder is
        created 0700 and the file 0600 whatever the umask (SQLite gives its -wal and -shm
        files the database's mode)."""
        path = self.path
        try:
            _private_folder(path.parent)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            elif not path.is_file():
                raise StartupError(f"the job database {path} is not a file")
        except OSError as exc:
            raise StartupError(
                f"cannot create the job database {path}: {exc.strerror}; check the folder "
                "and its permissions (settings data_dir, database)"
            ) from None
        try:
            conn = _connect(path, self._busy_timeout_ms)
            try:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            found = " ".join("; ".join(problems).split())[:300]
            raise StartupError(
                f"the job database {path} is damaged ({found}); restore it "
                "from a backup, or move it away to start with an empty queue"
            )

    def _migrate(self) -> None:
        conn = _connect(self.path, self._busy_timeout_ms)
        try:
            # A migration may rebuild a table (m005): with foreign keys on, dropping the old
            # one would delete the rows that refer to it. They are checked before the commit.
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("BEGIN IMMEDIATE")  # serialises processes migrating the same file
            try:
                database = sqlite_utils.Database(conn)
                unknown = {m.name for m in migrations.applied(database)} - set(MIGRATION_NAMES)
                if unknown:
                    raise StartupError(
                        f"the job database {self.path} was migrated by a newer notifyd "
                        f"({', '.join(sorted(unknown))}): upgrade notifyd on this host"
                    )
                migrations.apply(database)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(
                        f"the migration left {len(broken)} rows referring to missing ones"
                    )
                conn.execute("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise
        except sqlite3.Error as exc:
            raise StartupError(
                f"cannot write the job database {self.path}: {exc}; check that the file and "
                "its folder are writable by this user and the disk has room"
            ) from None
        finally:
            conn.close()

    # -- the checkpointer thread -----------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        """Move committed pages from the WAL into the database file once a second.

        SQLite's automatic checkpoint would run inside whichever commit crossed 1,000 pages,
        and every caller waiting on that commit would wait for the checkpoint's fsync too. A
        PASSIVE checkpoint never blocks writers or readers; it takes what it can."""
        conn = _connect(self.path, self._busy_timeout_ms)
        try:
            while not self._closing.wait(CHECKPOINT_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a busy or read-only moment: next time
                    log.warning("checkpoint_failed", error=str(exc))
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    # -- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = _connect(self.path, self._busy_timeout_ms)
        try:
            while True:
                first = self._ops.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        op = self._ops.get_nowait()
                    except queue.Empty:
                        break
                    if op is None:
                        stop = True
                        break
                    batch.append(op)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        outcomes: list[Outcome] = []
        enqueues = [op for op in batch if isinstance(op, Enqueue)]
        others = [op for op in batch if isinstance(op, _Write)]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if enqueues:
                outcomes.extend(self._insert_enqueues(conn, enqueues))
            for fn, future in others:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((future, value, None))
            conn.execute("COMMIT")
            self._write_failure = None
        except Exception as exc:  # the thread must outlive any failure, and answer everyone
            _roll_back(conn)
            self._write_failure = str(exc)
            error = StorageError(f"the job database could not commit: {exc}")
            outcomes = [(op.future, None, error) for op in batch]
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_resolve, outcomes)

    def now(self) -> float:
        """The storage's clock (a test's fake one), for stores that share the database."""
        return self._clock()

    async def run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in the writer thread, in a transaction it shares with the writes waiting
        beside it, under a savepoint of its own (other stores on this database use it)."""
        if self._writer is None or self._loop is None:
            raise StorageError("the job database is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._ops.put(_Write(fn, future))
        return await future

    async def run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the read connection, off the event loop."""

        def run() -> T:
            with self._read_lock:
                if self._read_conn is None:
                    raise StorageError("the job database is not open")
                return fn(self._read_conn)

        return await asyncio.to_thread(run)

    # -- operations ------------------------------------------------------------------------

    async def enqueue(self, origin: Origin, *, max_attempts: int) -> EnqueueResult:
        if self._writer is None or self._loop is None or self._enqueue_conn is None:
            raise StorageError("the job database is not open")
        future: asyncio.Future[EnqueueResult] = self._loop.create_future()
        self._pending.append(Enqueue(origin, max_attempts, self._clock(), future))
        if self._commit is None and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_enqueues)
        return await future

    def _flush_enqueues(self) -> None:
        """Group commit for notifications, on the event loop's thread.

        The inserts run here, where they need no GIL hand-off; only the COMMIT, whose fsync
        is the slow part and releases the GIL, runs in a thread. Notifications that arrive
        meanwhile wait for the next batch. When another connection holds the write lock the
        batch goes to the writer thread, which waits its turn (busy_timeout); the event loop
        never waits for a lock."""
        self._flush_scheduled = False
        if self._commit is not None or not self._pending:
            return
        batch, self._pending = self._pending, []
        conn = self._enqueue_conn
        assert conn is not None
        assert self._loop is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # the lock is taken: the writer thread waits for it
            for op in batch:
                self._ops.put(op)
            return
        except Exception as exc:
            _resolve([(op.future, None, storage_error(exc)) for op in batch])
            return
        try:
            outcomes = self._insert_enqueues(conn, batch)
        except Exception as exc:  # every caller is answered, whatever went wrong
            _roll_back(conn)
            self._write_failure = str(exc)
            _resolve([(op.future, None, storage_error(exc)) for op in batch])
            return
        self._commit = self._loop.create_task(self._commit_enqueues(conn, batch, outcomes))

    async def _commit_enqueues(
        self, conn: sqlite3.Connection, batch: list[Enqueue], outcomes: list[Outcome]
    ) -> None:
        try:
            await asyncio.to_thread(_commit_or_roll_back, conn)
            failed = next((error for _f, _v, error in outcomes if error is not None), None)
            self._write_failure = None if failed is None else str(failed)
        except Exception as exc:
            self._write_failure = str(exc)
            outcomes = [(op.future, None, storage_error(exc)) for op in batch]
        finally:
            self._commit = None
        _resolve(outcomes)
        self._flush_enqueues()

    def _insert_enqueues(self, conn: sqlite3.Connection, batch: list[Enqueue]) -> list[Outcome]:
        raise NotImplementedError

    async def problems(self) -> list[str]:
        found = []
        if self._write_failure is not None:
            found.append(f"the job database cannot be written: {self._write_failure}")
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            found.append(f"the job database {self.path} or its folder is read-only")
        free = (await asyncio.to_thread(shutil.disk_usage, self.path.parent)).free
        if free < LOW_DISK_BYTES:
            found.append(f"the disk of {self.path} has {free // 1024} KiB free")
        return found


class _Write(NamedTuple):
    fn: WriteFn
    future: asyncio.Future[Any]


class Enqueue(NamedTuple):
    """Enqueues are batched into a few statements per commit, not a few per notification:
    the writer thread then needs the GIL only a handful of times however busy the endpoint is."""

    origin: Origin
    max_attempts: int
    now: float
    future: asyncio.Future[Any]


_Op = _Write | Enqueue
Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _commit_or_roll_back(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except Exception:
        _roll_back(conn)
        raise


def _roll_back(conn: sqlite3.Connection) -> None:
    """End a failed transaction; a failure to roll back must not hide the first failure."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def storage_error(exc: Exception) -> StorageError:
    return StorageError(f"the job database could not store the notifications: {exc}")


def _resolve(outcomes: list[Outcome]) -> None:
    for future, value, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
