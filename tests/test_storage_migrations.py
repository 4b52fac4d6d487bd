"""A database from an earlier release is migrated at start-up without losing a job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from notifyd.errors import StartupError
from notifyd.records import AttemptOutcome, JobStatus
from notifyd.storage.sqlite import SqliteStorage
from notifyd.storage.sqlite_schema import migrations
from tests.factories import make_notification, make_upload


def _database_before_uploads(path: Path) -> None:
    """The schema as the release before m005 left it, with two jobs, an attempt, and a
    deleted job whose id must never be given again."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.apply(sqlite_utils.Database(conn), stop_before="m005_jobs_without_a_project")
    insert = (
        "INSERT INTO jobs (id, dedup_key, kind, dialect, poid, roid, soid, service, profile, "
        "api_url, token, status, attempts, max_attempts, run_after, lease_until, worker_id, "
        "created_at, updated_at) "
        "VALUES (?, ?, 'newRevision', '1.5', 131073, ?, 1, 'ifc-summary', 'default', "
        "'http://bimserver.test:8080', 'tok', ?, ?, 5, 0, ?, ?, 0, 0)"
    )
    conn.execute(insert, (1, "k1", 11, "queued", 0, None, None))
    conn.execute(insert, (2, "k2", 12, "running", 1, 1.0, "w"))  # its lease ran out long ago
    conn.execute(insert, (3, "k3", 13, "queued", 0, None, None))
    conn.execute("DELETE FROM jobs WHERE id = 3")
    conn.execute(
        "INSERT INTO attempts (job_id, number, worker_id, outcome, started_at) "
        "VALUES (2, 1, 'w', 'running', 0)"
    )
    conn.close()


async def test_jobs_attempts_and_the_id_sequence_survive_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.sqlite3"
    _database_before_uploads(path)
    async with SqliteStorage.open(path) as storage:
        jobs = {job.id: job for job in await storage.list_jobs()}
        assert sorted(jobs) == [1, 2]
        assert jobs[1].status is JobStatus.QUEUED
        assert jobs[2].notification.roid == 12
        [attempt] = await storage.attempts(2)
        assert attempt.outcome is AttemptOutcome.RUNNING
        new = await storage.enqueue(make_notification(), max_attempts=3)
        assert new.job_id == 4  # never 3: that id was given once
        # The project bookkeeping still follows the jobs: job 2 runs, so its project's queued
        # jobs (1, and the new 4) wait; once it is reclaimed, job 1 (due first) is next.
        assert await storage.claim(worker_id="w2", lease_seconds=30) == []
        [reclaimed] = await storage.reclaim_expired()
        assert reclaimed.id == 2
        [claimed] = await storage.claim(worker_id="w2", lease_seconds=30)
        assert claimed.id == 1


async def test_an_upload_is_a_job_without_a_project_and_is_claimed_first(
    storage: SqliteStorage,
) -> None:
    await storage.enqueue(make_notification(poid=5), max_attempts=3)
    upload = make_upload(client_id="client-1", context_id="ctx-9")
    stored = await storage.enqueue(upload, max_attempts=3)
    again = await storage.enqueue(upload, max_attempts=3)
    assert again.job_id == stored.job_id
    assert not again.created
    first, second = await storage.claim(worker_id="w", lease_seconds=30, limit=2)
    assert first.id == stored.job_id
    assert first.origin == upload
    assert first.server is None
    assert second.notification.poid == 5


async def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.sqlite3"
    async with SqliteStorage.open(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('notifyd', 'm999_from_the_future', '2030-01-01')"
    )
    conn.close()
    with pytest.raises(StartupError, match="newer notifyd"):
        async with SqliteStorage.open(path):
            pass


def test_notifyd_migrate_brings_the_schema_and_says_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from notifyd.cli import main

    result = CliRunner().invoke(main, ["migrate"], env={"NOTIFYD_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "at this release's schema; 0 jobs" in result.output
    assert (tmp_path / "notifyd.sqlite3").is_file()
