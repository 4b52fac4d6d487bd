"""Run ``notifyd serve`` as a real subprocess, for crash and durability tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import BIMSERVER, PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        """``preexec`` runs in the child before notifyd starts (resource limits for fault
        tests)."""
        self.data_dir = data_dir
        self.config = config
        self.preexec = preexec
        self.extra_env = {"NOTIFYD_RUN_WORKER": "false", **(env or {})}
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"daemon-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.spawn()
        await self.wait_ready()

    def spawn(self) -> None:
        env = {
            **os.environ,
            "NOTIFYD_ALLOWED_API_URLS": BIMSERVER,
            "NOTIFYD_PROFILES_DIR": str(PROJECT_ROOT / "profiles"),
            "NOTIFYD_LOG_LEVEL": "warning",
            **self.extra_env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "notifyd",
                    "serve",
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                    "--data-dir",
                    str(self.data_dir),
                    *(["--config", str(self.config)] if self.config else []),
                ],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec,
            )

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"notifyd exited: {self.log.read_text()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"notifyd did not start: {self.log.read_text()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, within: float = 30) -> int:
        """SIGTERM, and wait for a clean exit."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(within)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(api_url: str, **extra: str) -> dict[str, str]:
    """A daemon that runs its worker fast against the BIMserver (emulator) at ``api_url``,
    with the test services loaded: for crash and recovery tests."""
    return {
        "NOTIFYD_RUN_WORKER": "true",
        "NOTIFYD_ALLOWED_API_URLS": api_url,
        "NOTIFYD_SERVICE_MODULES": "notifyd.builtin_services,tests.plugins.services",
        "NOTIFYD_POLL_SECONDS": "0.05",
        "NOTIFYD_WORKER_CONCURRENCY": "4",
        "NOTIFYD_ONE_JOB_PER_PROJECT": "false",
        "NOTIFYD_RETRY_BASE_SECONDS": "0.05",
        **extra,
    }
