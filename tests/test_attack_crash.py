"""SIGKILL at random moments while BIMserver streams notifications and the worker runs their
services: after the last restart, every notification notifyd acknowledged has been processed
and nothing was written back twice. The counts are printed: sent, acknowledged, completed,
duplicated, lost."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.emulator.notifier import ServiceCallFailed
from notifyd.records import JobStatus
from notifyd.storage.sqlite import SqliteStorage
from tests.daemon import Daemon, worker_env
from tests.ifc_factory import build_model

pytestmark = [pytest.mark.attack, pytest.mark.slow]

NOTIFICATIONS = int(os.environ.get("NOTIFYD_CRASH_NOTIFICATIONS", "300"))
KILLS = int(os.environ.get("NOTIFYD_CRASH_KILLS", "6"))
SEED = int(os.environ.get("NOTIFYD_CRASH_SEED", "20261123"))


async def test_random_sigkills_lose_no_acknowledged_notification_and_write_nothing_twice(
    tmp_path: Path, figures: Callable[[str], None]
) -> None:
    rng = random.Random(SEED)
    model = build_model(tmp_path / "model.ifc")
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        env = worker_env(
            emulator.url,
            NOTIFYD_RETRY_CAP_SECONDS="0.5",
            NOTIFYD_LEASE_SECONDS="2",
            NOTIFYD_HEARTBEAT_SECONDS="0.5",
            NOTIFYD_RECLAIM_SECONDS="0.5",
            NOTIFYD_MAX_ATTEMPTS="50",  # every kill may cost running jobs an attempt
        )
        daemon = Daemon(tmp_path / "data", env=env)
        await daemon.start()
        service = await emulator.add_service(daemon.url, "test-brief")
        poid = emulator.add_project()
        acknowledged: list[int] = []
        refused = 0
        sent = 0
        streaming = True

        async def stream() -> None:
            nonlocal refused, sent, streaming
            for _ in range(NOTIFICATIONS):
                roid = emulator.add_revision(poid, model)
                sent += 1
                try:
                    await emulator.notify_new_revision(service, roid)
                    acknowledged.append(roid)
                except (ServiceCallFailed, aiohttp.ClientError, ConnectionError):
                    refused += 1  # BIMserver logs it and never retries
                await asyncio.sleep(rng.uniform(0, 0.03))
            streaming = False

        async def kill_at_random() -> int:
            kills = 0
            while streaming and kills < KILLS:
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                daemon.kill()
                kills += 1
                await asyncio.sleep(rng.uniform(0, 0.3))
                await daemon.start()
            return kills

        try:
            kills = (await asyncio.gather(stream(), kill_at_random()))[1]
            database = daemon.data_dir / "notifyd.sqlite3"
            async with asyncio.timeout(120):
                while True:
                    async with SqliteStorage.open(database) as storage:
                        jobs = await storage.list_jobs(limit=NOTIFICATIONS + 10)
                    if all(job.status.is_final for job in jobs):
                        break
                    await asyncio.sleep(0.2)
        finally:
            daemon.stop()

        written = {roid: len(emulator.extended_data_of(roid)) for roid in acknowledged}
        completed = sum(1 for count in written.values() if count >= 1)
        duplicated = sum(1 for count in written.values() if count > 1)
        lost = [roid for roid, count in written.items() if count == 0]
        statuses = {job.status for job in jobs}
        figures(
            f"seed {SEED}: {kills} SIGKILLs during the stream; sent {sent}, acknowledged "
            f"{len(acknowledged)}, refused while down {refused}, completed {completed}, "
            f"duplicated {duplicated}, lost {len(lost)}"
        )
        assert kills >= 2
        assert sent == NOTIFICATIONS
        assert statuses <= {JobStatus.SUCCEEDED}
        assert not lost, f"acknowledged but never processed: {lost[:10]}"
        assert duplicated == 0
        assert completed == len(acknowledged)
