"""A provider moves from SQLite to PostgreSQL (and back) without losing a job, an attempt, a
kept token or an OAuth grant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from notifyd.cli import main
from notifyd.errors import StorageError
from notifyd.grants import Account, ClientStyle, IssuedToken, OAuthClient, TokenKind
from notifyd.records import JobStatus
from notifyd.storage import grants_of
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage
from notifyd.storage.transfer import TransferRow, export_rows, import_rows
from tests.conftest import FakeClock
from tests.factories import make_notification
from tests.postgres import fresh_schema, postgres_dsn


@pytest.fixture
async def postgres(clock: FakeClock) -> AsyncIterator[tuple[PostgresStorage, str]]:
    dsn = postgres_dsn()
    async with (
        fresh_schema(dsn) as settings,
        PostgresStorage.open(dsn, clock=clock, server_settings=settings) as storage,
    ):
        yield storage, f"{dsn}?search_path={settings['search_path']}"


async def _seed(storage: Any) -> None:
    for poid in range(4):
        await storage.enqueue(make_notification(poid=poid), max_attempts=1)
    first, second, *_ = await storage.claim(worker_id="w", lease_seconds=30, limit=3)
    await storage.fail(first.id, worker_id="w", error="BIMserver said no", retry_at=1e10)
    await storage.record_step(second.id, worker_id="w", name="file_id", value=99)
    grants = grants_of(storage)
    await grants.add_account(Account(name="alice", password_hash="scrypt$x", created_at=1.0))
    await grants.register_client(
        OAuthClient(
            client_id="c1",
            name="BIMserver",
            url=None,
            description=None,
            icon=None,
            redirect_uris=("http://bim.local/",),
            style=ClientStyle.BIMSERVER,
            registered_at=1.0,
        ),
        "secret-hash",
    )
    await grants.save_tokens(
        [
            IssuedToken(
                token_hash="t1",
                kind=TokenKind.ACCESS,
                client_id="c1",
                account="alice",
                service="ifc-summary",
                family="f",
                expires_at=2e9,
            )
        ],
        1.0,
    )


async def _picture(storage: Any) -> tuple[Any, ...]:
    jobs = sorted(await storage.list_jobs(limit=100), key=lambda j: j.id)
    attempts = [await storage.attempts(job.id) for job in jobs]
    grants = grants_of(storage)
    return (
        jobs,
        attempts,
        await grants.account("alice"),
        await grants.clients(),
        await grants.secret_matches("c1", "secret-hash"),
        await grants.live_token("t1", TokenKind.ACCESS, 10.0),
    )


async def test_sqlite_to_postgres_and_back_keeps_everything(
    tmp_path: Path, clock: FakeClock, postgres: tuple[PostgresStorage, str]
) -> None:
    target, _url = postgres
    async with SqliteStorage.open(tmp_path / "a.sqlite3", clock=clock) as source:
        await _seed(source)
        before = await _picture(source)
        exported = [row async for row in export_rows(source)]
    counts = await import_rows(target, exported)
    assert counts["jobs"] == 4
    assert counts["attempts"] == 3
    after = await _picture(target)
    assert after == before
    [dead] = [job for job in after[0] if job.status is JobStatus.DEAD]
    assert dead.notification.token is not None  # kept for a retry, and carried over
    new = await target.enqueue(make_notification(poid=77), max_attempts=3)
    assert new.job_id == max(job.id for job in after[0]) + 1
    # The running jobs still hold their projects: a claim takes the queued ones of the others.
    claimed = await target.claim(worker_id="x", lease_seconds=5, limit=5)
    assert sorted(job.id for job in claimed) == [4, new.job_id]
    now = await _picture(target)
    async with SqliteStorage.open(tmp_path / "b.sqlite3", clock=clock) as back:
        await import_rows(back, [row async for row in export_rows(target)])
        assert await _picture(back) == now


async def test_import_refuses_a_database_that_holds_jobs(tmp_path: Path, clock: FakeClock) -> None:
    async with SqliteStorage.open(tmp_path / "a.sqlite3", clock=clock) as source:
        await _seed(source)
        exported = [row async for row in export_rows(source)]
        with pytest.raises(Exception, match="already holds jobs"):
            await import_rows(source, exported)


def test_the_cli_moves_a_database(tmp_path: Path) -> None:
    runner = CliRunner()
    source = {"NOTIFYD_DATA_DIR": str(tmp_path / "a")}
    target = {"NOTIFYD_DATA_DIR": str(tmp_path / "b")}

    async def seed() -> None:
        (tmp_path / "a").mkdir()
        async with SqliteStorage.open(tmp_path / "a" / "notifyd.sqlite3") as storage:
            await _seed(storage)

    asyncio.run(seed())
    dump = tmp_path / "dump.jsonl"
    exported = runner.invoke(main, ["export", "--output", str(dump)], env=source)
    assert exported.exit_code == 0, exported.output
    assert dump.stat().st_mode & 0o077 == 0
    imported = runner.invoke(main, ["import", str(dump)], env=target)
    assert imported.exit_code == 0, imported.output
    assert "4 jobs" in imported.output
    again = runner.invoke(main, ["import", str(dump)], env=target)
    assert again.exit_code == 1
    assert "already holds jobs" in again.output


async def test_an_export_row_the_target_cannot_take_is_named_not_a_traceback(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with SqliteStorage.open(tmp_path / "t.sqlite3", clock=clock) as target:
        with pytest.raises(StorageError, match=r"the import stopped in jobs: .*no column named"):
            await import_rows(target, [TransferRow("jobs", {"id": 1, "no_such_column": 2})])
        with pytest.raises(StorageError, match="unknown table 'nope'"):
            await import_rows(target, [TransferRow("nope", {})])
