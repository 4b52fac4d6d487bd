from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from notifyd.config import Settings
from notifyd.plugins import load_registry
from notifyd.services import Registry
from notifyd.storage.sqlite import SqliteStorage
from notifyd.web.app import create_app
from notifyd.web.body import SERVER_OPTIONS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIMSERVER = "http://bimserver.test:8080"


def require_program(name: str, package: str) -> str:
    """The path of a system program a test drives (nginx, systemd-analyze). Missing, the
    test skips on a developer's machine and fails under .ci/run (NOTIFYD_CI=1), which
    installs it: a CI run must never pass by skipping what it was meant to prove."""
    path = shutil.which(name) or next(
        (str(p / name) for p in (Path("/usr/sbin"), Path("/sbin")) if (p / name).exists()),
        None,
    )
    if path is None:
        message = f"{name} is not installed (Debian package {package}; .ci/run installs it)"
        if os.environ.get("NOTIFYD_CI") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "profiles_dir": PROJECT_ROOT / "profiles",
            "allowed_api_urls": [BIMSERVER, "http://localhost:8080"],
            "log_format": "console",
            "run_worker": False,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return load_registry(settings)


@pytest.fixture
def make_client(aiohttp_client: Any, registry: Registry) -> Callable[..., Any]:
    async def make(settings: Settings) -> Any:
        # TestServer ignores the server_kwargs aiohttp_client hands it: start it ourselves.
        server = TestServer(create_app(settings, registry))
        await server.start_server(**SERVER_OPTIONS)
        return await aiohttp_client(server)

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any], settings: Settings) -> Any:
    return await make_client(settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def storage(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStorage]:
    async with SqliteStorage.open(tmp_path / "jobs.sqlite3", clock=clock) as opened:
        yield opened


@pytest.fixture
def ifc_samples() -> Path:
    """The shared real IFC files; tests that need them skip where they are absent."""
    path = Path(os.environ.get("NOTIFYD_IFC_SAMPLES", PROJECT_ROOT.parent / "shared/ifc-samples"))
    if not (path / "README.md").is_file():
        pytest.skip(f"IFC samples not found at {path} (set NOTIFYD_IFC_SAMPLES)")
    return path


_FIGURES: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line of figures (counts, rates) for the run's summary: the attack-and-fault
    suite prints what it proved, not only that it passed."""

    def record(line: str) -> None:
        _FIGURES.append(f"{request.node.name}: {line}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("attack and fault figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
