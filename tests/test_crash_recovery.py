"""SIGKILL the daemon while its services run: after a restart every job completes and no
extended data is written twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.records import JobStatus
from notifyd.storage.sqlite import SqliteStorage
from tests.daemon import Daemon, worker_env
from tests.ifc_factory import build_model

pytestmark = [pytest.mark.slow, pytest.mark.attack]

JOBS = 50


async def _statuses(database: Path) -> Counter[JobStatus]:
    async with SqliteStorage.open(database) as storage:
        return Counter(job.status for job in await storage.list_jobs(limit=1000))


async def test_sigkill_while_services_run_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        daemon = Daemon(tmp_path / "data", env=worker_env(emulator.url))
        database = daemon.data_dir / "notifyd.sqlite3"
        await daemon.start()
        try:
            service = await emulator.add_service(daemon.url, "test-brief")
            poid = emulator.add_project()
            roids = [emulator.add_revision(poid, model) for _ in range(JOBS)]
            await asyncio.gather(*(emulator.notify_new_revision(service, r) for r in roids))
            async with asyncio.timeout(30):
                while True:  # kill once some jobs are done and others are mid-service
                    counts = await _statuses(database)
                    if counts[JobStatus.SUCCEEDED] >= 5 and counts[JobStatus.RUNNING] >= 2:
                        break
                    await asyncio.sleep(0.02)
            daemon.kill()
            interrupted = (await _statuses(database))[JobStatus.RUNNING]
            assert interrupted >= 2

            await daemon.start()
            async with asyncio.timeout(60):
                while True:
                    if (await _statuses(database))[JobStatus.SUCCEEDED] == JOBS:
                        break
                    await asyncio.sleep(0.1)
        finally:
            daemon.stop()

        counts = await _statuses(database)
        assert counts == Counter({JobStatus.SUCCEEDED: JOBS})
        for roid in roids:
            assert len(emulator.extended_data_of(roid)) == 1, f"revision {roid}"
