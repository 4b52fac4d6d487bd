"""The README's plugin example, copied out of the README, runs end to end through
`notifyd dev`: emulator, notification, download, the service, extended data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.ifc_factory import build_model

pytestmark = pytest.mark.slow


def readme_example() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    [example] = [b for b in blocks if b.startswith("# wall_counter.py")]
    return example


def run_dev(folder: Path, model: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`notifyd dev` on the README's example, run from the folder that holds it."""
    (folder / "wall_counter.py").write_text(readme_example())
    command = ["dev", str(model), "--service", "wall-counter", "--module", "wall_counter"]
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *command, *options],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("dialect", ["1.4", "1.5"])
def test_the_readme_example_runs_through_notifyd_dev(tmp_path: Path, dialect: str) -> None:
    model = build_model(tmp_path / "model.ifc", walls=3)
    out = tmp_path / "result.json"
    done = run_dev(tmp_path, model, "--dialect", dialect, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FINISHED" in done.stdout
    assert json.loads(out.read_text())["walls"] == 3


def test_dev_reports_a_failing_service(tmp_path: Path) -> None:
    done = run_dev(tmp_path, build_model(tmp_path / "model.ifc", walls=0))
    assert done.returncode == 1
    assert "dead: the model has no walls" in done.stdout


def test_dev_watch_runs_again_when_the_code_changes(tmp_path: Path) -> None:
    (tmp_path / "wall_counter.py").write_text(readme_example())
    model = build_model(tmp_path / "model.ifc", walls=2)
    command = ["dev", str(model), "--service", "wall-counter", "--module", "wall_counter"]
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyd", *command, "--watch"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []

        def read_until(marker: str) -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                seen.append(line)
                if marker in line:
                    return
            raise AssertionError("".join(seen))

        read_until("watching")
        assert any("2 walls" in line for line in seen)
        source = (tmp_path / "wall_counter.py").read_text()
        (tmp_path / "wall_counter.py").write_text(
            source.replace('title=f"{len(walls)} walls"', 'title=f"{len(walls)} walls, again"')
        )
        read_until("watching")
        assert any("2 walls, again" in line for line in seen), "".join(seen)
        edited = (tmp_path / "wall_counter.py").read_text()
        (tmp_path / "wall_counter.py").write_text(edited + "\ndef broken(:\n")
        read_until("watching")
        assert any("syntax error at" in line and "wall_counter.py" in line for line in seen)
        (tmp_path / "wall_counter.py").write_text(edited.replace("again", "fixed"))
        read_until("watching")
        assert any("2 walls, fixed" in line for line in seen), "".join(seen)
        assert not any("Traceback" in line for line in seen), "".join(seen)
    finally:
        process.kill()
        process.wait()


def test_dev_checks_a_revision_writing_service_in_to_its_project(tmp_path: Path) -> None:
    """The emulated project is the service's write project, as a user would choose it."""
    model = build_model(tmp_path / "model.ifc", walls=2)
    done = subprocess.run(
        [sys.executable, "-m", "notifyd", "dev", str(model), "--service", "ifc-property-stamp"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"new revision \d+ checked in .*\(notifyd job 1\)", done.stdout), done.stdout
