"""The embedded SQLite backend.

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
import json
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlite_utils
import structlog

from notifyd import job_rules as rules
from notifyd.errors import JobNotFound, StartupError, StorageError
from notifyd.job_rules import Transition
from notifyd.records import (
    Attempt,
    AttemptOutcome,
    EnqueueResult,
    Job,
    JobResult,
    JobStatus,
    Notification,
    Origin,
    ServerOutage,
)
from notifyd.storage.rows import ORIGIN_COLUMNS, origin_values, transition_changes
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


class SqliteStorage:
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
        self._pending: list[_Enqueue] = []
        self._flush_scheduled = False
        self._commit: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_failure: str | None = None  # the last commit failed, with this reason

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, *, busy_timeout_ms: int = 10_000, clock: Callable[[], float] = time.time
    ) -> AsyncIterator[SqliteStorage]:
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
        outcomes: list[_Outcome] = []
        enqueues = [op for op in batch if isinstance(op, _Enqueue)]
        others = [op for op in batch if isinstance(op, _Write)]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if enqueues:
                outcomes.extend(_enqueue_many(conn, enqueues))
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
        self._pending.append(_Enqueue(origin, max_attempts, self._clock(), future))
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
            _resolve([(op.future, None, _storage_error(exc)) for op in batch])
            return
        try:
            outcomes = _enqueue_many(conn, batch)
        except Exception as exc:  # every caller is answered, whatever went wrong
            _roll_back(conn)
            self._write_failure = str(exc)
            _resolve([(op.future, None, _storage_error(exc)) for op in batch])
            return
        self._commit = self._loop.create_task(self._commit_enqueues(conn, batch, outcomes))

    async def _commit_enqueues(
        self, conn: sqlite3.Connection, batch: list[_Enqueue], outcomes: list[_Outcome]
    ) -> None:
        try:
            await asyncio.to_thread(_commit_or_roll_back, conn)
            failed = next((error for _f, _v, error in outcomes if error is not None), None)
            self._write_failure = None if failed is None else str(failed)
        except Exception as exc:
            self._write_failure = str(exc)
            outcomes = [(op.future, None, _storage_error(exc)) for op in batch]
        finally:
            self._commit = None
        _resolve(outcomes)
        self._flush_enqueues()

    async def claim(
        self, *, worker_id: str, lease_seconds: float, limit: int = 1, one_per_project: bool = True
    ) -> list[Job]:
        now = self._clock()

        def anything_due(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM projects WHERE next_due <= ? AND (running = 0 OR NOT ?) "
                "UNION ALL SELECT 1 FROM jobs INDEXED BY jobs_unbound_queue "
                "WHERE status = 'queued' AND api_url IS NULL AND run_after <= ? LIMIT 1",
                (now, one_per_project, now),
            ).fetchone()
            return row is not None

        # Most claims of a busy worker find nothing: they need not take the write lock that
        # acknowledgements wait for.
        if not await self.run_read(anything_due):
            return []

        def write(conn: sqlite3.Connection) -> list[Job]:
            chosen = _due_jobs(conn, now, limit, one_per_project)
            jobs = []
            for job_id in chosen:
                row = conn.execute(
                    """
                    UPDATE jobs SET status = 'running', attempts = attempts + 1,
                        lease_until = ?, worker_id = ?, updated_at = ?
                    WHERE id = ? RETURNING *
                    """,
                    (now + lease_seconds, worker_id, now, job_id),
                ).fetchone()
                conn.execute(
                    "INSERT INTO attempts (job_id, number, worker_id, outcome, started_at) "
                    "VALUES (?, ?, ?, 'running', ?)",
                    (job_id, row["attempts"], worker_id, now),
                )
                jobs.append(Job.from_row(row))
            for project in {
                (job.origin.api_url, job.origin.poid)
                for job in jobs
                if isinstance(job.origin, Notification)
            }:
                _refresh_next_due(conn, *project)
            return jobs

        return await self.run_write(write)

    async def heartbeat(self, job_id: int, *, worker_id: str, lease_seconds: float) -> Job | None:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(
                "UPDATE jobs SET lease_until = ?, updated_at = ? "
                "WHERE id = ? AND status = 'running' AND worker_id = ? RETURNING *",
                (now + lease_seconds, now, job_id, worker_id),
            ).fetchone()
            return Job.from_row(row) if row else None

        return await self.run_write(write)

    async def record_step(self, job_id: int, *, worker_id: str, name: str, value: Any) -> Job:
        def write(conn: sqlite3.Connection) -> Job:
            job = _held_job(conn, job_id, worker_id)
            return _update(conn, job_id, steps=json.dumps({**job.steps, name: value}))

        return await self.run_write(write)

    async def wrote_extended_data(self, *, api_url: str, service: str, file_id: int) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM jobs WHERE api_url = ? AND json_extract(steps, '$.file_id') = ? "
                "AND service = ? AND json_extract(steps, '$.file_id') IS NOT NULL LIMIT 1",
                (api_url, file_id, service),
            ).fetchone()
            return row is not None

        return await self.run_read(read)

    async def expire_lease(self, job_id: int, *, worker_id: str) -> bool:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE jobs SET lease_until = ? "
                "WHERE id = ? AND status = 'running' AND worker_id = ?",
                (now - 1, job_id, worker_id),
            )
            return cursor.rowcount == 1

        return await self.run_write(write)

    async def complete(
        self, job_id: int, *, worker_id: str, result: JobResult | None = None
    ) -> Job:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job:
            job = _held_job(conn, job_id, worker_id)
            return _apply(conn, job, rules.succeeded(result), now)

        return await self.run_write(write)

    async def fail(
        self,
        job_id: int,
        *,
        worker_id: str,
        error: str,
        retry_at: float | None,
        spend_attempt: bool = True,
    ) -> Job:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job:
            job = _held_job(conn, job_id, worker_id)
            transition = rules.failed(job, error, retry_at=retry_at, spend_attempt=spend_attempt)
            return _apply(conn, job, transition, now)

        return await self.run_write(write)

    async def pause_server(
        self, api_url: str, *, error: str, pause: Callable[[int], float]
    ) -> ServerOutage:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> ServerOutage:
            row = conn.execute("SELECT * FROM servers WHERE api_url = ?", (api_url,)).fetchone()
            # An outage is over when nothing failed for a while: the pause is at most
            # pause(n) seconds, and every paused job probes when it ends.
            ongoing = row is not None and now - row["last_failure_at"] <= 2 * pause(row["failures"])
            failures = row["failures"] + 1 if ongoing else 1
            outage = ServerOutage(
                api_url=api_url,
                down_since=row["down_since"] if ongoing else now,
                failures=failures,
                paused_until=now + pause(failures),
                last_error=error,
            )
            conn.execute(
                "INSERT OR REPLACE INTO servers (api_url, down_since, failures, "
                "last_failure_at, paused_until, last_error) VALUES (?, ?, ?, ?, ?, ?)",
                (api_url, outage.down_since, failures, now, outage.paused_until, error),
            )
            conn.execute(
                "UPDATE projects SET next_due = max(next_due, ?) "
                "WHERE api_url = ? AND next_due IS NOT NULL",
                (outage.paused_until, api_url),
            )
            return outage

        return await self.run_write(write)

    async def server_answered(self, api_url: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM servers WHERE api_url = ?", (api_url,))

        await self.run_write(write)

    async def outages(self) -> list[ServerOutage]:
        def read(conn: sqlite3.Connection) -> list[ServerOutage]:
            rows = conn.execute("SELECT * FROM servers ORDER BY api_url").fetchall()
            return [ServerOutage.from_row(row) for row in rows]

        return await self.run_read(read)

    async def erase_tokens(self, *, finished_before: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE jobs SET token = NULL, user_token = NULL "
                "WHERE status = 'dead' AND token IS NOT NULL AND finished_at < ?",
                (finished_before,),
            )
            return cursor.rowcount

        return await self.run_write(write)

    async def release(self, job_id: int, *, worker_id: str) -> Job:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job:
            job = _held_job(conn, job_id, worker_id)
            return _apply(conn, job, rules.released(job, now), now)

        return await self.run_write(write)

    async def reclaim_expired(self) -> list[Job]:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE status = 'running' AND lease_until < ? ORDER BY id",
                (now,),
            ).fetchall()
            reclaimed = []
            for row in rows:
                job = Job.from_row(row)
                reclaimed.append(_apply(conn, job, rules.lease_expired(job, now), now))
            return reclaimed

        return await self.run_write(write)

    async def retry(self, job_id: int, *, attempts: int = 1) -> Job:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            return _apply(conn, job, rules.retried(job, now, attempts), now)

        return await self.run_write(write)

    async def retry_dead(self, *, attempts: int = 1) -> list[Job]:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE status = 'dead' "
                "AND (token IS NOT NULL OR api_url IS NULL)"
            ).fetchall()
            jobs = [Job.from_row(row) for row in rows]
            return [_apply(conn, job, rules.retried(job, now, attempts), now) for job in jobs]

        return await self.run_write(write)

    async def cancel(self, job_id: int) -> Job:
        now = self._clock()

        def write(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            return _apply(conn, job, rules.cancelled(job), now)

        return await self.run_write(write)

    async def get(self, job_id: int) -> Job:
        return await self.run_read(lambda conn: _job(conn, job_id))

    async def find(self, origin_key: str) -> Job | None:
        def read(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute("SELECT * FROM jobs WHERE dedup_key = ?", (origin_key,)).fetchone()
            return Job.from_row(row) if row else None

        return await self.run_read(read)

    async def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        def read(conn: sqlite3.Connection) -> list[Job]:
            where = "WHERE status = ?" if status else ""
            params: tuple[Any, ...] = (str(status),) if status else ()
            rows = conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
                (*params, limit, offset),
            ).fetchall()
            return [Job.from_row(row) for row in rows]

        return await self.run_read(read)

    async def attempts(self, job_id: int) -> list[Attempt]:
        def read(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT * FROM attempts WHERE job_id = ? ORDER BY number, started_at", (job_id,)
            ).fetchall()
            return [Attempt.from_row(row) for row in rows]

        return await self.run_read(read)

    async def subscribe(self, callback: Callable[[], None]) -> None:
        """SQLite cannot announce another process's jobs: workers elsewhere poll."""
        del callback

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

    async def counts(self) -> dict[JobStatus, int]:
        def read(conn: sqlite3.Connection) -> dict[JobStatus, int]:
            rows = conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            counts = dict.fromkeys(JobStatus, 0)
            counts.update({JobStatus(row["status"]): row["n"] for row in rows})
            return counts

        return await self.run_read(read)


