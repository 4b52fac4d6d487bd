"""The disk fills up and another process locks the database, under a running `notifyd serve`:
notifyd answers what it could not store with HTTP 503 and BIMserver's UserException (never a
false acknowledgement), says so on /healthz, and stores again once the fault ends; every
notification it acknowledged is in the database afterwards."""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon import Daemon
from tests.factories import make_envelope

pytestmark = [pytest.mark.attack, pytest.mark.slow]

LIMIT = 1_500_000  # bytes: any file notifyd writes may grow to this, then writes fail (EFBIG)


def _cap_file_size() -> None:
    """In the child: the soft limit low, the hard one open, so that the test can lift it."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


async def _send(session: aiohttp.ClientSession, url: str, roid: int) -> tuple[int, Any]:
    body = make_envelope(roid=roid, token="t" * 2000)  # ~2 kB a row: the cap is reached soon
    async with session.post(f"{url}/json", data=json.dumps(body)) as response:
        return response.status, await response.json()


def _stored_roids(daemon: Daemon) -> set[int]:
    with sqlite3.connect(daemon.data_dir / "notifyd.sqlite3") as conn:
        return {roid for (roid,) in conn.execute("SELECT roid FROM jobs")}


async def test_a_full_disk_is_refused_not_acknowledged_and_then_recovered(
    tmp_path: Path, figures: Callable[[str], None]
) -> None:
    daemon = Daemon(tmp_path / "data", env={"NOTIFYD_LOG_LEVEL": "error"}, preexec=_cap_file_size)
    await daemon.start()
    acknowledged: set[int] = set()
    refused = 0
    health: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            roid = 1
            while refused < 20 and roid < 5000:
                status, answer = await _send(session, daemon.url, roid)
                if "result" in answer["response"]:
                    assert status == 200
                    acknowledged.add(roid)
                else:
                    assert status == 503, answer
                    assert answer["response"]["exception"]["__type"] == "UserException"
                    refused += 1
                roid += 1
            assert refused == 20, "the file size cap was never reached"
            async with session.get(f"{daemon.url}/healthz") as response:
                health = {**(await response.json()), "http_status": response.status}
            # The fault ends: the disk has room again.
            assert daemon.process is not None
            resource.prlimit(
                daemon.process.pid,
                resource.RLIMIT_FSIZE,
                (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
            )
            after = 0
            for extra in range(roid, roid + 50):
                status, answer = await _send(session, daemon.url, extra)
                if status == 200 and "result" in answer["response"]:
                    acknowledged.add(extra)
                    after += 1
            assert after == 50, "notifyd did not store again once the disk had room"
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    stored = _stored_roids(daemon)
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)[:10]}"
    assert health["http_status"] == 503, health
    figures(
        f"file size capped at {LIMIT:,} bytes: {len(acknowledged) - 50} acknowledged before the "
        f"cap, then {refused} refused with 503 + UserException (/healthz {health['http_status']}: "
        f"{'; '.join(health.get('problems', []))[:120]}); cap lifted: 50 of 50 acknowledged; "
        f"{len(acknowledged)} acknowledged, {len(acknowledged & stored)} stored, 0 lost"
    )


async def test_a_database_locked_by_another_process_is_refused_then_recovered(
    tmp_path: Path, figures: Callable[[str], None]
) -> None:
    daemon = Daemon(
        tmp_path / "data",
        env={"NOTIFYD_SQLITE_BUSY_TIMEOUT_MS": "300", "NOTIFYD_LOG_LEVEL": "error"},
    )
    await daemon.start()
    acknowledged: set[int] = set()
    refused = 0
    try:
        async with aiohttp.ClientSession() as session:
            status, _ = await _send(session, daemon.url, 1)
            assert status == 200
            acknowledged.add(1)
            locker = sqlite3.connect(daemon.data_dir / "notifyd.sqlite3", isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                for roid in range(2, 12):
                    status, answer = await _send(session, daemon.url, roid)
                    if status == 200:
                        acknowledged.add(roid)
                    else:
                        assert status == 503
                        assert "exception" in answer["response"]
                        refused += 1
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            await asyncio.sleep(0.1)
            for roid in range(12, 22):
                status, _ = await _send(session, daemon.url, roid)
                assert status == 200
                acknowledged.add(roid)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    stored = _stored_roids(daemon)
    assert refused == 10
    assert acknowledged <= stored
    figures(
        f"database held by another process's exclusive lock: {refused} of 10 refused with 503 "
        f"after the 300 ms busy timeout; lock released: 10 of 10 acknowledged; "
        f"{len(acknowledged)} acknowledged, all stored"
    )
