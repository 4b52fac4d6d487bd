"""`notifyd worker --burst` works the queue of a database it shares, then exits."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.records import JobStatus
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import PROJECT_ROOT
from tests.ifc_factory import build_model
from tests.stack import running_stack

pytestmark = pytest.mark.slow


async def test_worker_burst_runs_the_queued_jobs_and_exits(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        async with running_stack(tmp_path, emulator=emulator, run_worker=False) as stack:
            for _ in range(3):
                await stack.notify("test-noop", model)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifyd",
            "worker",
            "--burst",
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "NOTIFYD_DATA_DIR": str(tmp_path / "data"),
                "NOTIFYD_PROFILES_DIR": str(PROJECT_ROOT / "profiles"),
                "NOTIFYD_SERVICE_MODULES": "notifyd.builtin_services,tests.plugins.services",
                "NOTIFYD_POLL_SECONDS": "0.05",
                "NOTIFYD_LOG_LEVEL": "warning",
            },
        )
        assert await asyncio.wait_for(process.wait(), 60) == 0
        async with SqliteStorage.open(tmp_path / "data" / "notifyd.sqlite3") as storage:
            jobs = await storage.list_jobs()
        assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 3
        assert sum(len(emulator.extended_data_of(r)) for r in emulator.revisions) == 3
