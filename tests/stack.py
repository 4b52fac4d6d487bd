"""notifyd (receiver and worker) and the BIMserver emulator, wired together in one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from notifyd.config import Settings
from notifyd.emulator import BimServerEmulator, RegisteredService
from notifyd.plugins import load_hooks, load_registry, plugin_modules
from notifyd.records import Dialect, Job, JobStatus
from notifyd.storage.base import Storage
from notifyd.web.app import create_app
from notifyd.web.body import SERVER_OPTIONS
from notifyd.web.keys import STORAGE, WORKER
from notifyd.worker import Worker
from tests.conftest import PROJECT_ROOT

FAST_WORKER = {
    "poll_seconds": 0.05,
    "heartbeat_seconds": 0.2,
    "lease_seconds": 3.0,
    "reclaim_seconds": 0.5,
    "retry_base_seconds": 0.05,
    "retry_cap_seconds": 0.2,
    "bimserver_timeout_seconds": 2.0,
    "drain_seconds": 5.0,
}


def stack_settings(data_dir: Path, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "profiles_dir": PROJECT_ROOT / "profiles",
        "service_modules": ["notifyd.builtin_services", "tests.plugins.services"],
        "allowed_api_urls": [api_url],
        "log_format": "console",
        "log_level": "warning",
        "worker_concurrency": 2,
        **FAST_WORKER,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@dataclass
class Stack:
    emulator: BimServerEmulator
    app: web.Application
    url: str

    @property
    def storage(self) -> Storage:
        return self.app[STORAGE]

    @property
    def worker(self) -> Worker:
        return self.app[WORKER]

    async def service(
        self, identifier: str, profile: str = "default", *, poid: int | None = None
    ) -> RegisteredService:
        """Added to the project as BIMserver's UI does, with that project to write to."""
        return await self.emulator.add_service(
            self.url, identifier, profile, poid=poid, write_poid=poid
        )

    async def notify(
        self,
        identifier: str,
        ifc_path: Path,
        profile: str = "default",
        *,
        schema: str | None = None,
    ) -> int:
        """Add the service to a new project, check the file in as its revision, and notify."""
        poid = self.emulator.add_project()
        service = await self.service(identifier, profile, poid=poid)
        roid = self.emulator.add_revision(poid, ifc_path, schema=schema)
        await self.emulator.notify_new_revision(service, roid)
        return roid

    async def run(
        self, identifier: str, ifc_path: Path, profile: str = "default", timeout: float = 60
    ) -> tuple[Job, int]:
        """Notify, and wait for the (only) job to end."""
        roid = await self.notify(identifier, ifc_path, profile)
        [job] = await wait_for_jobs(self.storage, 1, timeout=timeout)
        return job, roid

    async def running_job(self, identifier: str, ifc_path: Path) -> tuple[Job, int]:
        """Notify, and wait until the (only) job's service is running."""
        roid = await self.notify(identifier, ifc_path)
        [job] = await wait_for_jobs(self.storage, 1, final=False)
        return await wait_for_status(self.storage, job.id, JobStatus.RUNNING), roid


async def wait_for_jobs(
    storage: Storage, count: int, *, timeout: float = 60, final: bool = True
) -> list[Job]:
    """Wait until ``count`` jobs exist and (with ``final``) all have ended."""
    async with asyncio.timeout(timeout):
        while True:
            jobs = await storage.list_jobs(limit=count + 100)
            if len(jobs) >= count and (not final or all(j.status.is_final for j in jobs)):
                return sorted(jobs, key=lambda j: j.id)
            await asyncio.sleep(0.05)


async def wait_for_status(
    storage: Storage, job_id: int, status: JobStatus, *, timeout: float = 30
) -> Job:
    async with asyncio.timeout(timeout):
        while True:
            job = await storage.get(job_id)
            if job.status is status:
                return job
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_stack(
    tmp_path: Path,
    dialect: Dialect = Dialect.BIMSERVER_15,
    *,
    emulator: BimServerEmulator | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """notifyd on ``tmp_path/data`` with a worker, and an emulator (a new one unless given:
    pass the same one to restart notifyd against the same BIMserver)."""
    if emulator is None:
        async with (
            BimServerEmulator(dialect, data_dir=tmp_path) as own,
            _notifyd(tmp_path, own, overrides) as stack,
        ):
            yield stack
    else:
        async with _notifyd(tmp_path, emulator, overrides) as stack:
            yield stack


@asynccontextmanager
async def _notifyd(
    tmp_path: Path, emulator: BimServerEmulator, overrides: dict[str, Any]
) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path / "data", emulator.url, **overrides)
    hooks = load_hooks(plugin_modules(settings))  # as `notifyd serve` does
    app = create_app(settings, load_registry(settings, hooks), hooks)
    runner = web.AppRunner(app, **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Stack(emulator, app, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
