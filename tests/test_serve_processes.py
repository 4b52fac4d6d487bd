"""``serve`` with several processes (setting ``processes``): every process answers on the one
port, the primary commits every notification and runs every job, a receiver that dies is
started again without losing what was acknowledged, the metrics and the health checks speak
for all of them, and they stop together."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from notifyd.emulator import BimServerEmulator
from tests.daemon import Daemon, worker_env
from tests.factories import make_envelope
from tests.ifc_factory import build_model

pytestmark = pytest.mark.slow


def _receivers(daemon: Daemon) -> list[int]:
    """The receiver processes the daemon started (its children running ``--receiver-fd``)."""
    assert daemon.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_text(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == daemon.process.pid and "--receiver-fd" in command and _alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


async def _until(condition: Callable[[], bool], within: float = 20) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def _wait_for_receivers(daemon: Daemon, count: int) -> list[int]:
    await _until(lambda: len(_receivers(daemon)) >= count)
    # A receiver is answering once the port's every socket is served: give it a moment.
    await asyncio.sleep(1.5)
    return _receivers(daemon)


async def _notify(url: str, **overrides: object) -> tuple[int, dict[str, object], str]:
    """One notification on a connection of its own (the kernel picks the process)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/json", json=make_envelope(**overrides)) as response,
    ):
        return response.status, await response.json(), response.headers["X-Request-Id"]


def _stored_roids(database: Path) -> set[int]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT roid FROM jobs")}


async def test_every_process_answers_and_the_primary_runs_every_job(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with BimServerEmulator(data_dir=tmp_path) as emulator:
        daemon = Daemon(
            tmp_path / "data",
            env={**worker_env(emulator.url), "NOTIFYD_PROCESSES": "3", "NOTIFYD_LOG_LEVEL": "info"},
        )
        await daemon.start()
        try:
            await _wait_for_receivers(daemon, 2)
            service = await emulator.add_service(daemon.url, "test-brief")
            poid = emulator.add_project()
            roids = [emulator.add_revision(poid, model) for _ in range(30)]
            await asyncio.gather(*(emulator.notify_new_revision(service, r) for r in roids))
            prefixes = {
                (await _notify(daemon.url, apiUrl=emulator.url, roid=9_000 + n))[2].split("-")[0]
                for n in range(40)
            }
            assert len(prefixes) >= 2, "every connection went to one process"
            await _until(lambda: all(emulator.extended_data_of(r) for r in roids), 60)
            for roid in roids:
                assert len(emulator.extended_data_of(roid)) == 1, f"revision {roid}"
            async with aiohttp.ClientSession() as session:
                for _ in range(6):  # whichever process answers, it reports the primary's worker
                    async with session.get(
                        f"{daemon.url}/readyz", headers={"Connection": "close"}
                    ) as ready:
                        assert ready.status == 200, await ready.text()
        finally:
            assert daemon.terminate() == 0
        assert _receivers(daemon) == []


async def test_a_killed_receiver_is_started_again_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path / "data", env={"NOTIFYD_PROCESSES": "2"})
    await daemon.start()
    acknowledged: set[int] = set()
    refused = 0
    try:
        (victim,) = await _wait_for_receivers(daemon, 1)

        async def stream() -> None:
            nonlocal refused
            for roid in range(1, 301):
                try:
                    status, body, _ = await _notify(daemon.url, roid=roid)
                except aiohttp.ClientError:
                    refused += 1
                    continue
                if status == 200 and "exception" not in body["response"]:  # type: ignore[operator]
                    acknowledged.add(roid)
                else:
                    refused += 1

        sending = asyncio.ensure_future(stream())
        await asyncio.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        await sending
        await _until(lambda: _receivers(daemon) not in ([], [victim]))
        assert victim not in _receivers(daemon)
        await asyncio.sleep(1.5)
        status, body, _ = await _notify(daemon.url, roid=1_000)
        assert status == 200
        assert "result" in body["response"]  # type: ignore[operator]
    finally:
        assert daemon.terminate() == 0
    stored = _stored_roids(daemon.data_dir / "notifyd.sqlite3")
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)}"
    assert len(acknowledged) >= 150, f"only {len(acknowledged)} acknowledged, {refused} not"
    assert "receiver_exited" in daemon.log.read_text()


async def test_metrics_count_what_every_process_answered(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", env={"NOTIFYD_PROCESSES": "2"})
    await daemon.start()
    try:
        await _wait_for_receivers(daemon, 1)
        prefixes = set()
        for roid in range(1, 41):
            status, _, request_id = await _notify(daemon.url, roid=roid)
            assert status == 200
            prefixes.add(request_id.split("-")[0])
        assert len(prefixes) == 2, "every connection went to one process"
        await asyncio.sleep(1.5)  # each process publishes its tallies once a second
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                async with session.get(
                    f"{daemon.url}/metrics", headers={"Connection": "close"}
                ) as response:
                    text = await response.text()
                match = re.search(
                    r'^notifyd_json_calls_total\{method="newRevision",outcome="queued"\} (\S+)$',
                    text,
                    re.M,
                )
                assert match, text[:2000]
                assert float(match.group(1)) == 40
    finally:
        assert daemon.terminate() == 0


async def test_sighup_reaches_every_process(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", env={"NOTIFYD_PROCESSES": "2", "NOTIFYD_LOG_LEVEL": "info"})
    await daemon.start()
    try:
        await _wait_for_receivers(daemon, 1)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        await _until(lambda: daemon.log.read_text().count('"event":"reloaded"') >= 2)
    finally:
        assert daemon.terminate() == 0


async def test_receivers_stop_when_the_primary_is_killed(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", env={"NOTIFYD_PROCESSES": "3"})
    await daemon.start()
    pids = await _wait_for_receivers(daemon, 2)
    daemon.kill()
    await _until(lambda: not any(_alive(pid) for pid in pids))


def _alive(pid: int) -> bool:
    """Not yet exited (a zombie has exited: init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_a_receiver_that_cannot_start_has_its_socket_served_by_the_primary(
    tmp_path: Path,
) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text("max_attempts = 3\n")
    daemon = Daemon(tmp_path / "data", config=config, env={"NOTIFYD_PROCESSES": "2"})
    await daemon.start()
    try:
        (receiver,) = await _wait_for_receivers(daemon, 1)
        config.write_text("max_attempts = 0\n")  # read again only by receivers starting now
        os.kill(receiver, signal.SIGKILL)
        await _until(lambda: "receiver_failing" in daemon.log.read_text(), 60)
        assert _receivers(daemon) == []
        for roid in range(1, 41):  # half of them reach the receiver's socket
            status, body, _ = await _notify(daemon.url, roid=roid)
            assert status == 200
            assert "result" in body["response"]  # type: ignore[operator]
    finally:
        assert daemon.terminate() == 0
