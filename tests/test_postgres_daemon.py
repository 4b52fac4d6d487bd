"""The daemon on PostgreSQL as a provider runs it: notifications acknowledged and stored, a
BIM-bots model run by the worker (woken by NOTIFY) and answered, the OAuth grants kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests

from notifyd.config import Settings
from notifyd.errors import StartupError, StorageError
from notifyd.records import JobStatus
from notifyd.storage.postgres import PostgresStorage
from notifyd.web.keys import STORAGE
from tests.bots_client import access_token, run
from tests.factories import make_envelope, make_notification
from tests.ifc_factory import build_model
from tests.postgres import fresh_schema, postgres_dsn


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    dsn = postgres_dsn()
    async with fresh_schema(dsn) as server_settings:
        separator = "&" if "?" in dsn else "?"
        yield f"{dsn}{separator}search_path={server_settings['search_path']}"


async def test_the_daemon_takes_notifications_and_models_on_postgres(
    make_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    client = await make_client(
        make_settings(database_url=postgres_url, run_worker=True, poll_seconds=5.0)
    )
    assert isinstance(client.app[STORAGE], PostgresStorage)
    answer = await client.post("/json", json=make_envelope("newRevision"))
    assert answer.status == 200
    assert "exception" not in await answer.json()
    base = str(client.make_url("")).rstrip("/")
    token = await run(access_token, base)
    result = await run(
        requests.post,
        f"{base}/services/ifc-summary",
        data=build_model(tmp_path / "m.ifc").read_bytes(),
        headers={
            "Authorization": f"Bearer {token}",
            "Input-Type": "IFC_STEP_4",
            "Output-Type": "IFC_ANALYTICS_JSON_1_0",
        },
        timeout=60,
    )
    assert result.status_code == 200, result.text
    assert result.json()["elementCounts"]["IfcWall"] == 3
    jobs = await client.app[STORAGE].list_jobs()
    assert len(jobs) == 2
    assert JobStatus.SUCCEEDED in {job.status for job in jobs}


@pytest.mark.parametrize(
    "url",
    ["postgresql://nobody@127.0.0.1:1/none", "postgresql://[bad-host/db"],
)
async def test_a_database_url_that_cannot_be_used_stops_start_up_in_one_line(url: str) -> None:
    with pytest.raises(StartupError, match="cannot connect to PostgreSQL at postgresql://"):
        async with PostgresStorage.open(url):
            pass


async def test_a_lost_connection_answers_every_waiting_notification(
    postgres_url: str,
) -> None:
    async with PostgresStorage.open(postgres_url) as storage:
        await storage.pool.close()  # as when PostgreSQL goes away under the daemon
        results = await asyncio.wait_for(
            asyncio.gather(
                *(storage.enqueue(make_notification(), max_attempts=3) for _ in range(5)),
                return_exceptions=True,
            ),
            10,
        )
        assert all(isinstance(r, StorageError) for r in results), results
        assert await storage.problems()


async def test_a_batch_aborted_by_a_deadlock_is_tried_again(monkeypatch: Any) -> None:
    """Hosts' batches can deadlock on the project rows; PostgreSQL aborts one, and notifyd
    commits it again instead of refusing every notification in it."""
    dsn = postgres_dsn()
    async with (
        fresh_schema(dsn) as server_settings,
        PostgresStorage.open(dsn, server_settings=server_settings) as storage,
    ):
        real = storage._insert
        calls: list[int] = []

        async def deadlocked_once(batch: Any) -> Any:
            calls.append(len(batch))
            if len(calls) == 1:
                raise asyncpg.DeadlockDetectedError("deadlock detected")
            return await real(batch)

        monkeypatch.setattr(storage, "_insert", deadlocked_once)
        results = await asyncio.gather(
            *(storage.enqueue(make_notification(), max_attempts=3) for _ in range(5))
        )
        assert all(r.created for r in results)
        assert len(calls) >= 2
        assert len(await storage.list_jobs()) == 5
