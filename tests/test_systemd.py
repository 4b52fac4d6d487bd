"""notifyd under systemd: the notify protocol against a socket of the test's own (READY=1
only once the port accepts, STOPPING=1 on SIGTERM, WATCHDOG=1 when asked), SIGHUP reloads,
and the shipped unit passes ``systemd-analyze verify``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyd.records import Dialect
from notifyd.systemd_notify import SystemdNotifier
from tests.conftest import BIMSERVER, PROJECT_ROOT, require_program
from tests.daemon import Daemon
from tests.factories import make_envelope


class NotifySocket:
    """What systemd listens on: a datagram socket; ``states`` reads what arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)

    def states(self, until: str, within: float = 30.0) -> list[str]:
        """Every state received until one equal to ``until``."""
        seen: list[str] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                seen.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue
            if until in seen:
                return seen
        raise AssertionError(f"no {until} within {within}s; got {seen}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def test_states_reach_a_path_socket_and_nothing_happens_without_one(
    notify_socket: NotifySocket,
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(notify_socket.path)})
    assert notifier.notify("READY=1", "STATUS=up")
    assert notify_socket.states("STATUS=up") == ["READY=1", "STATUS=up"]
    assert not SystemdNotifier({}).notify("READY=1")
    assert not SystemdNotifier({}).enabled


def test_an_abstract_socket_name_is_used_with_a_leading_nul() -> None:
    name = f"notifyd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        assert SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"}).notify("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_a_socket_nobody_listens_on_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notifier.notify("READY=1")
    assert not notifier.notify("READY=1")


def test_the_watchdog_interval_is_for_this_process_only() -> None:
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(mine).watchdog_seconds == 2.0
    assert SystemdNotifier({"WATCHDOG_USEC": "2000000"}).watchdog_seconds == 2.0
    assert SystemdNotifier({**mine, "WATCHDOG_PID": "1"}).watchdog_seconds is None
    assert SystemdNotifier({"WATCHDOG_USEC": "soon"}).watchdog_seconds is None


async def test_ready_comes_when_the_port_accepts_and_stopping_on_sigterm(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    daemon = Daemon(
        tmp_path / "data",
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"},
    )
    daemon.spawn()
    try:
        states = await asyncio.to_thread(notify_socket.states, "READY=1")
        assert "STOPPING=1" not in states
        # Not one poll before READY=1: the first request after it must be answered.
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{daemon.url}/healthz") as response,
        ):
            assert response.status == 200
        assert "WATCHDOG=1" in await asyncio.to_thread(notify_socket.states, "WATCHDOG=1")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(notify_socket.states, "STOPPING=1")
        assert await asyncio.to_thread(daemon.process.wait, 30) == 0
    finally:
        daemon.stop()


async def _profiles(url: str) -> list[str]:
    body = make_envelope(
        "getPublicProfiles", Dialect.BIMSERVER_15, {"serviceIdentifier": "ifc-summary"}
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/json", json=body) as response,
    ):
        answer = await response.json()
    return sorted(p["identifier"] for p in answer["response"]["result"])


def _events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    lines = daemon.log.read_text().splitlines()
    return [
        e
        for e in (json.loads(line) for line in lines if line.startswith("{"))
        if e.get("event") == name
    ]


async def test_sighup_reloads_profiles_and_names_what_needs_a_restart(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROJECT_ROOT / "profiles", profiles)
    config = tmp_path / "notifyd.toml"
    config.write_text(f'allowed_api_urls = ["{BIMSERVER}"]\n')
    env = {
        "NOTIFY_SOCKET": str(notify_socket.path),
        "NOTIFYD_LOG_LEVEL": "info",
        "NOTIFYD_PROFILES_DIR": str(profiles),
    }
    daemon = Daemon(tmp_path / "data", env=env, config=config)
    daemon.spawn()
    try:
        await asyncio.to_thread(notify_socket.states, "READY=1")
        assert await _profiles(daemon.url) == ["counts-only", "default"]
        assert daemon.process is not None

        (profiles / "ifc-summary" / "storeys.toml").write_text(
            'identifier = "storeys"\nname = "By storey"\n\n[settings]\ngroup_by_storey = true\n'
        )
        config.write_text(config.read_text() + "worker_concurrency = 7\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert "RELOADING=1" in await asyncio.to_thread(notify_socket.states, "READY=1")
        assert await _profiles(daemon.url) == ["counts-only", "default", "storeys"]
        [reloaded] = _events(daemon, "reloaded")
        assert reloaded["needs_restart"] == ["worker_concurrency"]
        assert "ifc-summary" in reloaded["services"]

        # A broken profile: the reload is refused with the file's name, nothing changes.
        (profiles / "ifc-summary" / "broken.toml").write_text("identifier = \n")
        daemon.process.send_signal(signal.SIGHUP)
        await asyncio.to_thread(notify_socket.states, "READY=1")
        [failed] = _events(daemon, "reload_failed")
        assert "broken.toml" in failed["reason"]
        assert await _profiles(daemon.url) == ["counts-only", "default", "storeys"]
    finally:
        daemon.stop()


def test_the_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze", "systemd")
    unit = tmp_path / "notifyd.service"
    text = (PROJECT_ROOT / "systemd" / "notifyd.service").read_text()
    # verify checks that ExecStart's program exists: point it at this checkout's.
    executable = shutil.which("notifyd") or str(Path(os.sys.executable).parent / "notifyd")
    unit.write_text(text.replace("/opt/notifyd/venv/bin/notifyd", executable))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_unit_is_a_hardened_notify_service() -> None:
    lines = (PROJECT_ROOT / "systemd" / "notifyd.service").read_text().splitlines()
    unit = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "StateDirectory": "notifyd",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {key: unit.get(key) for key in expected} == expected
    assert unit["User"] == "notifyd"
    assert float(unit["TimeoutStopSec"]) > 30  # above the default drain_seconds
