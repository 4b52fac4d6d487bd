"""`notifyd jobs list|show|retry|cancel` against the daemon's database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifyd.cli import main
from notifyd.storage.sqlite import SqliteStorage
from tests.factories import make_notification


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "notifyd.sqlite3"
    path.parent.mkdir()
    async with SqliteStorage.open(path) as storage:
        for poid in (1, 2, 3):
            await storage.enqueue(make_notification(poid=poid), max_attempts=3)
        [job] = await storage.claim(worker_id="w", lease_seconds=60)
        await storage.fail(
            job.id, worker_id="w", error="No rights to download revision", retry_at=None
        )
    return path


def run(database: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["jobs", *args], env={"NOTIFYD_DATA_DIR": str(database.parent)})


def test_list_shows_status_and_error(database: Path) -> None:
    result = run(database, "list")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 3
    assert "dead" in lines[-1]
    assert "No rights to download revision" in lines[-1]


def test_list_filters_by_status_as_json(database: Path) -> None:
    result = run(database, "list", "--status", "queued", "--json")
    jobs = json.loads(result.output)  # type: ignore[attr-defined]
    assert [j["poid"] for j in jobs] == [3, 2]
    assert all("token" not in j for j in jobs)


def test_show_includes_the_attempt_history(database: Path) -> None:
    result = run(database, "show", "1")
    job = json.loads(result.output)  # type: ignore[attr-defined]
    assert job["status"] == "dead"
    assert job["history"][0]["outcome"] == "dead"
    assert job["history"][0]["error"] == "No rights to download revision"


def test_cancel_a_queued_job(database: Path) -> None:
    result = run(database, "cancel", "2")
    assert result.exit_code == 0
    assert "job 2 is cancelled" in result.output  # type: ignore[attr-defined]


def test_retry_of_a_dead_job_without_token_says_why(database: Path) -> None:
    result = run(database, "retry", "1")
    assert result.exit_code == 1
    assert "no longer holds a BIMserver token" in result.output  # type: ignore[attr-defined]


def test_unknown_job_is_named(database: Path) -> None:
    result = run(database, "show", "99")
    assert result.exit_code == 1
    assert "No job with id 99" in result.output  # type: ignore[attr-defined]


def test_retry_dead_queues_every_job_that_ran_out_of_attempts(database: Path) -> None:
    async def run_out_of_attempts() -> None:
        async with SqliteStorage.open(database) as storage:
            while claimed := await storage.claim(worker_id="w", lease_seconds=60, limit=2):
                for job in claimed:
                    await storage.fail(job.id, worker_id="w", error="HTTP 503", retry_at=0)

    asyncio.run(run_out_of_attempts())
    result = run(database, "retry", "--dead")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "2 dead job(s) queued again: 2, 3" in result.output  # type: ignore[attr-defined]
    queued = run(database, "list", "--status", "queued", "--json")
    assert sorted(j["id"] for j in json.loads(queued.output)) == [2, 3]  # type: ignore[attr-defined]


def test_retry_needs_a_job_or_dead(database: Path) -> None:
    result = run(database, "retry")
    assert result.exit_code == 2
    assert "give either a JOB_ID or --dead" in result.output  # type: ignore[attr-defined]
