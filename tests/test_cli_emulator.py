"""``notifyd emulator`` serves the emulator on its own for any client."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.ifc_factory import build_model


async def start_emulator(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyd.cli",
        "emulator",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _call(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> object:
    async with session.post(f"{url}/json", json=body) as response:
        return (await response.json())["response"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dialect", "auth"), [("1.4", "Bimsie1AuthInterface"), ("1.5", "AuthInterface")]
)
async def test_the_emulator_serves_each_file_as_a_project(
    tmp_path: Path, dialect: str, auth: str
) -> None:
    model = build_model(tmp_path / "tower.ifc")
    process = await start_emulator(
        "--dialect", dialect, "--username", "u@test", "--password", "pw", str(model)
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            first = (await process.stdout.readline()).decode()
            project = (await process.stdout.readline()).decode()
        url = re.search(r"http://\S+", first)
        assert url, first
        assert "project" in project
        assert "tower" in project
        async with aiohttp.ClientSession() as session:
            login = await _call(
                session,
                url.group(),
                {
                    "request": {
                        "interface": auth,
                        "method": "login",
                        "parameters": {"username": "u@test", "password": "pw"},
                    }
                },
            )
            token = login["result"]  # type: ignore[index]
            service = "Bimsie1ServiceInterface" if dialect == "1.4" else "ServiceInterface"
            projects = await _call(
                session,
                url.group(),
                {
                    "token": token,
                    "request": {
                        "interface": service,
                        "method": "getAllProjects",
                        "parameters": {"onlyTopLevel": True, "onlyActive": True},
                    },
                },
            )
            assert [p["name"] for p in projects["result"]] == ["tower"]  # type: ignore[index]
    finally:
        process.terminate()
        await process.wait()
    assert process.returncode == 0


@pytest.mark.slow
async def test_a_file_that_is_not_ifc_is_refused_with_its_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    process = await start_emulator(str(text))
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert f"{text} is not an IFC STEP file" in err.decode()
