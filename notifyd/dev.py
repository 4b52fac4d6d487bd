"""``notifyd dev``: a plugin author's loop without a Java server.

Starts the BIMserver emulator and notifyd (receiver and worker) in one process, adds the
service to an emulated project the way BIMserver's UI does, checks the IFC file in, sends the
notification, shows the progress the service reports, and prints or saves what it wrote back.
With ``--watch`` it runs again whenever the service's code or the IFC file changes.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from notifyd.config import Settings
from notifyd.emulator import BimServerEmulator
from notifyd.errors import NotifydError
from notifyd.plugins import describe_syntax_error, load_registry
from notifyd.records import Dialect, Job, JobStatus
from notifyd.storage.base import Storage
from notifyd.web.app import create_app
from notifyd.web.body import SERVER_OPTIONS
from notifyd.web.keys import STORAGE

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRun:
    ifc_path: Path
    service: str
    profile: str
    dialect: Dialect
    out: Path | None
    watch: bool
    timeout: float


async def run_dev(run: DevRun, settings: Settings, echo: Echo) -> int:
    """Returns the exit status of the last run: 0 when the job succeeded."""
    async with BimServerEmulator(run.dialect) as emulator:
        if not run.watch:
            return await _one_run(run, settings, emulator, echo)
        # While watching, a mistake in the code being edited is reported in a line and waited
        # out: the next save runs again.
        watched = _watched_files(settings, run.ifc_path)
        loaded = True
        while True:
            stamps = _stamps(watched)
            if loaded:
                try:
                    await _one_run(run, settings, emulator, echo)
                except (NotifydError, SyntaxError, ImportError) as exc:
                    echo(f"error: {_describe(exc)}; fix it and save to run again")
            echo(f"watching {len(watched)} files for changes (Ctrl-C to stop)")
            await _wait_for_change(watched, stamps)
            echo("change detected: reloading the service code")
            try:
                _reload_service_modules(settings)
                loaded = True
            except Exception as exc:
                loaded = False
                echo(f"error: {_describe(exc)}; fix it and save to run again")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"syntax error at {describe_syntax_error(exc)}"
    if isinstance(exc, NotifydError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


async def _one_run(run: DevRun, settings: Settings, emulator: BimServerEmulator, echo: Echo) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="notifyd-dev-"))
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "database": None,
            "allowed_api_urls": [emulator.url],
            "host": "127.0.0.1",
            "port": 0,
            "poll_seconds": 0.2,
            "run_worker": True,
            "public_url": None,
            "secret_path": None,
            "allowed_ips": [],
        }
    )
    registry = load_registry(settings)
    app = create_app(settings, registry)
    runner = web.AppRunner(app, access_log=None, **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        poid = emulator.add_project(f"dev {run.ifc_path.name}")
        # Added to the project with the project itself to write revisions to, as a user would.
        service = await emulator.add_service(
            f"http://127.0.0.1:{port}", run.service, run.profile, poid=poid, write_poid=poid
        )
        roid = emulator.add_revision(poid, run.ifc_path)
        echo(
            f"notifyd on port {port}, emulated BIMserver {run.dialect} at {emulator.url}: "
            f"{run.ifc_path.name} is revision {roid}; sending newRevision to {run.service}"
        )
        await emulator.notify_new_revision(service, roid)
        job = await _follow(app[STORAGE], emulator, roid, run.timeout, echo)
        return _report(job, emulator, roid, poid, run.out, echo)
    finally:
        await runner.cleanup()


async def _follow(
    storage: Storage, emulator: BimServerEmulator, roid: int, timeout: float, echo: Echo
) -> Job:
    seen = 0
    async with asyncio.timeout(timeout):
        while True:
            for topic in emulator.topics.values():
                if topic.roid != roid:
                    continue
                for state in topic.states[seen:]:
                    percent = state.get("progress", -1)
                    shown = (
                        f"{percent:>3}%" if isinstance(percent, int) and percent >= 0 else "   ·"
                    )
                    echo(f"[{shown}] {state.get('state')}: {state.get('title')}")
                seen = len(topic.states)
            jobs = await storage.list_jobs(limit=1)
            if jobs and jobs[0].status.is_final:
                return jobs[0]
            await asyncio.sleep(0.1)


def _report(
    job: Job, emulator: BimServerEmulator, roid: int, poid: int, out: Path | None, echo: Echo
) -> int:
    if job.status is not JobStatus.SUCCEEDED:
        echo(f"job {job.id} {job.status}: {job.last_error}")
        return 1
    written = emulator.extended_data_of(roid)
    for entry in written:
        data: bytes = entry["data"]
        echo(f"extended data '{entry['title']}' ({entry['schema']}, {len(data)} bytes)")
        if out is not None:
            out.write_bytes(data)
            echo(f"saved to {out}")
        else:
            try:
                echo(json.dumps(json.loads(data), indent=2)[:20000])
            except ValueError:
                echo(data[:2000].decode("utf-8", "replace"))
    for checkin in emulator.checkins:
        if checkin["poid"] != poid:
            continue
        revision = emulator.revisions[checkin["roid"]]
        echo(
            f"new revision {checkin['roid']} checked in ({checkin['bytes']} bytes): "
            f"{checkin['comment']}"
        )
        if out is not None:
            out.write_bytes(revision.path.read_bytes())
            echo(f"saved to {out}")
    return 0


def _watched_files(settings: Settings, ifc_path: Path) -> list[Path]:
    files = [ifc_path]
    for name in settings.service_modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        if module.__file__:
            files.append(Path(module.__file__))
    return files


async def _wait_for_change(files: list[Path], stamps: list[float]) -> None:
    """Poll modification times: portable, and cheap for a handful of files."""
    changed = asyncio.Event()
    while not changed.is_set():
        await asyncio.sleep(0.5)
        if _stamps(files) != stamps:
            changed.set()


def _stamps(files: list[Path]) -> list[float]:
    return [f.stat().st_mtime if f.exists() else 0.0 for f in files]


def _reload_service_modules(settings: Settings) -> None:
    for name in settings.service_modules:
        if name in sys.modules and not name.startswith("notifyd."):
            importlib.reload(sys.modules[name])
