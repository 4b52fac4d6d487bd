"""Service processes outlive nothing: when the daemon dies under them they end quietly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import PROJECT_ROOT

# A daemon's pool runs the `slow` test service, whose result is sent after the daemon died.
KILLED_MID_SERVICE = textwrap.dedent(
    """
    import asyncio, os, types
    from pathlib import Path
    from notifyd.runner import ServicePool, Ticket
    from notifyd.services import ServiceContext

    async def main():
        pool = ServicePool(1)
        await pool.start()
        context = ServiceContext(
            model_path=None, schema=None, extended_data_path=None, work_dir=Path("."),
            poid=1, roid=2, soid=3, job_id=4, attempt=1, service="test-slow",
            profile="default", settings=types.SimpleNamespace(seconds=1.0),
        )
        ticket = Ticket("tests.plugins.services:slow", context)
        async def progress(percent, message):
            os._exit(0)  # the daemon is killed while its service runs
        await pool.run(ticket, timeout=30, on_progress=progress, cancelled=asyncio.Event())

    asyncio.run(main())
    """
)


def test_a_service_process_ends_quietly_when_the_daemon_is_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_SERVICE],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipeError" not in done.stderr
