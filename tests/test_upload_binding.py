"""Uploaded models and their results are kept on disk for ``bots_retention_seconds``, then
swept; what is younger stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from notifyd.worker.upload_binding import RESULTS, UPLOADS, UploadBindings


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


async def test_the_sweep_removes_uploads_and_results_past_retention(tmp_path: Path) -> None:
    uploads = tmp_path / UPLOADS
    results = tmp_path / RESULTS
    uploads.mkdir()
    (results / "job-1").mkdir(parents=True)
    (results / "job-1" / "summary.json").write_text("{}")
    (results / "job-2").mkdir()
    old_model = uploads / "old.ifc"
    old_model.write_text("x")
    _aged(old_model, 7200)
    new_model = uploads / "new.ifc"
    new_model.write_text("x")
    _aged(results / "job-1", 7200)

    removed = await UploadBindings(data_dir=tmp_path, retention_seconds=3600).sweep()

    assert removed == 2
    assert not old_model.exists()
    assert not (results / "job-1").exists()
    assert new_model.exists()
    assert (results / "job-2").is_dir()


async def test_the_sweep_without_folders_removes_nothing(tmp_path: Path) -> None:
    assert await UploadBindings(data_dir=tmp_path, retention_seconds=0).sweep() == 0
