"""No job stays running: expired leases, dead workers, SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.records import AttemptOutcome, Job, JobStatus
from notifyd.storage.sqlite import SqliteStorage
from notifyd.worker import HOSTNAME
from tests.daemon import Daemon
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_status

pytestmark = pytest.mark.slow


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_model(tmp_path / "model.ifc")


async def _claimed_by(
    tmp_path: Path, emulator: BimServerEmulator, model: Path, worker_id: str, lease: float
) -> Job:
    """A job queued by a notifyd without a worker, then claimed by a worker that goes silent."""
    async with running_stack(tmp_path, emulator=emulator, run_worker=False) as stack:
        await stack.notify("test-noop", model)
        [job] = await stack.storage.claim(worker_id=worker_id, lease_seconds=lease)
        return job


async def test_a_silent_workers_expired_lease_is_reclaimed_and_run(
    tmp_path: Path, model: Path
) -> None:
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        job = await _claimed_by(tmp_path, emulator, model, "elsewhere:1:gone", 0.5)
        async with running_stack(tmp_path, emulator=emulator, reclaim_seconds=0.2) as stack:
            done = await wait_for_status(stack.storage, job.id, JobStatus.SUCCEEDED, timeout=20)
            history = await stack.storage.attempts(done.id)
            assert [a.outcome for a in history] == [
                AttemptOutcome.LEASE_EXPIRED,
                AttemptOutcome.SUCCEEDED,
            ]


async def test_a_dead_local_workers_job_is_reclaimed_at_start_up(
    tmp_path: Path, model: Path
) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        job = await _claimed_by(tmp_path, emulator, model, f"{HOSTNAME}:{gone.pid}:x", 3600)
        # The lease has an hour to go, but its owner is provably dead.
        async with running_stack(tmp_path, emulator=emulator, reclaim_seconds=3600) as stack:
            await wait_for_status(stack.storage, job.id, JobStatus.SUCCEEDED, timeout=20)


async def test_stopping_the_worker_releases_a_running_job_after_the_grace(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, drain_seconds=0.3) as stack:
        job, _ = await stack.running_job("test-slow", model)
        await stack.worker.stop()
        released = await wait_for_status(stack.storage, job.id, JobStatus.QUEUED, timeout=10)
        assert released.max_attempts == 6  # the interrupted attempt is not counted
        [attempt] = await stack.storage.attempts(job.id)
        assert attempt.outcome is AttemptOutcome.RELEASED


async def test_stopping_the_worker_lets_a_job_finish_within_the_grace(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, drain_seconds=10) as stack:
        job, _ = await stack.running_job("test-slow", model)
        await stack.worker.stop()
        await wait_for_status(stack.storage, job.id, JobStatus.SUCCEEDED, timeout=15)


async def test_sigterm_drains_the_daemon_and_nothing_is_lost(tmp_path: Path, model: Path) -> None:
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        daemon = Daemon(
            tmp_path / "data",
            env={
                "NOTIFYD_RUN_WORKER": "true",
                "NOTIFYD_ALLOWED_API_URLS": emulator.url,
                "NOTIFYD_SERVICE_MODULES": "notifyd.builtin_services,tests.plugins.services",
                "NOTIFYD_DRAIN_SECONDS": "0.5",
                "NOTIFYD_POLL_SECONDS": "0.05",
            },
        )
        await daemon.start()
        try:
            service = await emulator.add_service(daemon.url, "test-slow")
            poid = emulator.add_project()
            roid = emulator.add_revision(poid, model)
            await emulator.notify_new_revision(service, roid)
            await asyncio.sleep(1.0)  # let the service start
            assert await asyncio.to_thread(daemon.terminate) == 0
        finally:
            daemon.stop()
        async with SqliteStorage.open(daemon.data_dir / "notifyd.sqlite3") as storage:
            [job] = await storage.list_jobs()
            assert job.status is JobStatus.QUEUED
            assert job.notification.token is not None  # kept for the next attempt
            [attempt] = await storage.attempts(job.id)
            assert attempt.outcome is AttemptOutcome.RELEASED


async def test_the_worker_outlives_a_failing_database_call(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifyd.errors import StorageError

    async with running_stack(tmp_path) as stack:
        real_claim = stack.storage.claim
        failures = []

        async def claim(**kw: object) -> object:
            if not failures:
                failures.append(1)
                raise StorageError("the job database could not commit: database is locked")
            return await real_claim(**kw)  # type: ignore[arg-type]

        monkeypatch.setattr(stack.storage, "claim", claim)
        job, _ = await stack.run("test-noop", model)
        assert failures
        assert job.status is JobStatus.SUCCEEDED
