"""The services notifyd ships, declared through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from notifyd.services import ServiceSpec


class SummarySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_quantities: bool = Field(True, description="Sum the IfcElementQuantity values")
    group_by_storey: bool = Field(True, description="List each storey with its contents")


class ValidationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    supported_schemas: list[str] = Field(default_factory=lambda: ["IFC2X3", "IFC4"])
    check_unique_guids: bool = True
    require_is_external: bool = Field(
        True, description="Walls, slabs, doors and windows must carry Pset_*Common.IsExternal"
    )


class PropertyStampSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pset_name: str = Field("Notifyd_Check", min_length=1)
    property_name: str = Field("CheckedBy", min_length=1)
    value: str = "notifyd"


IFC_SUMMARY = ServiceSpec(
    identifier="ifc-summary",
    name="IFC summary",
    description="Counts elements by type, lists storeys with their contents and totals the "
    "quantities, as JSON extended data on the revision.",
    write_extended_data="IFC_ANALYTICS_JSON_1_0",
    outputs=("IFC_ANALYTICS_JSON_1_0",),
    settings=SummarySettings,
    handler="notifyd.builtin.summary:summarize",
)

IFC_VALIDATION = ServiceSpec(
    identifier="ifc-validation",
    name="IFC validation",
    description="Checks that the file is complete and parses cleanly, that its schema is "
    "supported, that GlobalIds are unique and that external elements say so.",
    write_extended_data="VALIDATION_JSON_1_0",
    outputs=("VALIDATION_JSON_1_0",),
    settings=ValidationSettings,
    handler="notifyd.builtin.validation:validate",
)

IFC_PROPERTY_STAMP = ServiceSpec(
    identifier="ifc-property-stamp",
    name="IFC property stamp",
    description="Adds a property set to every element and checks the model in as a new revision.",
    write_revision=True,
    outputs=("IFC_STEP_2X3TC1", "IFC_STEP_4"),
    settings=PropertyStampSettings,
    handler="notifyd.builtin.property_stamp:stamp",
    timeout_seconds=1800.0,
)


def register_services() -> Iterable[ServiceSpec]:
    return [IFC_SUMMARY, IFC_VALIDATION, IFC_PROPERTY_STAMP]
