"""BIMserver's official JavaScript client (``bimserverapi`` 0.0.167 from the npm registry,
installed from ``tests/js/package-lock.json``) completes its flows against the emulator:
init, login with the /stream handshake, projects, a revision, a check-in through /upload, a
download that waits for "Done preparing", extended data, and batches."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from notifyd.emulator import BimServerEmulator
from tests.conftest import PROJECT_ROOT
from tests.ifc_factory import build_model

JS = PROJECT_ROOT / "tests" / "js"


def node_or_skip() -> str:
    node = shutil.which("node")
    installed = (JS / "node_modules" / "bimserverapi" / "bimserverclient.js").exists()
    if node and installed:
        return node
    reason = "bimserverapi is not installed: run `npm ci --prefix tests/js` (make test does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def test_bimserverapi_completes_its_flows(tmp_path: Path) -> None:
    node = node_or_skip()
    model = build_model(tmp_path / "model.ifc")
    async with BimServerEmulator(data_dir=tmp_path, prepare_seconds=0.3) as emulator:
        emulator.add_revision(emulator.add_project("Tower"), model, "first")
        process = await asyncio.create_subprocess_exec(
            node,
            "--experimental-detect-module",
            "--no-warnings",
            str(JS / "flows.mjs"),
            emulator.url,
            emulator.username,
            emulator.password,
            str(model),
            cwd=JS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["serverState"] == "RUNNING"
    assert seen["user"] == emulator.username
    assert isinstance(seen["endPointId"], int)  # login completed only after /stream answered
    assert seen["projects"] == ["Tower"]
    assert seen["revisionComment"] == "first"
    assert seen["checkedInComment"] == "checked in by bimserverapi"
    assert seen["revisionsAfterCheckin"] == 2
    assert seen["downloadTitles"][0] == "Starting download"
    assert seen["downloadTitles"][-1] == "Done preparing"
    assert seen["downloadStartsWith"] == "ISO-10303-21;"
    assert seen["downloadDisposition"].startswith('inline; filename="')
    assert seen["downloadStateAfterFetch"] == "FINISHED"
    assert seen["extendedData"] == [["A report", True]]
    assert seen["batch"] == ["SProject", "SRevision"]
    assert seen["batchErrors"] == ["Revision does not exist"]
