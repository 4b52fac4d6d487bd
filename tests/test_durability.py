"""A notification that was answered survives SIGKILL of the daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from notifyd.storage.sqlite import SqliteStorage
from tests.daemon import Daemon
from tests.factories import make_envelope

pytestmark = [pytest.mark.slow, pytest.mark.attack]


async def test_answered_notifications_survive_sigkill_and_restart(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data")
    await daemon.start()
    bodies = [make_envelope() for _ in range(200)]
    answered: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def send(body: dict) -> None:
                async with session.post(f"{daemon.url}/json", data=json.dumps(body)) as response:
                    if response.status == 200 and await response.json() == {
                        "response": {"result": {}}
                    }:
                        answered.append(body["request"]["parameters"]["roid"])

            await asyncio.gather(*(send(body) for body in bodies))
            daemon.kill()  # the instant the last answer arrived
        assert len(answered) == 200

        await daemon.start()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{daemon.url}/healthz") as response,
        ):
            assert (await response.json())["jobs"]["queued"] == 200
        async with SqliteStorage.open(daemon.data_dir / "notifyd.sqlite3") as storage:
            stored = {job.notification.roid for job in await storage.list_jobs(limit=1000)}
        assert set(answered) <= stored
    finally:
        daemon.stop()


async def test_kill_during_a_stream_of_notifications_loses_none_answered(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data")
    await daemon.start()
    answered: list[int] = []
    hundred_answered = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as session:

            async def send(body: dict) -> None:
                try:
                    async with session.post(f"{daemon.url}/json", data=json.dumps(body)) as r:
                        if r.status == 200 and "result" in (await r.json())["response"]:
                            answered.append(body["request"]["parameters"]["roid"])
                            if len(answered) >= 100:
                                hundred_answered.set()
                except aiohttp.ClientError:
                    pass  # in flight when the daemon died: never answered, so never promised

            tasks = [asyncio.create_task(send(make_envelope())) for _ in range(300)]
            await hundred_answered.wait()
            daemon.kill()
            await asyncio.gather(*tasks)
        await daemon.start()
        async with SqliteStorage.open(daemon.data_dir / "notifyd.sqlite3") as storage:
            stored = {job.notification.roid for job in await storage.list_jobs(limit=1000)}
        assert len(answered) >= 100
        assert set(answered) <= stored
    finally:
        daemon.stop()
