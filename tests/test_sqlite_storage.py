"""What is about the SQLite engine itself: WAL, the write lock, the file shared by processes,
the flat cost of a claim counted in SQLite VM steps."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notifyd.records import JobStatus
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import FakeClock
from tests.factories import make_notification

LEASE = 30.0


@pytest.fixture
async def storage(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStorage]:
    async with SqliteStorage.open(tmp_path / "jobs.sqlite3", clock=clock) as opened:
        yield opened


async def test_jobs_survive_reopening(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "reopen.sqlite3"
    async with SqliteStorage.open(path, clock=clock) as first:
        notification = make_notification()
        job_id = (await first.enqueue(notification, max_attempts=3)).job_id
    async with SqliteStorage.open(path, clock=clock) as second:
        assert (await second.get(job_id)).notification == notification


async def test_database_uses_wal_and_full_sync(storage: SqliteStorage) -> None:
    conn = sqlite3.connect(storage.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_two_processes_worth_of_storages_share_one_file(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "shared.sqlite3"
    async with (
        SqliteStorage.open(path, clock=clock) as a,
        SqliteStorage.open(path, clock=clock) as b,
    ):
        for poid in range(20):
            await (a if poid % 2 else b).enqueue(make_notification(poid=poid), max_attempts=3)
        claims = await asyncio.gather(
            *(
                s.claim(worker_id=f"w{i}", lease_seconds=LEASE, limit=2)
                for i, s in enumerate([a, b] * 10)
            )
        )
        ids = [job.id for claimed in claims for job in claimed]
        assert sorted(ids) == sorted(set(ids))
        assert len(ids) == 20


async def test_enqueue_waits_for_a_lock_without_blocking_the_event_loop(
    storage: SqliteStorage,
) -> None:
    """Another process holds the write lock: the notification waits for it (busy_timeout) in
    the writer thread while the event loop keeps running, then is stored."""
    other = sqlite3.connect(storage.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.create_task(storage.enqueue(make_notification(), max_attempts=3))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    result = await asyncio.wait_for(pending, 5)
    assert result.created
    assert (await storage.get(result.job_id)).status is JobStatus.QUEUED


async def test_a_claim_does_not_read_the_backlog_of_a_busy_project(
    storage: SqliteStorage, clock: FakeClock
) -> None:
    """Counted in SQLite VM steps: with the busy project's backlog ten times longer, finding
    the one due job of another project costs the same."""
    from notifyd.storage.sqlite import _due_jobs

    await storage.enqueue(make_notification(poid=1), max_attempts=3)
    await storage.claim(worker_id="w", lease_seconds=LEASE)  # project 1 is now busy
    steps = []
    queued = 0
    for backlog in (200, 2000):
        await asyncio.gather(
            *(
                storage.enqueue(make_notification(poid=1), max_attempts=3)
                for _ in range(backlog - queued)
            )
        )
        queued = backlog
        clock.advance(1)
        other = await storage.enqueue(make_notification(poid=10_000 + backlog), max_attempts=3)
        conn = sqlite3.connect(storage.path)
        counted = [0]

        def count(counted: list[int] = counted) -> int:
            counted[0] += 1
            return 0

        conn.set_progress_handler(count, 10)
        try:
            chosen = _due_jobs(conn, clock.now, 1, True)
        finally:
            conn.close()
        assert chosen == [other.job_id]
        await storage.cancel(chosen[0])
        steps.append(counted[0])
    assert steps[1] <= steps[0] * 1.5 + 5, steps
