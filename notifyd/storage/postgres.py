"""The PostgreSQL backend's job queries (asyncpg): several notifyd hosts share one queue.

The same semantics as SQLite, from the same job rules (``job_rules``) and row mapping
(``rows``): dedup keys, leases and reclaim, per-project serialization by a ``projects`` table
the triggers keep, kept tokens. Claims lock due project rows with ``FOR UPDATE SKIP LOCKED``,
so two hosts never take two jobs of one project, and neither waits for the other. The pool,
migrating, LISTEN/NOTIFY and the group commit of new jobs are the engine's
(``postgres_engine.py``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from notifyd import job_rules as rules
from notifyd.errors import JobNotFound
from notifyd.job_rules import Transition
from notifyd.records import (
    Attempt,
    Job,
    JobMatch,
    JobResult,
    JobStatus,
    Notification,
    ServerOutage,
)
from notifyd.storage.postgres_engine import PostgresEngine
from notifyd.storage.rows import match_sql, transition_changes


class PostgresStorage(PostgresEngine):
    # -- claims and leases -------------------------------------------------------------

    async def claim(
        self, *, worker_id: str, lease_seconds: float, limit: int = 1, one_per_project: bool = True
    ) -> list[Job]:
        now = self._clock()
        async with self.pool.acquire() as conn, conn.transaction():
            chosen = [
                row["id"]
                for row in await conn.fetch(
                    "SELECT id FROM jobs WHERE status = 'queued' AND api_url IS NULL "
                    "AND run_after <= $1 ORDER BY run_after, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    now,
                    limit,
                )
            ]
            stale: list[tuple[str, int]] = []
            seen_urls: list[str] = []
            seen_poids: list[int] = []
            # Project rows are locked as they are taken: another host's claim skips them, so
            # one project never has two jobs claimed at once. A page at a time: a row locked
            # and not used would hide its project from every other claim until this commits.
            while len(chosen) < limit:
                page = await conn.fetch(
                    "SELECT api_url, poid FROM projects WHERE next_due <= $1 "
                    "AND (running = 0 OR NOT $2) AND (api_url, poid) NOT IN "
                    "(SELECT * FROM unnest($3::text[], $4::bigint[])) "
                    "ORDER BY next_due LIMIT $5 FOR UPDATE SKIP LOCKED",
                    now,
                    one_per_project,
                    seen_urls,
                    seen_poids,
                    limit - len(chosen),
                )
                if not page:
                    break
                for project in page:
                    seen_urls.append(project["api_url"])
                    seen_poids.append(project["poid"])
                    ids = [
                        row["id"]
                        for row in await conn.fetch(
                            "SELECT id FROM jobs WHERE status = 'queued' AND api_url = $1 "
                            "AND poid = $2 AND run_after <= $3 ORDER BY run_after, id LIMIT $4 "
                            "FOR UPDATE SKIP LOCKED",
                            project["api_url"],
                            project["poid"],
                            now,
                            1 if one_per_project else limit - len(chosen),
                        )
                    ]
                    if not ids:
                        stale.append((project["api_url"], project["poid"]))
                    chosen.extend(ids)
            jobs = []
            for job_id in chosen:
                row = await conn.fetchrow(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, "
                    "lease_until = $1, worker_id = $2, updated_at = $3 WHERE id = $4 RETURNING *",
                    now + lease_seconds,
                    worker_id,
                    now,
                    job_id,
                )
                await conn.execute(
                    "INSERT INTO attempts (job_id, number, worker_id, outcome, started_at) "
                    "VALUES ($1, $2, $3, 'running', $4)",
                    job_id,
                    row["attempts"],
                    worker_id,
                    now,
                )
                jobs.append(Job.from_row(row))
            touched = {
                (job.origin.api_url, job.origin.poid)
                for job in jobs
                if isinstance(job.origin, Notification)
            }
            for api_url, poid in {*touched, *stale}:
                await _refresh_next_due(conn, api_url, poid)
            return jobs

    async def heartbeat(self, job_id: int, *, worker_id: str, lease_seconds: float) -> Job | None:
        now = self._clock()
        row = await self.pool.fetchrow(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 "
            "WHERE id = $3 AND status = 'running' AND worker_id = $4 RETURNING *",
            now + lease_seconds,
            now,
            job_id,
            worker_id,
        )
        return Job.from_row(row) if row else None

    async def record_step(self, job_id: int, *, worker_id: str, name: str, value: Any) -> Job:
        async with self.pool.acquire() as conn, conn.transaction():
            job = await _held_job(conn, job_id, worker_id)
            return await _update(conn, job_id, steps=json.dumps({**job.steps, name: value}))

    async def wrote_extended_data(self, *, api_url: str, service: str, file_id: int) -> bool:
        row = await self.pool.fetchval(
            "SELECT 1 FROM jobs WHERE api_url = $1 AND steps <> '{}' "
            "AND (steps::jsonb ->> 'file_id') = $2 AND service = $3 LIMIT 1",
            api_url,
            str(file_id),
            service,
        )
        return row is not None

    async def expire_lease(self, job_id: int, *, worker_id: str) -> bool:
        status = await self.pool.execute(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND status = 'running' "
            "AND worker_id = $3",
            self._clock() - 1,
            job_id,
            worker_id,
        )
        return status == "UPDATE 1"

    async def _transition(
        self, job_id: int, decide: Callable[[Job], Transition], *, worker_id: str | None = None
    ) -> Job:
        now = self._clock()
        async with self.pool.acquire() as conn, conn.transaction():
            job = (
                await _held_job(conn, job_id, worker_id)
                if worker_id is not None
                else await _locked_job(conn, job_id)
            )
            return await _apply(conn, job, decide(job), now)

    async def complete(
        self, job_id: int, *, worker_id: str, result: JobResult | None = None
    ) -> Job:
        return await self._transition(
            job_id, lambda _job: rules.succeeded(result), worker_id=worker_id
        )

    async def fail(
        self,
        job_id: int,
        *,
        worker_id: str,
        error: str,
        retry_at: float | None,
        spend_attempt: bool = True,
    ) -> Job:
        return await self._transition(
            job_id,
            lambda job: rules.failed(job, error, retry_at=retry_at, spend_attempt=spend_attempt),
            worker_id=worker_id,
        )

    async def release(self, job_id: int, *, worker_id: str) -> Job:
        now = self._clock()
        return await self._transition(
            job_id, lambda job: rules.released(job, now), worker_id=worker_id
        )

    async def retry(self, job_id: int, *, attempts: int = 1) -> Job:
        now = self._clock()
        return await self._transition(job_id, lambda job: rules.retried(job, now, attempts))

    async def cancel(self, job_id: int) -> Job:
        return await self._transition(job_id, rules.cancelled)

    async def reclaim_expired(self) -> list[Job]:
        now = self._clock()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM jobs WHERE status = 'running' AND lease_until < $1 "
                "ORDER BY id FOR UPDATE SKIP LOCKED",
                now,
            )
            reclaimed = []
            for row in rows:
                job = Job.from_row(row)
                reclaimed.append(await _apply(conn, job, rules.lease_expired(job, now), now))
            return reclaimed

    async def retry_dead(self, *, attempts: int = 1) -> list[Job]:
        now = self._clock()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM jobs WHERE status = 'dead' "
                "AND (token IS NOT NULL OR api_url IS NULL) ORDER BY id FOR UPDATE"
            )
            jobs = [Job.from_row(row) for row in rows]
            return [await _apply(conn, j, rules.retried(j, now, attempts), now) for j in jobs]

    # -- BIMserver outages -------------------------------------------------------------

    async def pause_server(
        self, api_url: str, *, error: str, pause: Callable[[int], float]
    ) -> ServerOutage:
        now = self._clock()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", api_url)
            row = await conn.fetchrow("SELECT * FROM servers WHERE api_url = $1", api_url)
            ongoing = row is not None and now - row["last_failure_at"] <= 2 * pause(row["failures"])
            failures = row["failures"] + 1 if row is not None and ongoing else 1
            outage = ServerOutage(
                api_url=api_url,
                down_since=row["down_since"] if row is not None and ongoing else now,
                failures=failures,
                paused_until=now + pause(failures),
                last_error=error,
            )
            await conn.execute(
                "INSERT INTO servers (api_url, down_since, failures, last_failure_at, "
                "paused_until, last_error) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (api_url) DO UPDATE SET down_since = excluded.down_since, "
                "failures = excluded.failures, last_failure_at = excluded.last_failure_at, "
                "paused_until = excluded.paused_until, last_error = excluded.last_error",
                api_url,
                outage.down_since,
                failures,
                now,
                outage.paused_until,
                error,
            )
            await conn.execute(
                "UPDATE projects SET next_due = greatest(next_due, $1) "
                "WHERE api_url = $2 AND next_due IS NOT NULL",
                outage.paused_until,
                api_url,
            )
            return outage

    async def server_answered(self, api_url: str) -> None:
        await self.pool.execute("DELETE FROM servers WHERE api_url = $1", api_url)

    async def outages(self) -> list[ServerOutage]:
        rows = await self.pool.fetch("SELECT * FROM servers ORDER BY api_url")
        return [ServerOutage.from_row(row) for row in rows]

    async def erase_tokens(self, *, finished_before: float) -> int:
        status = await self.pool.execute(
            "UPDATE jobs SET token = NULL, user_token = NULL "
            "WHERE status = 'dead' AND token IS NOT NULL AND finished_at < $1",
            finished_before,
        )
        return int(status.split()[-1])

    # -- reading -------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    async def find(self, origin_key: str) -> Job | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE dedup_key = $1", origin_key)
        return Job.from_row(row) if row else None

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        match: JobMatch | None = None,
    ) -> list[Job]:
        numbers = itertools.count(4)
        clauses, params = match_sql(match, lambda: f"${next(numbers)}")
        narrowed = "".join(f" AND {clause}" for clause in clauses)
        rows = await self.pool.fetch(
            f"SELECT * FROM jobs WHERE ($1::text IS NULL OR status = $1){narrowed} "  # noqa: S608
            "ORDER BY id DESC LIMIT $2 OFFSET $3",
            str(status) if status else None,
            limit,
            offset,
            *params,
        )
        return [Job.from_row(row) for row in rows]

    async def attempts(self, job_id: int) -> list[Attempt]:
        rows = await self.pool.fetch(
            "SELECT * FROM attempts WHERE job_id = $1 ORDER BY number, started_at", job_id
        )
        return [Attempt.from_row(row) for row in rows]

    async def problems(self) -> list[str]:
        found = []
        if self._write_failure is not None:
            found.append(f"the job database cannot be written: {self._write_failure}")
        try:
            await self.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            found.append(f"the job database cannot be read: {exc}")
        return found

    async def counts(self) -> dict[JobStatus, int]:
        rows = await self.pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(row["status"]): row["n"] for row in rows})
        return counts


async def _refresh_next_due(conn: asyncpg.Connection, api_url: str, poid: int) -> None:
    await conn.execute(
        "UPDATE projects SET next_due = (SELECT min(run_after) FROM jobs "
        "WHERE status = 'queued' AND api_url = $1 AND poid = $2) "
        "WHERE api_url = $1 AND poid = $2",
        api_url,
        poid,
    )


async def _locked_job(conn: asyncpg.Connection, job_id: int) -> Job:
    row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    if row is None:
        raise JobNotFound(job_id)
    return Job.from_row(row)


async def _held_job(conn: asyncpg.Connection, job_id: int, worker_id: str) -> Job:
    return rules.check_held(await _locked_job(conn, job_id), worker_id)


async def _update(conn: asyncpg.Connection, job_id: int, **changes: Any) -> Job:
    names = list(changes)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    row = await conn.fetchrow(
        f"UPDATE jobs SET {assignments} WHERE id = $1 RETURNING *",  # noqa: S608
        job_id,
        *(changes[name] for name in names),
    )
    return Job.from_row(row)


async def _apply(conn: asyncpg.Connection, job: Job, transition: Transition, now: float) -> Job:
    if transition.outcome is not None:
        await conn.execute(
            "UPDATE attempts SET outcome = $1, error = $2, finished_at = $3 "
            "WHERE job_id = $4 AND number = $5",
            str(transition.outcome),
            transition.attempt_error,
            now,
            job.id,
            job.attempts,
        )
    return await _update(conn, job.id, **transition_changes(transition, now))
