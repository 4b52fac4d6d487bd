"""The worker completes jobs against an emulator that behaves as BIMserver's source says:
downloads that stay at "Done preparing", a token that may check in to one project only, and
notifications BIMserver fires with no recursion guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.records import Dialect, JobStatus
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs

DIALECTS = [Dialect.BIMSIE1, Dialect.BIMSERVER_15]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_model(tmp_path / "m.ifc")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_download_that_takes_time_to_prepare_is_waited_for(
    tmp_path: Path, model: Path, dialect: Dialect
) -> None:
    emulator = BimServerEmulator(dialect, data_dir=tmp_path, prepare_seconds=0.4)
    async with emulator, running_stack(tmp_path, dialect, emulator=emulator) as stack:
        job, _ = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        states = [
            (params["topicId"], stack.emulator.long_actions.get(params["topicId"]))
            for params in stack.emulator.calls_to("getProgress")
        ]
        assert len(states) >= 2  # polled while preparing
        [action] = {topic for topic, _ in states}
        assert action not in stack.emulator.long_actions  # cleaned up


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_revision_is_checked_in_to_the_services_write_project(
    tmp_path: Path, model: Path, dialect: Dialect
) -> None:
    """The token may check in only to the project chosen as the service's writeRevision."""
    async with running_stack(tmp_path, dialect) as stack:
        source = stack.emulator.add_project("design")
        results = stack.emulator.add_project("checked")
        service = await stack.emulator.add_service(
            stack.url, "ifc-property-stamp", poid=source, write_poid=results
        )
        roid = stack.emulator.add_revision(source, model)
        await stack.emulator.notify_new_revision(service, roid)
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        [checkin] = stack.emulator.checkins
        assert checkin["poid"] == results
        assert stack.emulator.revisions[checkin["roid"]].service_id == service.soid


async def test_a_service_without_a_write_project_is_told_what_to_choose(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path) as stack:
        poid = stack.emulator.add_project()
        service = await stack.emulator.add_service(stack.url, "ifc-property-stamp", poid=poid)
        await stack.emulator.notify_new_revision(service, stack.emulator.add_revision(poid, model))
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.DEAD
        assert "has no project to write revisions to" in (job.last_error or "")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_extended_data_a_service_writes_does_not_trigger_it_again(
    tmp_path: Path, model: Path, dialect: Dialect
) -> None:
    """Every addExtendedDataToRevision notifies NEW_EXTENDED_DATA services (two posts, no
    recursion guard). The service runs once for someone else's extended data, and its own
    write-back ends the chain."""
    async with running_stack(tmp_path, dialect) as stack:
        poid = stack.emulator.add_project()
        await stack.service("test-on-extended-data", poid=poid)
        roid = stack.emulator.add_revision(poid, model)
        other = await stack.service("test-noop", poid=poid)  # someone else's extended data
        await stack.emulator.notify_new_revision(other, roid)
        jobs = await wait_for_jobs(stack.storage, 2)
        for _ in range(3):
            await stack.emulator.settle()
            jobs = await wait_for_jobs(stack.storage, len(jobs))
        ran = [j for j in jobs if j.result and j.result.skipped is None]
        skipped = [j for j in jobs if j.result and j.result.skipped is not None]
        assert all(j.status is JobStatus.SUCCEEDED for j in jobs), [j.last_error for j in jobs]
        assert [j.notification.service for j in ran] == ["test-noop", "test-on-extended-data"]
        # Its own extended data is skipped; both paired newRevision posts (same roid, soid and
        # profile) are one job, skipped as the pair's echo.
        assert sorted(
            j.result.skipped.split(" ")[0] for j in skipped if j.result and j.result.skipped
        ) == [
            "extended",
            "newRevision",
        ]
        assert len(stack.emulator.extended_data_of(roid)) == 2
