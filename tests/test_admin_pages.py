"""The admin dashboard without a browser: only administrators get in; the queue's counts, a
dead job's attempts and its retry."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from notifyd.records import JobStatus
from notifyd.web.keys import STORAGE, USER_ACCOUNTS
from tests.factories import make_envelope
from tests.test_account_pages import ACCOUNT, csrf_of, register


async def _dead_job(client: Any) -> int:
    answer = await client.post("/json", data=json.dumps(make_envelope()))
    assert answer.status == 200
    storage = client.app[STORAGE]
    [job] = await storage.claim(worker_id="w", lease_seconds=60, limit=1)
    for _ in range(job.max_attempts):
        job = await storage.fail(
            job.id, worker_id="w", error="BIMserver said no", retry_at=0.0, spend_attempt=True
        )
        if job.status is JobStatus.DEAD:
            break
        [job] = await storage.claim(worker_id="w", lease_seconds=60, limit=1)
    assert job.status is JobStatus.DEAD
    return job.id


async def test_only_an_administrator_gets_in(client: Any) -> None:
    await register(client)
    refused = await client.get("/admin")
    assert refused.status == 403
    assert "accounts add-admin" in await refused.text()


async def test_the_dashboard_shows_the_queue_and_a_dead_job_is_retried(client: Any) -> None:
    await register(client)
    await client.app[USER_ACCOUNTS].store.set_admin(ACCOUNT["name"], True)
    job_id = await _dead_job(client)
    page = await (await client.get("/admin?state=dead")).text()
    assert 'id="count-dead">1<' in page
    assert f"#{job_id}" in page
    assert "BIMserver said no" in page
    detail = await (await client.get(f"/admin/jobs/{job_id}")).text()
    assert "BIMserver said no" in detail
    assert 'id="retry"' in detail
    token = await csrf_of(client, f"/admin/jobs/{job_id}")
    retried = await client.post(
        f"/admin/jobs/{job_id}/retry", data={"csrf_token": token}, allow_redirects=False
    )
    assert retried.status == 303
    assert (await client.app[STORAGE].get(job_id)).status is JobStatus.QUEUED
    missing = await client.get("/admin/jobs/999")
    assert missing.status == 404


async def test_the_oldest_waiting_job_is_found_past_the_listed_ones(client: Any) -> None:
    await register(client)
    await client.app[USER_ACCOUNTS].store.set_admin(ACCOUNT["name"], True)
    storage = client.app[STORAGE]
    for _ in range(205):  # more than the dashboard lists
        answer = await client.post("/json", data=json.dumps(make_envelope()))
        assert answer.status == 200
    # The first job waited since long ago: only a look past the listed 200 finds it.
    first = min(j.id for j in await storage.list_jobs(status=JobStatus.QUEUED, limit=300))
    with sqlite3.connect(storage.path) as conn:
        conn.execute("UPDATE jobs SET created_at = 1600000000 WHERE id = ?", (first,))
    page = await (await client.get("/admin")).text()
    assert "<strong>2020-09-13 12:26:40 UTC</strong>oldest waiting" in page


async def test_a_filter_finds_jobs_past_the_listed_ones(client: Any) -> None:
    await register(client)
    await client.app[USER_ACCOUNTS].store.set_admin(ACCOUNT["name"], True)
    old = await client.post("/json", data=json.dumps(make_envelope(poid=4242)))
    assert old.status == 200
    for _ in range(205):  # newer jobs of another project, more than the dashboard lists
        assert (await client.post("/json", data=json.dumps(make_envelope()))).status == 200
    page = await (await client.get("/admin", params={"project": "4242"})).text()
    assert page.count("<td>4242</td>") == 1, page
    nothing = await (await client.get("/admin", params={"project": "no-such"})).text()
    assert "4242" not in nothing
