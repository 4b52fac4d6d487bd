"""/healthz says "failing", with the reason, when notifyd cannot do its work."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from notifyd.errors import StorageError
from notifyd.web.keys import LIFECYCLE, STORAGE, WORKER
from tests.factories import make_envelope


async def test_a_database_that_cannot_be_written_is_reported(client: Any) -> None:
    storage = client.app[STORAGE]
    assert (await client.get("/healthz")).status == 200
    damage = sqlite3.connect(storage.path)
    damage.execute("DROP TABLE attempts")
    damage.execute("DROP TABLE jobs")
    damage.commit()
    damage.close()
    answer = await client.post("/json", data=json.dumps(make_envelope()))
    assert answer.status == 503
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "failing"
    assert any("cannot be written" in p for p in body["problems"]), body
    assert any("cannot be read" in p for p in body["problems"]), body


async def test_a_worker_that_keeps_failing_is_reported(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(run_worker=True, poll_seconds=0.05))
    worker = client.app[WORKER]

    async def broken_claim(**_kw: Any) -> list[Any]:
        raise StorageError("database disk image is malformed")

    worker.storage.claim = broken_claim  # type: ignore[method-assign]
    async with asyncio.timeout(10):
        while True:
            response = await client.get("/healthz")
            if response.status != 200:
                break
            await asyncio.sleep(0.05)
    body = await response.json()
    assert response.status == 503
    [problem] = body["problems"]
    assert "the worker failed" in problem
    assert "database disk image is malformed" in problem


async def test_a_healthy_daemon_is_ok(client: Any, tmp_path: Path) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "jobs": {"queued": 0, "running": 0, "succeeded": 0, "dead": 0, "cancelled": 0},
    }


async def test_readyz_is_ready_with_a_writable_database_and_a_turning_worker(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(run_worker=True, poll_seconds=0.05))
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_readyz_names_every_reason_it_is_not_ready(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(run_worker=True, poll_seconds=0.05))
    client.app[LIFECYCLE].draining = True
    worker = client.app[WORKER]
    worker._last_turn -= 3600  # a loop stuck for an hour
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready"
    reasons = " | ".join(body["reasons"])
    assert "draining" in reasons
    assert "has not turned for 36" in reasons


async def test_readyz_without_a_worker_depends_on_the_database_only(client: Any) -> None:
    assert (await client.get("/readyz")).status == 200
    storage = client.app[STORAGE]
    damage = sqlite3.connect(storage.path)
    damage.execute("DROP TABLE attempts")
    damage.execute("DROP TABLE jobs")
    damage.commit()
    damage.close()
    assert (await client.post("/json", data=json.dumps(make_envelope()))).status == 503
    response = await client.get("/readyz")
    assert response.status == 503
    assert any("cannot be written" in r for r in (await response.json())["reasons"])
