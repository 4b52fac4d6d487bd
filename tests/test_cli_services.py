"""`notifyd services` shows exactly what the daemon announces."""

from __future__ import annotations

import json

from click.testing import CliRunner

from notifyd.cli import main
from tests.conftest import PROJECT_ROOT
from tests.test_json_endpoint import SERVICE_DESCRIPTOR_FIELDS

EXAMPLE = str(PROJECT_ROOT / "config" / "notifyd.example.toml")


def test_services_json_lists_descriptors_rights_and_profiles() -> None:
    result = CliRunner().invoke(main, ["services", "--json", "--config", EXAMPLE])
    assert result.exit_code == 0, result.output
    services = {s["identifier"]: s for s in json.loads(result.output)["services"]}
    assert set(services) == {"ifc-summary", "ifc-validation", "ifc-property-stamp"}
    validation = services["ifc-validation"]
    assert set(validation["descriptor"]) == SERVICE_DESCRIPTOR_FIELDS
    assert validation["rights"] == {
        "readRevision": True,
        "readExtendedData": None,
        "writeRevision": False,
        "writeExtendedData": "VALIDATION_JSON_1_0",
    }
    assert validation["inputs"] == ["IFC_STEP_2X3TC1", "IFC_STEP_4"]
    assert validation["outputs"] == ["VALIDATION_JSON_1_0"]
    assert [p["identifier"] for p in validation["profiles"]] == ["default", "structure-only"]
    assert validation["profiles"][1]["settings"]["require_is_external"] is False
    assert "properties" in validation["settingsSchema"]
    assert services["ifc-property-stamp"]["rights"]["writeRevision"] is True


def test_services_text_names_each_service_and_profile() -> None:
    result = CliRunner().invoke(main, ["services", "--config", EXAMPLE])
    assert result.exit_code == 0
    for name in ("ifc-summary", "ifc-validation", "ifc-property-stamp", "counts-only"):
        assert name in result.output
