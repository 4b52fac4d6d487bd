"""The storage contract: every backend passes this suite unchanged (SQLite, and PostgreSQL
where NOTIFYD_TEST_POSTGRES_DSN names a server). What is about one engine itself is in
``test_sqlite_storage.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifyd.errors import InvalidTransition, JobNotFound, StorageError
from notifyd.records import (
    AttemptOutcome,
    ExtendedDataWritten,
    JobMatch,
    JobResult,
    JobStatus,
    Timings,
)
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import FakeClock
from tests.factories import make_notification, make_upload
from tests.postgres import fresh_schema, postgres_dsn

LEASE = 30.0


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: Any, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        async with SqliteStorage.open(tmp_path / "jobs.sqlite3", clock=clock) as opened:
            yield opened
        return
    dsn = postgres_dsn()
    async with (
        fresh_schema(dsn) as server_settings,
        PostgresStorage.open(dsn, clock=clock, server_settings=server_settings) as opened,
    ):
        yield opened


async def test_enqueue_stores_a_queued_job(storage: Any) -> None:
    notification = make_notification()
    result = await storage.enqueue(notification, max_attempts=3)
    assert result.created
    job = await storage.get(result.job_id)
    assert job.status is JobStatus.QUEUED
    assert job.attempts == 0
    assert job.max_attempts == 3
    assert job.notification == notification


async def test_duplicate_enqueue_returns_the_existing_job(storage: Any) -> None:
    notification = make_notification()
    first = await storage.enqueue(notification, max_attempts=3)
    again = await storage.enqueue(notification, max_attempts=3)
    assert not again.created
    assert again.job_id == first.job_id
    assert len(await storage.list_jobs()) == 1


async def test_concurrent_duplicates_become_one_job(storage: Any) -> None:
    notification = make_notification()
    results = await asyncio.gather(
        *(storage.enqueue(notification, max_attempts=3) for _ in range(50))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.job_id for r in results}) == 1


async def test_a_batch_of_new_known_and_repeated_notifications_answers_each_its_own_job(
    storage: Any,
) -> None:
    known = await storage.enqueue(make_notification(roid=7), max_attempts=3)
    roids = [7, 8, 9, 8, 10, 7, 11]
    results = await asyncio.gather(
        *(storage.enqueue(make_notification(roid=r), max_attempts=3) for r in roids)
    )
    stored = {job.notification.roid: job.id for job in await storage.list_jobs()}
    assert [r.job_id for r in results] == [stored[r] for r in roids]
    assert stored[7] == known.job_id
    assert [r.created for r in results] == [False, True, True, False, True, False, True]


async def test_claim_leases_oldest_first(storage: Any, clock: FakeClock) -> None:
    first = await storage.enqueue(make_notification(poid=1), max_attempts=3)
    await storage.enqueue(make_notification(poid=2), max_attempts=3)
    [job] = await storage.claim(worker_id="w1", lease_seconds=LEASE)
    assert job.id == first.job_id
    assert job.status is JobStatus.RUNNING
    assert job.attempts == 1
    assert job.worker_id == "w1"
    assert job.lease_until == clock.now + LEASE


async def test_claimed_job_is_not_claimed_twice(storage: Any) -> None:
    for poid in range(10):
        await storage.enqueue(make_notification(poid=poid), max_attempts=3)
    claims = await asyncio.gather(
        *(storage.claim(worker_id=f"w{i}", lease_seconds=LEASE, limit=3) for i in range(8))
    )
    ids = [job.id for claimed in claims for job in claimed]
    assert len(ids) == 10
    assert len(set(ids)) == 10


async def test_one_running_job_per_project(storage: Any) -> None:
    await storage.enqueue(make_notification(poid=7), max_attempts=3)
    await storage.enqueue(make_notification(poid=7), max_attempts=3)
    await storage.enqueue(make_notification(poid=8), max_attempts=3)
    claimed = await storage.claim(worker_id="w", lease_seconds=LEASE, limit=5)
    assert sorted(j.notification.poid for j in claimed) == [7, 8]
    assert await storage.claim(worker_id="w", lease_seconds=LEASE, limit=5) == []
    first_of_7 = next(j for j in claimed if j.notification.poid == 7)
    await storage.complete(first_of_7.id, worker_id="w")
    [next_job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    assert next_job.notification.poid == 7


async def test_same_poid_on_another_bimserver_is_another_project(storage: Any) -> None:
    await storage.enqueue(make_notification(poid=7), max_attempts=3)
    await storage.enqueue(make_notification(poid=7, api_url="http://other:8080"), max_attempts=3)
    assert len(await storage.claim(worker_id="w", lease_seconds=LEASE, limit=5)) == 2


async def test_project_limit_can_be_lifted(storage: Any) -> None:
    await storage.enqueue(make_notification(poid=7), max_attempts=3)
    await storage.enqueue(make_notification(poid=7), max_attempts=3)
    claimed = await storage.claim(
        worker_id="w", lease_seconds=LEASE, limit=5, one_per_project=False
    )
    assert len(claimed) == 2


async def test_complete_erases_tokens_and_keeps_result(storage: Any) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    result = JobResult(
        delivery=ExtendedDataWritten(file_id=7, schema="VALIDATION_JSON_1_0", bytes=10),
        timings=Timings(download=1.5, service=2.0),
    )
    done = await storage.complete(job.id, worker_id="w", result=result)
    assert done.status is JobStatus.SUCCEEDED
    assert done.notification.token is None
    assert done.notification.user_token is None
    assert done.result == result
    assert done.lease_until is None
    [attempt] = await storage.attempts(job.id)
    assert attempt.outcome is AttemptOutcome.SUCCEEDED


async def test_heartbeat_extends_only_a_held_lease(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    clock.advance(20)
    beat = await storage.heartbeat(job.id, worker_id="w", lease_seconds=LEASE)
    assert beat is not None
    assert beat.lease_until == clock.now + LEASE
    assert (await storage.get(job.id)).lease_until == clock.now + LEASE
    assert await storage.heartbeat(job.id, worker_id="intruder", lease_seconds=LEASE) is None


async def test_heartbeat_tells_the_worker_about_cancellation(storage: Any) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    await storage.cancel(job.id)
    beat = await storage.heartbeat(job.id, worker_id="w", lease_seconds=LEASE)
    assert beat is not None
    assert beat.cancel_requested


async def test_steps_are_remembered_across_attempts(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    await storage.record_step(job.id, worker_id="w", name="file_uploaded", value=917505)
    await storage.fail(job.id, worker_id="w", error="reset", retry_at=clock.now)
    [again] = await storage.claim(worker_id="w2", lease_seconds=LEASE)
    assert again.steps == {"file_uploaded": 917505}
    with pytest.raises(InvalidTransition):
        await storage.record_step(job.id, worker_id="w", name="x", value=1)


async def test_expired_lease_of_a_dead_worker_is_reclaimed_at_once(
    storage: Any,
) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="dead", lease_seconds=LEASE)
    assert await storage.expire_lease(job.id, worker_id="dead")
    [reclaimed] = await storage.reclaim_expired()
    assert reclaimed.id == job.id
    assert reclaimed.status is JobStatus.QUEUED


async def test_fail_with_retry_requeues_after_the_delay(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    failed = await storage.fail(job.id, worker_id="w", error="boom", retry_at=clock.now + 60)
    assert failed.status is JobStatus.QUEUED
    assert failed.last_error == "boom"
    assert failed.notification.token is not None
    assert await storage.claim(worker_id="w", lease_seconds=LEASE) == []
    clock.advance(61)
    [again] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    assert again.attempts == 2


async def test_fail_without_retry_is_dead_and_erases_tokens(storage: Any) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    dead = await storage.fail(job.id, worker_id="w", error="No rights", retry_at=None)
    assert dead.status is JobStatus.DEAD
    assert dead.notification.token is None
    [attempt] = await storage.attempts(job.id)
    assert (attempt.outcome, attempt.error) == (AttemptOutcome.DEAD, "No rights")


async def test_last_attempt_failure_is_dead_with_full_history(
    storage: Any, clock: FakeClock
) -> None:
    await storage.enqueue(make_notification(), max_attempts=2)
    for error in ("first", "second"):
        [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
        final = await storage.fail(job.id, worker_id="w", error=error, retry_at=clock.now)
    assert final.status is JobStatus.DEAD
    history = await storage.attempts(final.id)
    assert [(a.number, a.outcome, a.error) for a in history] == [
        (1, AttemptOutcome.FAILED, "first"),
        (2, AttemptOutcome.DEAD, "second"),
    ]


async def test_expired_lease_is_reclaimed(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="crashed", lease_seconds=LEASE)
    assert await storage.reclaim_expired() == []
    clock.advance(LEASE + 1)
    [reclaimed] = await storage.reclaim_expired()
    assert reclaimed.status is JobStatus.QUEUED
    assert "lease expired" in (reclaimed.last_error or "")
    [again] = await storage.claim(worker_id="w2", lease_seconds=LEASE)
    assert again.id == job.id
    with pytest.raises(InvalidTransition):
        await storage.complete(job.id, worker_id="crashed")
    history = await storage.attempts(job.id)
    assert [a.outcome for a in history] == [AttemptOutcome.LEASE_EXPIRED, AttemptOutcome.RUNNING]


async def test_expired_lease_on_last_attempt_is_dead(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=1)
    await storage.claim(worker_id="crashed", lease_seconds=LEASE)
    clock.advance(LEASE + 1)
    [dead] = await storage.reclaim_expired()
    assert dead.status is JobStatus.DEAD
    assert dead.notification.token is not None  # kept for a retry: the worker may come back


async def test_release_does_not_spend_an_attempt(storage: Any) -> None:
    await storage.enqueue(make_notification(), max_attempts=1)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    released = await storage.release(job.id, worker_id="w")
    assert released.status is JobStatus.QUEUED
    [again] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    failed = await storage.fail(again.id, worker_id="w", error="x", retry_at=0)
    assert failed.status is JobStatus.DEAD
    outcomes = [a.outcome for a in await storage.attempts(job.id)]
    assert outcomes == [AttemptOutcome.RELEASED, AttemptOutcome.DEAD]


async def test_cancel_queued_job_at_once(storage: Any) -> None:
    queued_id = (await storage.enqueue(make_notification(), max_attempts=3)).job_id
    cancelled = await storage.cancel(queued_id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.notification.token is None
    with pytest.raises(InvalidTransition):
        await storage.cancel(queued_id)


async def test_cancel_running_job_asks_its_worker(storage: Any) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    asked = await storage.cancel(job.id)
    assert asked.status is JobStatus.RUNNING
    assert asked.cancel_requested
    stopped = await storage.fail(job.id, worker_id="w", error="cancelled", retry_at=0)
    assert stopped.status is JobStatus.CANCELLED


async def test_retry_of_a_queued_job_runs_it_now(storage: Any, clock: FakeClock) -> None:
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    await storage.fail(job.id, worker_id="w", error="busy", retry_at=clock.now + 3600)
    await storage.retry(job.id)
    assert len(await storage.claim(worker_id="w", lease_seconds=LEASE)) == 1


async def test_retry_of_an_ended_job_without_token_says_why(storage: Any) -> None:
    queued_id = (await storage.enqueue(make_notification(), max_attempts=3)).job_id
    await storage.cancel(queued_id)
    with pytest.raises(InvalidTransition, match="no longer holds a BIMserver token"):
        await storage.retry(queued_id)


async def test_unknown_job_is_named(storage: Any) -> None:
    with pytest.raises(JobNotFound, match="No job with id 999"):
        await storage.get(999)


async def test_counts_and_listing(storage: Any) -> None:
    for poid in range(3):
        await storage.enqueue(make_notification(poid=poid), max_attempts=3)
    await storage.claim(worker_id="w", lease_seconds=LEASE)
    counts = await storage.counts()
    assert counts[JobStatus.QUEUED] == 2
    assert counts[JobStatus.RUNNING] == 1
    assert [j.notification.poid for j in await storage.list_jobs()] == [2, 1, 0]
    assert len(await storage.list_jobs(status=JobStatus.RUNNING)) == 1


async def test_a_failing_write_does_not_undo_its_batch_neighbours(
    storage: Any,
) -> None:
    good = [storage.enqueue(make_notification(poid=p), max_attempts=3) for p in range(5)]
    bad = [storage.complete(12345, worker_id="w") for _ in range(5)]
    results = await asyncio.gather(*good, *bad, return_exceptions=True)
    assert all(not isinstance(r, Exception) for r in results[:5])
    assert all(isinstance(r, JobNotFound) for r in results[5:])
    assert len(await storage.list_jobs()) == 5


@pytest.mark.parametrize("field", ["poid", "roid", "soid"])
async def test_a_value_the_database_cannot_hold_fails_only_its_own_notification(
    storage: Any, field: str
) -> None:
    """The receiver refuses such values first; the storage still never lets one notification
    cost the others of its group commit their acknowledgement."""
    good = [storage.enqueue(make_notification(poid=p), max_attempts=3) for p in range(5)]
    bad = storage.enqueue(make_notification(**{field: 2**63}), max_attempts=3)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results[:5]), results
    assert isinstance(results[5], StorageError)
    assert len(await storage.list_jobs()) == 5


async def test_an_uploaded_extended_data_file_is_known_by_server_and_service(
    storage: Any,
) -> None:
    """The worker asks this before running a service on extended data it may have written."""
    await storage.enqueue(make_notification(), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    await storage.record_step(job.id, worker_id="w", name="file_id", value=917505)
    n = job.notification
    assert await storage.wrote_extended_data(api_url=n.api_url, service=n.service, file_id=917505)
    assert not await storage.wrote_extended_data(
        api_url=n.api_url, service=n.service, file_id=917506
    )
    assert not await storage.wrote_extended_data(
        api_url=n.api_url, service="another-service", file_id=917505
    )
    assert not await storage.wrote_extended_data(
        api_url="http://other-bimserver:8080", service=n.service, file_id=917505
    )


async def test_a_job_out_of_attempts_keeps_its_tokens_for_a_retry(
    storage: Any, clock: FakeClock
) -> None:
    await storage.enqueue(make_notification(), max_attempts=1)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    dead = await storage.fail(job.id, worker_id="w", error="timed out", retry_at=clock.now)
    assert dead.status is JobStatus.DEAD
    assert dead.notification.token is not None
    again = await storage.retry(job.id, attempts=2)
    assert (again.status, again.max_attempts) == (JobStatus.QUEUED, 3)


async def test_kept_tokens_are_erased_after_the_retention_window(
    storage: Any, clock: FakeClock
) -> None:
    await storage.enqueue(make_notification(), max_attempts=1)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    await storage.fail(job.id, worker_id="w", error="timed out", retry_at=clock.now)
    assert await storage.erase_tokens(finished_before=clock.now - 1) == 0
    clock.advance(10)
    assert await storage.erase_tokens(finished_before=clock.now - 5) == 1
    erased = await storage.get(job.id)
    assert (erased.notification.token, erased.notification.user_token) == (None, None)
    with pytest.raises(InvalidTransition, match="token_retention_seconds"):
        await storage.retry(job.id)


async def test_retry_dead_queues_every_dead_job_that_holds_its_tokens(
    storage: Any, clock: FakeClock
) -> None:
    for poid in (1, 2, 3):
        await storage.enqueue(make_notification(poid=poid), max_attempts=1)
    jobs = await storage.claim(worker_id="w", lease_seconds=LEASE, limit=3)
    transient = [j.id for j in jobs[:2]]
    for job_id in transient:
        await storage.fail(job_id, worker_id="w", error="503", retry_at=clock.now)
    await storage.fail(jobs[2].id, worker_id="w", error="No rights", retry_at=None)
    retried = await storage.retry_dead(attempts=2)
    assert sorted(j.id for j in retried) == sorted(transient)
    assert all(j.status is JobStatus.QUEUED and j.max_attempts == 3 for j in retried)
    assert (await storage.get(jobs[2].id)).status is JobStatus.DEAD
    assert len(await storage.claim(worker_id="w", lease_seconds=LEASE, limit=3)) == 2


async def test_an_attempt_that_found_bimserver_down_is_not_spent(
    storage: Any, clock: FakeClock
) -> None:
    await storage.enqueue(make_notification(), max_attempts=1)
    for _ in range(5):
        [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
        failed = await storage.fail(
            job.id, worker_id="w", error="refused", retry_at=clock.now, spend_attempt=False
        )
        assert failed.status is JobStatus.QUEUED
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    assert job.attempts == 6
    assert (await storage.complete(job.id, worker_id="w")).status is JobStatus.SUCCEEDED


async def test_a_bimserver_that_is_down_pauses_all_its_projects(
    storage: Any, clock: FakeClock
) -> None:
    for poid in (1, 2, 3):
        await storage.enqueue(make_notification(poid=poid), max_attempts=3)
    await storage.enqueue(make_notification(poid=1, api_url="http://other.test"), max_attempts=3)
    [job] = await storage.claim(worker_id="w", lease_seconds=LEASE)
    outage = await storage.pause_server(
        job.notification.api_url, error="refused", pause=lambda n: 10.0 * n
    )
    assert (outage.down_since, outage.failures, outage.paused_until) == (
        clock.now,
        1,
        clock.now + 10,
    )
    await storage.fail(
        job.id, worker_id="w", error="refused", retry_at=outage.paused_until, spend_attempt=False
    )
    [other] = await storage.claim(worker_id="w", lease_seconds=LEASE, limit=5)
    assert other.notification.api_url == "http://other.test"
    clock.advance(10)
    probes = await storage.claim(worker_id="w", lease_seconds=LEASE, limit=5)
    assert sorted(j.notification.poid for j in probes) == [1, 2, 3]
    clock.advance(1)
    again = await storage.pause_server(job.notification.api_url, error="x", pause=lambda n: 10.0)
    assert (again.down_since, again.failures) == (outage.down_since, 2)
    assert [o.api_url for o in await storage.outages()] == [job.notification.api_url]
    await storage.server_answered(job.notification.api_url)
    assert await storage.outages() == []


async def test_an_outage_with_no_failure_for_a_while_is_over(
    storage: Any, clock: FakeClock
) -> None:
    first = await storage.pause_server("http://b.test", error="x", pause=lambda n: 10.0)
    clock.advance(21)
    second = await storage.pause_server("http://b.test", error="x", pause=lambda n: 10.0)
    assert (second.down_since, second.failures) == (clock.now, 1)
    assert second.down_since > first.down_since


async def test_a_listing_is_narrowed_in_the_query_not_after_its_limit(storage: Any) -> None:
    """The admin page's filters: service, account, project, posted models; the newest
    matching jobs whatever number of others came after them."""
    ann = (await storage.enqueue(make_notification(account="ann", poid=7), max_attempts=3)).job_id
    for _ in range(5):
        await storage.enqueue(make_notification(account="bob", poid=8), max_attempts=3)
    other_service = await storage.enqueue(
        make_notification(service="ifc-validation", poid=8), max_attempts=3
    )
    upload = await storage.enqueue(make_upload(account="ann"), max_attempts=3)

    async def ids(**match: Any) -> list[int]:
        jobs = await storage.list_jobs(limit=2, match=JobMatch(**match))
        return [job.id for job in jobs]

    assert await ids(account="ann") == [upload.job_id, ann]
    assert await ids(account="ann", poid=7) == [ann]
    assert await ids(account="ann", uploads=True) == [upload.job_id]
    assert await ids(service="ifc-validation") == [other_service.job_id]
    assert len(await ids(account="bob", poid=8)) == 2
    assert await ids(account="nobody") == []
    queued = await storage.list_jobs(
        status=JobStatus.QUEUED, limit=10, match=JobMatch(account="ann", poid=7)
    )
    assert [job.id for job in queued] == [ann]
