"""`notifyd serve` refuses to start with one line naming the fault and the fix, never a
traceback; and what it creates holding tokens is private to its user."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import PROJECT_ROOT
from tests.factories import make_notification


def serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifyd", "serve", "--port", "0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "NOTIFYD_PROFILES_DIR": str(PROJECT_ROOT / "profiles"),
            "NOTIFYD_ALLOWED_API_URLS": "http://bimserver.test:8080",
            **(env or {}),
        },
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_a_damaged_database_is_refused_at_start(tmp_path: Path) -> None:
    database = tmp_path / "data" / "notifyd.sqlite3"

    async def fill() -> None:
        async with SqliteStorage.open(database) as storage:
            for poid in range(300):
                await storage.enqueue(make_notification(poid=poid), max_attempts=3)

    asyncio.run(fill())
    with database.open("r+b") as handle:
        handle.seek(3 * 4096)
        handle.write(os.urandom(4 * 4096))
    line = one_line_error(serve(tmp_path, "--data-dir", str(tmp_path / "data")))
    assert f"the job database {database} is damaged" in line
    assert "restore it from a backup" in line


def test_a_file_that_is_no_database_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notifyd.sqlite3").write_bytes(b"x" * 10_000)
    line = one_line_error(serve(tmp_path, "--data-dir", str(tmp_path / "data")))
    assert "is damaged (file is not a database)" in line


def test_a_database_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    line = one_line_error(serve(tmp_path, "--data-dir", str(tmp_path / "blocked" / "data")))
    assert "cannot create the job database" in line


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, "--data-dir", str(tmp_path / "data"), "--port", str(port))
    line = one_line_error(done)
    assert f"port {port} on 127.0.0.1 is in use by another process" in line


def test_a_service_module_with_a_syntax_error_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken_service.py").write_text("def register_services(:\n    pass\n")
    done = serve(
        tmp_path,
        "--data-dir",
        str(tmp_path / "data"),
        env={"NOTIFYD_SERVICE_MODULES": "broken_service", "PYTHONPATH": str(tmp_path)},
    )
    line = one_line_error(done)
    assert "service module 'broken_service' has a syntax error" in line
    assert "broken_service.py:1" in line


def test_a_profiles_dir_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "notifyd", "check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NOTIFYD_PROFILES_DIR": str(tmp_path / "nope")},
    )
    line = one_line_error(done)
    assert f"profiles_dir {tmp_path / 'nope'} is not a folder" in line


def test_without_a_profiles_dir_the_shipped_profiles_are_used(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFYD_PROFILES_DIR"}
    done = subprocess.run(
        [sys.executable, "-m", "notifyd", "check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "config OK" in done.stdout
    assert " 0 profiles" not in done.stdout


async def test_the_data_folder_and_database_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    database = tmp_path / "var" / "lib" / "notifyd.sqlite3"
    old = os.umask(0o000)
    try:
        async with SqliteStorage.open(database) as storage:
            await storage.enqueue(make_notification(), max_attempts=3)
    finally:
        os.umask(old)
    for folder in (tmp_path / "var", tmp_path / "var" / "lib"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in database.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_systemd_unit_sets_a_private_umask() -> None:
    unit = (PROJECT_ROOT / "systemd" / "notifyd.service").read_text()
    assert "\nUMask=0077\n" in unit


@pytest.mark.slow
def test_serve_warns_at_start_when_it_will_refuse_every_notification(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "serve", "--port", "0", "--data-dir", "data"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "NOTIFYD_PROFILES_DIR": str(PROJECT_ROOT / "profiles"),
            "NOTIFYD_ALLOWED_API_URLS": "",
        },
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "allowed_api_urls_empty" in line:
                assert "every notification will be refused" in line
                break
        else:
            raise AssertionError("no warning")
    finally:
        process.terminate()
        process.wait(timeout=30)
