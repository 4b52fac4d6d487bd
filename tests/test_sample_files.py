"""The built-in services on the shared real IFC files; counts come from the samples' README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifyd.records import Dialect, JobStatus
from tests.stack import running_stack, wait_for_jobs

# file, schema, products (README: len(f.by_type("IfcProduct")))
REAL_FILES = [
    ("ifc2x3/Duplex_A_20110907.ifc", "IFC2X3", 295),
    ("ifc2x3/Duplex_Electrical_20121207.ifc", "IFC2X3", 109),
    ("ifc2x3/IFC-Vebo.ifc", "IFC2X3", 135),
    ("ifc2x3/4walls1floorSite.ifc", "IFC2X3", 8),
    ("ifc4/wall-elemented-case.ifc", "IFC4", 16),
    ("ifc4/compare_by_name_rev_1.ifc", "IFC4", 5),
]


@pytest.mark.parametrize(("name", "schema", "products"), REAL_FILES)
async def test_summary_counts_match_the_readme(
    tmp_path: Path, ifc_samples: Path, name: str, schema: str, products: int
) -> None:
    async with running_stack(tmp_path, Dialect.BIMSERVER_15) as stack:
        job, roid = await stack.run("ifc-summary", ifc_samples / name)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        summary = json.loads(stack.emulator.extended_data_of(roid)[0]["data"])
        assert summary["schema"] == schema
        assert summary["products"] == products
        assert sum(summary["elementCounts"].values()) == products


async def test_duplex_summary_in_the_1_4_dialect(tmp_path: Path, ifc_samples: Path) -> None:
    async with running_stack(tmp_path, Dialect.BIMSIE1) as stack:
        job, roid = await stack.run("ifc-summary", ifc_samples / "ifc2x3/Duplex_A_20110907.ifc")
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        summary = json.loads(stack.emulator.extended_data_of(roid)[0]["data"])
        assert summary["entities"] == 38898
        assert summary["products"] == 295
        assert summary["quantities"]


async def test_large_model_summary(tmp_path: Path, ifc_samples: Path) -> None:
    async with running_stack(tmp_path) as stack:
        job, roid = await stack.run("ifc-summary", ifc_samples / "large/IFC-houten_kozijnen.ifc")
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        summary = json.loads(stack.emulator.extended_data_of(roid)[0]["data"])
        assert (summary["entities"], summary["products"]) == (125924, 239)


async def test_validation_finds_the_three_duplicate_guids(
    tmp_path: Path, ifc_samples: Path
) -> None:
    async with running_stack(tmp_path, Dialect.BIMSIE1) as stack:
        job, roid = await stack.run(
            "ifc-validation", ifc_samples / "broken/real_duplicate_guids.ifc"
        )
        assert job.status is JobStatus.SUCCEEDED
        items = json.loads(stack.emulator.extended_data_of(roid)[0]["data"])["items"]
        duplicates = [i for i in items if i.get("text") == "GlobalId is unique"]
        assert len(duplicates) == 3
        assert all(i["status"] == "ERROR" and i["value"] == "used 2 times" for i in duplicates)


# Each broken file, and the failing check its report must name.
BROKEN = [
    ("truncated_Duplex_A_1MB.ifc", "The file is complete", "cut off after 1000000 bytes"),
    ("truncated_after_header_4walls.ifc", "The file is complete", "cut off"),
    ("empty.ifc", "The file is an ISO 10303-21 (STEP) file", "empty"),
    ("not_ifc_html_error_page.ifc", "The file is an ISO 10303-21 (STEP) file", "HTML"),
    ("not_ifc_json_error.ifc", "The file is an ISO 10303-21 (STEP) file", "JSON"),
    ("missing_magic_4walls.ifc", "The file is an ISO 10303-21 (STEP) file", "ISO-10303-21;"),
    ("utf8_bom_4walls.ifc", "The file is an ISO 10303-21 (STEP) file", "byte order mark"),
    ("zip_disguised_as_ifc_4walls.ifc", "The file is an ISO 10303-21 (STEP) file", "zip"),
    ("wrong_schema_IFC5_wall-elemented-case.ifc", "The schema is supported", "IFC5"),
    ("real_schema_IFC2X_FINAL.ifc", "The schema is supported", "IFC2X_FINAL"),
    ("real_schema_IFC4RC4.ifc", "The schema is supported", "IFC4RC4"),
    ("dangling_reference_4walls.ifc", "ifcopenshell read the file without errors", "9999999"),
    ("real_duplicate_guids.ifc", "GlobalId is unique", "used 2 times"),
]


@pytest.mark.parametrize(("name", "check", "says"), BROKEN)
async def test_broken_files_get_a_report_naming_the_fault(
    tmp_path: Path, ifc_samples: Path, name: str, check: str, says: str
) -> None:
    """Validation writes a report for every broken file; it never crashes on one. The
    emulator serves the file as BIMserver would serve a stored revision."""
    async with running_stack(tmp_path) as stack:
        roid = await stack.notify("ifc-validation", ifc_samples / "broken" / name, schema="IFC2X3")
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        items = json.loads(stack.emulator.extended_data_of(roid)[0]["data"])["items"]
        failing = [i for i in items if i.get("status") == "ERROR" and i["text"] == check]
        assert failing, f"no failing '{check}' line in {items}"
        assert says in failing[0]["value"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated_Duplex_A_1MB.ifc", "truncated"),
        ("empty.ifc", "empty"),
        ("zip_disguised_as_ifc_4walls.ifc", "zip"),
        ("dangling_reference_4walls.ifc", "reported 1 errors"),
    ],
)
async def test_summary_of_a_broken_file_dies_with_the_reason(
    tmp_path: Path, ifc_samples: Path, name: str, reason: str
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.notify("ifc-summary", ifc_samples / "broken" / name, schema="IFC2X3")
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.DEAD
        assert reason in (job.last_error or "")
        assert job.attempts == 1  # a bad model is not retried
