"""A plugin written as a third party would (tests/plugins/hooks_probe.py) adds a route, is
started and stopped with the app, and hears every job event; its own failure never reaches
a job."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from notifyd.hooks import JobEventKind
from notifyd.records import JobStatus
from tests.ifc_factory import build_model
from tests.plugins import hooks_probe
from tests.stack import running_stack


async def test_a_plugin_gets_its_route_its_lifecycle_and_every_job_event(tmp_path: Path) -> None:
    hooks_probe.SEEN.clear()
    hooks_probe.LIFE.clear()
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path, plugins=["tests.plugins.hooks_probe"]) as stack:
        assert hooks_probe.LIFE == ["startup"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{stack.url}/probe/hello") as response,
        ):
            assert await response.json() == {"hello": "from a plugin"}
        job, _ = await stack.run("ifc-summary", model)
    assert hooks_probe.LIFE == ["startup", "shutdown"]
    # The probe raised on the first event: the job went on regardless.
    assert job.status is JobStatus.SUCCEEDED
    kinds = [e.kind for e in hooks_probe.SEEN if e.job_id == job.id]
    assert kinds == [JobEventKind.RECEIVED, JobEventKind.CLAIMED, JobEventKind.SUCCEEDED]
    claimed, succeeded = hooks_probe.SEEN[-2:]
    assert claimed.origin == "newRevision"
    assert claimed.service == "ifc-summary"
    assert claimed.waited_seconds is not None
    assert claimed.waited_seconds >= 0
    assert succeeded.took_seconds is not None
    assert succeeded.took_seconds > 0
