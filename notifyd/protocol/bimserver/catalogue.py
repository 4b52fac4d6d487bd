"""What a stock BIMserver has installed: its IFC serializers and deserializers, by dialect.

Serializer plugin classes and default names: [1.4] ``IfcPlugins/src/org/bimserver/ifc/step/
serializer/Ifc{2x3tc1,4}StepSerializerPlugin.java:28-29`` (``getDefaultName`` "Ifc2x3", "Ifc4");
[1.5] ``opensourceBIM/IfcPlugins`` ``IfcPlugins/plugin/plugin.xml:21-44`` ("Ifc2x3tc1",
"Ifc4", "Ifc2x3tc1 (Streaming)", "Ifc4 (Streaming)"). A name is what an administrator may
rename; a plugin class name is not, so the client asks by class first
(``PluginInterface.getSerializerByPluginClassName``, what bimserverapi does too).
"""

from __future__ import annotations

from dataclasses import dataclass

from notifyd.records import Dialect


@dataclass(frozen=True, slots=True)
class SerializerPlugin:
    plugin_class: str
    default_name: str
    schema: str  # IFC2X3 or IFC4: the FILE_SCHEMA it writes
    streaming: bool


_STEP = "org.bimserver.ifc.step.serializer."

SERIALIZER_PLUGINS: dict[Dialect, tuple[SerializerPlugin, ...]] = {
    Dialect.BIMSIE1: (
        SerializerPlugin(f"{_STEP}Ifc2x3tc1StepSerializerPlugin", "Ifc2x3", "IFC2X3", False),
        SerializerPlugin(f"{_STEP}Ifc4StepSerializerPlugin", "Ifc4", "IFC4", False),
    ),
    Dialect.BIMSERVER_15: (
        SerializerPlugin(
            f"{_STEP}Ifc2x3tc1StepStreamingSerializerPlugin",
            "Ifc2x3tc1 (Streaming)",
            "IFC2X3",
            True,
        ),
        SerializerPlugin(
            f"{_STEP}Ifc4StepStreamingSerializerPlugin", "Ifc4 (Streaming)", "IFC4", True
        ),
        SerializerPlugin(f"{_STEP}Ifc2x3tc1StepSerializerPlugin", "Ifc2x3tc1", "IFC2X3", False),
        SerializerPlugin(f"{_STEP}Ifc4StepSerializerPlugin", "Ifc4", "IFC4", False),
    ),
}

IFC_CONTENT_TYPE = "application/ifc"

# The IFC deserializers' default names ([1.4] IfcPlugins Ifc*StepDeserializerPlugin
# getDefaultName; [1.5] plugin.xml:45-56).
DESERIALIZER_NAMES: dict[Dialect, dict[str, str]] = {
    Dialect.BIMSIE1: {"IFC2X3": "Ifc2x3tc1 Step Deserializer", "IFC4": "Ifc4 Step Deserializer"},
    Dialect.BIMSERVER_15: {"IFC2X3": "Ifc2x3tc1 (Streaming)", "IFC4": "Ifc4 (Streaming)"},
}

# BIMserver 1.4 finds extended data schemas by namespace. These are the namespaces of
# BIMserver-Repository's extendeddataschemas.json for the schemas notifyd's services write;
# a server may use others (the client then looks for the name among all schemas).
EXTENDED_DATA_NAMESPACES = {
    "VALIDATION_JSON_1_0": "http://extend.bimserver.org/validationreport",
    "IFC_ANALYTICS_JSON_1_0": "http://extend.bimserver.org/ifcanalytics",
    "UNSTRUCTURED_UTF8_TEXT_1_0": "http://extend.bimserver.org/text",
}

# The FILE_SCHEMA of an IFC file to the SchemaName a service declares as input.
SCHEMA_NAME_OF_IFC = {"IFC2X3": "IFC_STEP_2X3TC1", "IFC4": "IFC_STEP_4", "IFC4X3": "IFC_STEP_4X3"}

# The IFC schema name of a project (SProject.schema) to the FILE_SCHEMA notifyd speaks of.
PROJECT_SCHEMAS = {"ifc2x3tc1": "IFC2X3", "ifc4": "IFC4", "ifc4x3": "IFC4X3"}


def ifc_schema_of_project(schema: str | None) -> str | None:
    if not schema:
        return None
    return PROJECT_SCHEMAS.get(schema.lower(), schema.upper())


def project_schema_of_ifc(schema: str) -> str:
    for project, ifc in PROJECT_SCHEMAS.items():
        if ifc == schema:
            return project
    return schema.lower()
