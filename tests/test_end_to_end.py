"""Notification -> download -> analysis -> write-back, through the emulator, in both dialects."""

from __future__ import annotations

import json
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.element
import pytest

from notifyd.records import Dialect, JobStatus
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs

DIALECTS = [Dialect.BIMSIE1, Dialect.BIMSERVER_15]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("schema", ["IFC2X3", "IFC4"])
async def test_summary_of_a_built_model_is_written_as_extended_data(
    tmp_path: Path, dialect: Dialect, schema: str
) -> None:
    model = build_model(tmp_path / "m.ifc", schema=schema, walls=3, slabs=1)
    async with running_stack(tmp_path, dialect) as stack:
        job, roid = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        [written] = stack.emulator.extended_data_of(roid)
        assert written["schema"] == "IFC_ANALYTICS_JSON_1_0"
        summary = json.loads(written["data"])
        assert summary["schema"] == schema
        assert summary["elementCounts"]["IfcWall"] == 3
        assert summary["elementCounts"]["IfcSlab"] == 1
        [storey] = summary["storeys"]
        assert storey["elements"] == {"IfcSlab": 1, "IfcWall": 3}
        assert job.notification.token is None  # erased once the job ended


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_progress_topic_is_started_finished_and_unregistered(
    tmp_path: Path, dialect: Dialect
) -> None:
    model = build_model(tmp_path / "m.ifc")
    async with running_stack(tmp_path, dialect) as stack:
        job, roid = await stack.run("ifc-validation", model)
        assert job.status is JobStatus.SUCCEEDED
        [topic] = stack.emulator.topics.values()
        assert topic.type == "RUNNING_SERVICE"
        assert topic.roid == roid
        states = [s["state"] for s in topic.states]
        assert states[0] == "STARTED"
        assert states[-1] == "FINISHED"
        assert topic.unregistered
        assert not stack.emulator.long_actions  # the download was cleaned up


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_validation_report_names_missing_is_external(
    tmp_path: Path, dialect: Dialect
) -> None:
    model = build_model(tmp_path / "m.ifc", walls=3, external_walls=1, slabs=1)
    async with running_stack(tmp_path, dialect) as stack:
        job, roid = await stack.run("ifc-validation", model)
        assert job.status is JobStatus.SUCCEEDED
        [written] = stack.emulator.extended_data_of(roid)
        assert written["schema"] == "VALIDATION_JSON_1_0"
        items = json.loads(written["data"])["items"]
        assert items[0]["type"] == "header"
        lines = [i for i in items if i["type"] == "line"]
        assert all(set(i) >= {"status", "identification", "value", "shouldBe"} for i in lines)
        missing = [i for i in lines if i["text"] == "Pset_WallCommon.IsExternal is set"]
        assert len(missing) == 2
        slabs = [i for i in lines if i["text"] == "Pset_SlabCommon.IsExternal is set"]
        assert len(slabs) == 1
        assert written["title"] == "IFC validation: 4 errors, 0 warnings"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_property_stamp_checks_in_a_new_revision(tmp_path: Path, dialect: Dialect) -> None:
    model = build_model(tmp_path / "m.ifc", walls=2, slabs=1)
    async with running_stack(tmp_path, dialect) as stack:
        roid = await stack.notify("ifc-property-stamp", model)
        job = (await wait_for_jobs(stack.storage, 1))[0]
        await stack.emulator.settle()
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        [checkin] = stack.emulator.checkins
        assert checkin["poid"] == stack.emulator.revisions[roid].poid
        assert f"(notifyd job {job.id})" in checkin["comment"]
        assert list(checkin["fields"])[:4] == ["token", "poid", "comment", "deserializerOid"]
        stamped = ifcopenshell.open(str(stack.emulator.revisions[checkin["roid"]].path))
        for element in stamped.by_type("IfcElement"):
            pset = ifcopenshell.util.element.get_pset(element, "Notifyd_Check")
            assert pset["CheckedBy"] == "notifyd"
        echoes = (await wait_for_jobs(stack.storage, 2))[1:] if dialect is Dialect.BIMSIE1 else []
        # 1.4 notifies the service of the revision it checked in; 1.5 does not.
        for echo in echoes:
            assert echo.notification.roid == checkin["roid"]
            assert echo.result is not None
            assert echo.result.skipped == (
                f"revision {checkin['roid']} was checked in by this service"
            )
            assert echo.result.delivery is None
        assert len(await stack.storage.list_jobs()) == 1 + len(echoes)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_new_extended_data_arrives_as_two_posts_and_runs_on_the_revision(
    tmp_path: Path, dialect: Dialect
) -> None:
    model = build_model(tmp_path / "m.ifc")
    async with running_stack(tmp_path, dialect) as stack:
        service = await stack.service("test-noop")
        poid = stack.emulator.add_project()
        roid = stack.emulator.add_revision(poid, model)
        await stack.emulator.notify_new_extended_data(service, roid, edid=4242)
        jobs = await wait_for_jobs(stack.storage, 2)
        assert sorted(str(j.notification.kind) for j in jobs) == [
            "newExtendedDataOnRevision",
            "newRevision",
        ]
        assert all(j.status is JobStatus.SUCCEEDED for j in jobs)
        assert len(stack.emulator.extended_data_of(roid)) == 2


async def test_wrong_schema_for_the_service_is_refused(tmp_path: Path) -> None:
    """A service that accepts only IFC4 refuses an IFC2X3 revision at once."""
    from notifyd.records import JobStatus as Status

    model = build_model(tmp_path / "m.ifc", schema="IFC2X3")
    async with running_stack(tmp_path) as stack:
        job, _ = await stack.run("test-ifc4-only", model)
        assert job.status is Status.DEAD
        assert "IFC2X3" in (job.last_error or "")
        assert "accepts IFC4" in (job.last_error or "")


async def test_an_ifc4_revision_on_bimserver_1_4_is_downloaded_with_the_ifc4_serializer(
    tmp_path: Path,
) -> None:
    """1.4's SRevision has no schema; the project's does, so the right serializer is used."""
    model = build_model(tmp_path / "m.ifc", schema="IFC4")
    async with running_stack(tmp_path, Dialect.BIMSIE1) as stack:
        job, _ = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        [download] = stack.emulator.calls_to("download")
        used = stack.emulator.state.serializers[download["serializerOid"]]
        assert used.name == "Ifc4"  # 1.4's IFC4 serializer, not "Ifc2x3"