class _Write(NamedTuple):
    fn: WriteFn
    future: asyncio.Future[Any]


class _Enqueue(NamedTuple):
    """Enqueues are batched into a few statements per commit, not a few per notification:
    the writer thread then needs the GIL only a handful of times however busy the endpoint is."""

    origin: Origin
    max_attempts: int
    now: float
    future: asyncio.Future[Any]


_Op = _Write | _Enqueue
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]

_INSERT_JOB = (
    f"INSERT INTO jobs (dedup_key, {', '.join(ORIGIN_COLUMNS)}, status, max_attempts, "  # noqa: S608
    f"run_after, created_at, updated_at) VALUES (?, {', '.join('?' * len(ORIGIN_COLUMNS))}, "
    "'queued', ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING"
)


def _ids_by_key(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT dedup_key, id FROM jobs WHERE dedup_key IN ({marks})",  # noqa: S608
        keys,
    )
    return {row[0]: row[1] for row in rows}


def _enqueue_many(conn: sqlite3.Connection, ops: list[_Enqueue]) -> list[_Outcome]:
    """Insert the batch in one statement; should that fail, each notification on its own, so
    that a value one of them carries never costs the others their acknowledgement."""
    conn.execute("SAVEPOINT batch")
    try:
        outcomes = _insert_batch(conn, ops)
    except (sqlite3.Error, OverflowError, ValueError):
        conn.execute("ROLLBACK TO batch")
        outcomes = []
        for op in ops:
            conn.execute("SAVEPOINT one")
            try:
                outcomes.extend(_insert_batch(conn, [op]))
            except (sqlite3.Error, OverflowError, ValueError) as exc:
                conn.execute("ROLLBACK TO one")
                outcomes.append((op.future, None, _storage_error(exc)))
            conn.execute("RELEASE one")
    conn.execute("RELEASE batch")
    return outcomes


