"""A BIMserver that goes away for a while (restart, upgrade) costs its jobs nothing: they wait,
probe it now and then, and complete when it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from notifyd.records import AttemptOutcome, JobStatus
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs

pytestmark = pytest.mark.attack  # the attack-and-fault suite: -m attack

# With FAST_WORKER's retry settings (0.05 s base, 0.2 s cap, 5 attempts), a job used to be
# dead within about a second of BIMserver going away; this outage lasts six times as long.
OUTAGE_SECONDS = 6.0


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_model(tmp_path / "model.ifc")


async def _notify_projects(stack: object, model: Path, count: int) -> list[int]:
    roids = []
    for _ in range(count):
        roids.append(await stack.notify("test-noop", model))  # type: ignore[attr-defined]
    return roids


async def test_jobs_wait_out_a_bimserver_outage_and_complete(tmp_path: Path, model: Path) -> None:
    async with running_stack(tmp_path, outage_probe_cap_seconds=0.5) as stack:
        await stack.emulator.go_down()
        roids = await _notify_projects(stack, model, 4)
        await asyncio.sleep(OUTAGE_SECONDS)
        jobs = await wait_for_jobs(stack.storage, 4, final=False)
        assert all(not j.status.is_final for j in jobs), [j.last_error for j in jobs]
        [outage] = await stack.storage.outages()
        assert outage.api_url == stack.emulator.url
        assert outage.failures >= 3
        probes = sum(j.attempts for j in jobs)
        # Paused, not hammering: one wave of probes per pause, each at most the concurrency.
        assert probes <= 2 * 2 * (OUTAGE_SECONDS / 0.5 + 4), probes
        await stack.emulator.come_back()
        done = await wait_for_jobs(stack.storage, 4, timeout=30)
        assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 4, [j.last_error for j in done]
        for roid in roids:
            assert len(stack.emulator.extended_data_of(roid)) == 1
        history = await stack.storage.attempts(done[0].id)
        assert history[-1].outcome is AttemptOutcome.SUCCEEDED
        assert all(a.outcome is AttemptOutcome.FAILED for a in history[:-1])
        assert "ClientConnectorError" in (history[0].error or "")
        assert await stack.storage.outages() == []


async def test_past_the_patience_attempts_are_spent_and_the_tokens_kept(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(
        tmp_path, max_attempts=2, outage_patience_seconds=0.2, outage_probe_cap_seconds=0.2
    ) as stack:
        await stack.emulator.go_down()
        await _notify_projects(stack, model, 1)
        [job] = await wait_for_jobs(stack.storage, 1, timeout=30)
        assert job.status is JobStatus.DEAD
        assert job.notification.token is not None  # `notifyd jobs retry` can run it again
        await stack.emulator.come_back()
        await stack.storage.retry_dead(attempts=1)
        stack.worker.wake()
        [job] = await wait_for_jobs(stack.storage, 1, timeout=30)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert job.notification.token is None
