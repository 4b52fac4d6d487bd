"""The embedded SQLite backend's job queries: claims by project, leases, outcomes through
the job rules, outages. The engine beneath (connections, writer thread, group commit,
checkpoints, migrating) is ``sqlite_engine.py``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from notifyd import job_rules as rules
from notifyd.errors import JobNotFound
from notifyd.job_rules import Transition
from notifyd.records import (
    Attempt,
    AttemptOutcome,
    EnqueueResult,
    Job,
    JobMatch,
    JobResult,
    JobStatus,
    Notification,
    ServerOutage,
)
from notifyd.storage.rows import ORIGIN_COLUMNS, match_sql, origin_values, transition_changes
from notifyd.storage.sqlite_engine import Enqueue, Outcome, SqliteEngine, storage_error


class SqliteStorage(SqliteEngine):
    def _insert_enqueues(self, conn: sqlite3.Connection, batch: list[Enqueue]) -> list[Outcome]:
        return _enqueue_many(conn, batch)

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
        self,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        match: JobMatch | None = None,
    ) -> list[Job]:
        clauses, params = match_sql(match, lambda: "?")
        if status:
            clauses.append("status = ?")
            params.append(str(status))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""

        def read(conn: sqlite3.Connection) -> list[Job]:
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

    async def counts(self) -> dict[JobStatus, int]:
        def read(conn: sqlite3.Connection) -> dict[JobStatus, int]:
            rows = conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            counts = dict.fromkeys(JobStatus, 0)
            counts.update({JobStatus(row["status"]): row["n"] for row in rows})
            return counts

        return await self.run_read(read)


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


def _enqueue_many(conn: sqlite3.Connection, ops: list[Enqueue]) -> list[Outcome]:
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
                outcomes.append((op.future, None, storage_error(exc)))
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


def _insert_batch(conn: sqlite3.Connection, ops: list[Enqueue]) -> list[Outcome]:
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