def _new_ids(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    """The ids of the rows just inserted for ``keys``, in order, without a lookup by key.

    Ids of an AUTOINCREMENT table only grow, and the statement inserted exactly these rows,
    so they end at ``last_insert_rowid()`` (which the trigger's own insert does not change:
    https://sqlite.org/c3ref/last_insert_rowid.html); if the first is ours, none is missing
    between. Should it not be (never seen), the keys are looked up."""
    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    first = last - len(keys) + 1
    row = conn.execute("SELECT dedup_key FROM jobs WHERE id = ?", (first,)).fetchone()
    if row is None or row[0] != keys[0]:
        return _ids_by_key(conn, keys)
    return {key: first + i for i, key in enumerate(keys)}


def _insert_batch(conn: sqlite3.Connection, ops: list[_Enqueue]) -> list[_Outcome]:
    keys = [op.origin.dedup_key for op in ops]
    ids = _ids_by_key(conn, keys)
    seen = set(ids)
    created: list[bool] = []
    rows = []
    for key, op in zip(keys, ops, strict=True):
        created.append(key not in seen)
        if key in seen:
            continue
        seen.add(key)
        rows.append((key, *origin_values(op.origin), op.max_attempts, op.now, op.now, op.now))
    if rows:
        conn.executemany(_INSERT_JOB, rows)
        ids.update(_new_ids(conn, [row[0] for row in rows]))
    return [
        (op.future, EnqueueResult(job_id=ids[key], created=was_created), None)
        for key, op, was_created in zip(keys, ops, created, strict=True)
    ]


def _due_jobs(conn: sqlite3.Connection, now: float, limit: int, one_per_project: bool) -> list[int]:
    """Up to ``limit`` due job ids: uploads, then due projects in ``next_due`` order.

    Projects skipped (one already running) are at most as many as jobs are running, and a
    project whose ``next_due`` was early (its job cancelled, or its retry later) is set right
    as it is passed, so the walk does not grow with the number of queued jobs."""
    # A job no project brought (an upload) has a caller waiting on the line: it goes first,
    # each on its own (no project to take turns in), from its own index.
    chosen: list[int] = [
        row[0]
        for row in conn.execute(
            # SQLite would rather walk jobs_due, through every queued notification.
            "SELECT id FROM jobs INDEXED BY jobs_unbound_queue "
            "WHERE status = 'queued' AND api_url IS NULL AND run_after <= ? "
            "ORDER BY run_after, id LIMIT ?",
            (now, limit),
        )
    ]
    if len(chosen) >= limit:
        return chosen
    stale: list[tuple[str, int]] = []
    projects = conn.execute(
        "SELECT api_url, poid, running FROM projects WHERE next_due <= ? ORDER BY next_due",
        (now,),
    )
    for api_url, poid, running in projects:
        if one_per_project and running:
            continue
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs WHERE status = 'queued' AND api_url = ? AND poid = ? "
                "AND run_after <= ? ORDER BY run_after, id LIMIT ?",
                (api_url, poid, now, 1 if one_per_project else limit - len(chosen)),
            )
        ]
        if not ids:
            stale.append((api_url, poid))
        chosen.extend(ids)
        if len(chosen) >= limit:
            break
    projects.close()
    for api_url, poid in stale:
        _refresh_next_due(conn, api_url, poid)
    return chosen


