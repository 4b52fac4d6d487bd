"""A worker put together: its loop, its pipeline, the bindings of each kind of job, the HTTP
session and the service processes, from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from notifyd.config import Settings
from notifyd.hooks import Hooks
from notifyd.retry import RetryPolicy
from notifyd.runner import ServicePool
from notifyd.services import Registry
from notifyd.storage import accounts_of
from notifyd.storage.base import Storage
from notifyd.worker.bimserver_binding import BimServerBindings, BimServerOptions
from notifyd.worker.loop import Worker, WorkerConfig
from notifyd.worker.pipeline import BindingsByOrigin, Pipeline
from notifyd.worker.upload_binding import UploadBindings


@asynccontextmanager
async def open_worker(
    settings: Settings,
    storage: Storage,
    registry: Registry,
    hooks: Hooks | None = None,
    **overrides: Any,
) -> AsyncIterator[Worker]:
    """A worker with its HTTP session and service processes, not yet running; it tells
    ``hooks`` of every job event and BIMserver call."""
    async with aiohttp.ClientSession() as session:
        pool = ServicePool(settings.worker_concurrency, memory_limit_mb=settings.memory_limit_mb)
        await pool.start()
        try:
            bindings = BindingsByOrigin(
                notifications=BimServerBindings(
                    session=session,
                    storage=storage,
                    options=BimServerOptions(
                        call_timeout=settings.bimserver_timeout_seconds,
                        download_gzip=settings.download_gzip,
                        observer=hooks.bimserver_call if hooks is not None else None,
                    ),
                ),
                uploads=UploadBindings(
                    data_dir=settings.data_dir, retention_seconds=settings.bots_retention_seconds
                ),
            )
            worker = Worker(
                storage=storage,
                pipeline=Pipeline(
                    registry=registry,
                    pool=pool,
                    bindings=bindings,
                    work_dir=settings.data_dir / "work",
                    accounts=accounts_of(storage),
                ),
                config=WorkerConfig.from_settings(settings),
                retry_policy=RetryPolicy(
                    base_seconds=settings.retry_base_seconds,
                    cap_seconds=settings.retry_cap_seconds,
                    outage_cap_seconds=settings.outage_probe_cap_seconds,
                ),
                hooks=hooks,
                **overrides,
            )
            await storage.subscribe(worker.wake)
            yield worker
        finally:
            await pool.close()


@asynccontextmanager
async def running_worker(
    settings: Settings,
    storage: Storage,
    registry: Registry,
    hooks: Hooks | None = None,
    **overrides: Any,
) -> AsyncIterator[Worker]:
    """A worker working until the block ends; leaving the block drains it."""
    async with open_worker(settings, storage, registry, hooks, **overrides) as worker:
        task = asyncio.create_task(worker.run(), name="notifyd-worker")
        try:
            yield worker
        finally:
            await worker.stop()
            await task
