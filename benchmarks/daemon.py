"""Start notifyd as a subprocess for a benchmark, against an emulator in this process."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def die_with_parent() -> None:
    """``preexec_fn`` of every server a benchmark starts: the kernel sends it SIGTERM when the
    benchmark dies (PR_SET_PDEATHSIG), even by SIGKILL, so no daemon is left working through
    its backlog and skewing the next run."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_notifyd(
    data_dir: Path, api_url: str, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "NOTIFYD_ALLOWED_API_URLS": api_url,
        "NOTIFYD_PROFILES_DIR": str(ROOT / "profiles"),
        "NOTIFYD_SERVICE_MODULES": "notifyd.builtin_services,benchmarks.noop_service",
        "NOTIFYD_LOG_FORMAT": "json",
        **{f"NOTIFYD_{k.upper()}": v for k, v in settings.items()},
    }
    log = (data_dir / "notifyd.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifyd",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)  # noqa: S310
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("notifyd did not start")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_workers(data_dir: Path, count: int, **settings: str) -> list[subprocess.Popen[bytes]]:
    """Separate `notifyd worker` processes on the daemon's database."""
    env = {
        **os.environ,
        "NOTIFYD_PROFILES_DIR": str(ROOT / "profiles"),
        "NOTIFYD_SERVICE_MODULES": "notifyd.builtin_services,benchmarks.noop_service",
        "NOTIFYD_LOG_FORMAT": "json",
        "NOTIFYD_DATA_DIR": str(data_dir),
        **{f"NOTIFYD_{k.upper()}": v for k, v in settings.items()},
    }
    processes = []
    for number in range(count):
        log = (data_dir / f"worker-{number}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "notifyd", "worker"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
            )
        )
    return processes


async def wait_for_jobs_ended(url: str, count: int) -> dict[str, int]:
    """Poll the daemon's /healthz until ``count`` jobs have ended (succeeded or dead); the
    job counts it last reported."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/healthz") as response:
                jobs: dict[str, int] = (await response.json())["jobs"]
            if jobs["succeeded"] + jobs["dead"] >= count:
                return jobs
            await asyncio.sleep(0.05)