def _refresh_next_due(conn: sqlite3.Connection, api_url: str, poid: int) -> None:
    conn.execute(
        "UPDATE projects SET next_due = (SELECT min(run_after) FROM jobs "
        "WHERE status = 'queued' AND api_url = :api_url AND poid = :poid) "
        "WHERE api_url = :api_url AND poid = :poid",
        {"api_url": api_url, "poid": poid},
    )


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


def _storage_error(exc: Exception) -> StorageError:
    return StorageError(f"the job database could not store the notifications: {exc}")


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _job(conn: sqlite3.Connection, job_id: int) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return Job.from_row(row)


def _held_job(conn: sqlite3.Connection, job_id: int, worker_id: str) -> Job:
    return rules.check_held(_job(conn, job_id), worker_id)


def _apply(conn: sqlite3.Connection, job: Job, transition: Transition, now: float) -> Job:
    """A transition the job rules decided, as this backend stores it."""
    if transition.outcome is not None:
        _finish_attempt(conn, job, transition.outcome, transition.attempt_error, now)
    return _update(conn, job.id, **transition_changes(transition, now))


def _update(conn: sqlite3.Connection, job_id: int, **changes: Any) -> Job:
    columns = ", ".join(f"{name} = :{name}" for name in changes)
    values = {k: str(v) if isinstance(v, JobStatus) else v for k, v in changes.items()}
    row = conn.execute(
        f"UPDATE jobs SET {columns} WHERE id = :job_id RETURNING *",  # noqa: S608
        {**values, "job_id": job_id},
    ).fetchone()
    return Job.from_row(row)


def _finish_attempt(
    conn: sqlite3.Connection, job: Job, outcome: AttemptOutcome, error: str | None, now: float
) -> None:
    conn.execute(
        "UPDATE attempts SET outcome = ?, error = ?, finished_at = ? "
        "WHERE job_id = ? AND number = ?",
        (str(outcome), error, now, job.id, job.attempts),
    )
