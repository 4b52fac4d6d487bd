"""BIMserver's S-objects that notifyd sends: SServiceDescriptor and SProfileDescriptor.

Field names and ``__type`` values are BIMserver's own (``JsonConverter``): every object carries
``"__type"`` with the simple class name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class STrigger(StrEnum):
    NEW_REVISION = "NEW_REVISION"
    NEW_PROJECT = "NEW_PROJECT"
    NEW_EXTENDED_DATA = "NEW_EXTENDED_DATA"


# PluginBase SchemaName plus the extended data schemas of BIMserver-Repository.
SCHEMA_NAMES = frozenset(
    {
        "IFC_STEP_2X3TC1",
        "IFC_STEP_4",
        "IFC_STEP_4X3",
        "IFC_STEP",
        "IFC_XML_2X3TC1",
        "IFC_XML_4",
        "IFC_XML_4X3",
        "IFC_JSON_2X3TC1",
        "IFC_JSON_4",
        "IFC_JSON_4X3",
        "IFC_JSON_GEOM_2X3TC1",
        "IFC_JSON_GEOM_4",
        "BCF_ZIP_1_0",
        "BCF_ZIP_2_0",
        "BCF_ZIP_2_1",
        "GLTF_1_0",
        "GLTF_BIN_1_0",
        "GLTF_BIN_2_0",
        "COLLADA_1_5",
        "KMZ_2_2_0",
        "BINARY_GEOMETRY_6",
        "CITYGML_2_0_0",
        "VIS_3D_JSON_1_0",
        "VALIDATION_JSON_1_0",
        "VALIDATION_JSON_2_0",
        "VALIDATION_XLSX_1_0",
        "LOD_CSV_1_0",
        "INFO_3D_EXCEL_1_0",
        "UNSTRUCTURED_UTF8_TEXT_1_0",
        "CSV_TABLE_1_0",
        "GUID_PROPERTIES_DATASET_0_0_1",
        "MPG_OBJECT_JSON_0_0_3",
        "MPG_RESULTS_JSON_0_0_1",
        "GEOMETRY_GENERATION_REPORT_JSON_1_1",
        "GEOMETRY_GENERATION_REPORT_HTML_1_1",
        "CLASHDETECTION_RESULT_JSON_1_0",
        "IFC_ANALYTICS_JSON_1_0",
    }
)


class _SObject(BaseModel):
    """An S-object; on the wire it carries ``"__type"``: its class name, first."""

    model_config = ConfigDict(frozen=True)

    def to_wire(self) -> dict[str, object]:
        return {"__type": type(self).__name__, **self.model_dump(mode="json")}


class SServiceDescriptor(_SObject):
    """The answer to ``getService``: rights are top-level here, unlike in services.json."""

    name: str
    url: str
    token: str | None = None
    identifier: str
    notificationProtocol: Literal["JSON"] = "JSON"
    description: str
    trigger: STrigger
    readRevision: bool
    readExtendedData: str | None
    writeRevision: bool
    writeExtendedData: str | None
    providerName: str
    companyUrl: str
    tokenUrl: str
    newProfileUrl: str
    registerUrl: str
    authorizeUrl: str


class SProfileDescriptor(_SObject):
    identifier: str
    name: str
    description: str
    publicProfile: bool
