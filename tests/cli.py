"""The ``notifyd`` command as an administrator runs it against a data folder, for tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from notifyd.cli import main


def run_cli(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    """The command's result (exit code and output), on ``data_dir``'s database."""
    return CliRunner().invoke(
        main, list(args), input=stdin, env={"NOTIFYD_DATA_DIR": str(data_dir)}
    )


async def admin_command(data_dir: Path, *args: str) -> str:
    """A command that must succeed, run beside a daemon in the test's loop (in a thread: the
    command runs a loop of its own); its output."""

    def run() -> str:
        result = run_cli(data_dir, *args)
        assert result.exit_code == 0, result.output
        return str(result.output)

    return await asyncio.to_thread(run)
