"""BIMserver's JSON API as notifyd calls and emulates it: one table per dialect.

Each entry is a method exactly as BIMserver declares it (interface, parameter names and types in
order, result type) with the source line it was read from. The client builds its calls from
this table and the emulator dispatches by it, so the two cannot disagree about a name. Sources:
[1.4] tag ``1.4.0-FINAL-2015-11-04`` under ``Shared/src/org/bimserver/shared/interfaces/``;
[1.5] HEAD (``12287d41``, 1.5.x) under ``PluginBase/src/org/bimserver/shared/interfaces/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifyd.records import Dialect


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its wire name and its Java type as ``JsonConverter`` converts it."""

    name: str
    type: str  # Long, String, Boolean, Set<Long>, an S-object name, or an S-enum name


@dataclass(frozen=True, slots=True)
class Method:
    interface: str  # simple name, e.g. ServiceInterface
    name: str
    params: tuple[Param, ...]
    returns: str
    source: str  # file:line of the declaration in that dialect's tree

    @property
    def qualified(self) -> str:
        return f"{self.interface}.{self.name}"


def _m(interface: str, name: str, params: str, returns: str, source: str) -> Method:
    """``params`` is "name:Type, name:Type" in declaration order."""
    parsed = tuple(Param(*part.strip().split(":", 1)) for part in params.split(",") if part.strip())
    return Method(interface, name, parsed, returns, source)


# Namespaces a qualified interface name may carry (JsonHandler accepts full or simple names).
NAMESPACES = {
    Dialect.BIMSIE1: {
        "Bimsie1AuthInterface": "org.buildingsmart.bimsie1",
        "Bimsie1ServiceInterface": "org.buildingsmart.bimsie1",
        "Bimsie1NotificationRegistryInterface": "org.buildingsmart.bimsie1",
        "Bimsie1LowLevelInterface": "org.buildingsmart.bimsie1",
        "Bimsie1NotificationInterface": "org.buildingsmart.bimsie1",
        "Bimsie1RemoteServiceInterface": "org.buildingsmart.bimsie1",
        "ServiceInterface": "org.bimserver",
        "AuthInterface": "org.bimserver",
        "AdminInterface": "org.bimserver",
        "MetaInterface": "org.bimserver",
        "PluginInterface": "org.bimserver",
        "SettingsInterface": "org.bimserver",
    },
    Dialect.BIMSERVER_15: {
        name: "org.bimserver"
        for name in (
            "ServiceInterface",
            "AuthInterface",
            "AdminInterface",
            "MetaInterface",
            "PluginInterface",
            "SettingsInterface",
            "NotificationRegistryInterface",
            "NotificationInterface",
            "LowLevelInterface",
            "RemoteServiceInterface",
            "OAuthInterface",
            "NewServicesInterface",
        )
    },
}

_S14 = "bimsie1/Bimsie1ServiceInterface.java"
_N14 = "bimsie1/Bimsie1NotificationRegistryInterface.java"
_S15 = "ServiceInterface.java"
_N15 = "NotificationRegistryInterface.java"

_METHODS_14 = (
    _m(
        "Bimsie1AuthInterface",
        "login",
        "username:String, password:String",
        "String",
        "bimsie1/Bimsie1AuthInterface.java:46",
    ),
    _m("AuthInterface", "getLoggedInUser", "", "SUser", "AuthInterface.java:39"),
    _m(
        "MetaInterface",
        "getServiceInterfaces",
        "",
        "List<SServiceInterface>",
        "MetaInterface.java:45",
    ),
    _m("AdminInterface", "getServerInfo", "", "SServerInfo", "AdminInterface.java:134"),
    _m(
        "Bimsie1ServiceInterface",
        "getSerializerByName",
        "serializerName:String",
        "SSerializerPluginConfiguration",
        f"{_S14}:267",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "getSerializerByContentType",
        "contentType:String",
        "SSerializerPluginConfiguration",
        f"{_S14}:303",
    ),
    _m(
        "PluginInterface",
        "getSerializerByPluginClassName",
        "pluginClassName:String",
        "SSerializerPluginConfiguration",
        "PluginInterface.java:552",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "download",
        "roid:Long, serializerOid:Long, showOwn:Boolean, sync:Boolean",
        "Long",
        f"{_S14}:127",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "getDownloadData",
        "actionId:Long",
        "SDownloadResult",
        f"{_S14}:258",
    ),
    _m(
        "ServiceInterface",
        "cleanupLongAction",
        "actionId:Long",
        "void",
        "ServiceInterface.java:843",
    ),
    _m(
        "Bimsie1NotificationRegistryInterface",
        "getProgress",
        "topicId:Long",
        "SLongActionState",
        f"{_N14}:107",
    ),
    _m(
        "Bimsie1NotificationRegistryInterface",
        "registerProgressOnRevisionTopic",
        "type:SProgressTopicType, poid:Long, roid:Long, description:String",
        "Long",
        f"{_N14}:123",
    ),
    _m(
        "Bimsie1NotificationRegistryInterface",
        "updateProgressTopic",
        "topicId:Long, state:SLongActionState",
        "void",
        f"{_N14}:44",
    ),
    _m(
        "Bimsie1NotificationRegistryInterface",
        "unregisterProgressTopic",
        "topicId:Long",
        "void",
        f"{_N14}:49",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "getExtendedDataSchemaByNamespace",
        "namespace:String",
        "SExtendedDataSchema",
        f"{_S14}:522",
    ),
    _m(
        "ServiceInterface",
        "getAllExtendedDataSchemas",
        "",
        "List<SExtendedDataSchema>",
        "ServiceInterface.java:639",
    ),
    _m("ServiceInterface", "uploadFile", "file:SFile", "Long", "ServiceInterface.java:741"),
    _m("ServiceInterface", "getFile", "fileId:Long", "SFile", "ServiceInterface.java:751"),
    _m(
        "Bimsie1ServiceInterface",
        "addExtendedDataToRevision",
        "roid:Long, extendedData:SExtendedData",
        "void",
        f"{_S14}:343",
    ),
    _m("Bimsie1ServiceInterface", "getExtendedData", "oid:Long", "SExtendedData", f"{_S14}:353"),
    _m(
        "Bimsie1ServiceInterface",
        "getAllExtendedDataOfRevision",
        "roid:Long",
        "List<SExtendedData>",
        f"{_S14}:363",
    ),
    _m("Bimsie1ServiceInterface", "getProjectByPoid", "poid:Long", "SProject", f"{_S14}:372"),
    _m("Bimsie1ServiceInterface", "getRevision", "roid:Long", "SRevision", f"{_S14}:390"),
    _m(
        "Bimsie1ServiceInterface",
        "getAllRevisionsOfProject",
        "poid:Long",
        "List<SRevision>",
        f"{_S14}:472",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "getAllProjects",
        "onlyTopLevel:Boolean, onlyActive:Boolean",
        "List<SProject>",
        f"{_S14}:482",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "addProject",
        "projectName:String, schema:String",
        "SProject",
        f"{_S14}:494",
    ),
    _m(
        "Bimsie1ServiceInterface",
        "getSuggestedDeserializerForExtension",
        "extension:String, poid:Long",
        "SDeserializerPluginConfiguration",
        f"{_S14}:333",
    ),
    _m("ServiceInterface", "getService", "soid:Long", "SService", "ServiceInterface.java:717"),
)

_METHODS_15 = (
    _m(
        "AuthInterface",
        "login",
        "username:String, password:String",
        "String",
        "AuthInterface.java:45",
    ),
    _m("AuthInterface", "getLoggedInUser", "", "SUser", "AuthInterface.java:92"),
    _m(
        "MetaInterface",
        "getServiceInterfaces",
        "",
        "List<SServiceInterface>",
        "MetaInterface.java:45",
    ),
    _m("AdminInterface", "getServerInfo", "", "SServerInfo", "AdminInterface.java:136"),
    _m(
        "ServiceInterface",
        "getSerializerByName",
        "serializerName:String",
        "SSerializerPluginConfiguration",
        f"{_S15}:134",
    ),
    _m(
        "ServiceInterface",
        "getSerializerByContentType",
        "contentType:String",
        "SSerializerPluginConfiguration",
        f"{_S15}:170",
    ),
    _m(
        "PluginInterface",
        "getSerializerByPluginClassName",
        "pluginClassName:String",
        "SSerializerPluginConfiguration",
        "PluginInterface.java:527",
    ),
    _m(
        "ServiceInterface",
        "download",
        "roids:Set<Long>, query:String, serializerOid:Long, sync:Boolean",
        "Long",
        f"{_S15}:111",
    ),
    _m("ServiceInterface", "getDownloadData", "topicId:Long", "SDownloadResult", f"{_S15}:125"),
    _m("ServiceInterface", "cleanupLongAction", "topicId:Long", "void", f"{_S15}:1334"),
    _m(
        "NotificationRegistryInterface",
        "getProgress",
        "topicId:Long",
        "SLongActionState",
        f"{_N15}:220",
    ),
    _m(
        "NotificationRegistryInterface",
        "registerProgressOnRevisionTopic",
        "type:SProgressTopicType, poid:Long, roid:Long, description:String",
        "Long",
        f"{_N15}:263",
    ),
    _m(
        "NotificationRegistryInterface",
        "updateProgressTopic",
        "topicId:Long, state:SLongActionState",
        "void",
        f"{_N15}:60",
    ),
    _m(
        "NotificationRegistryInterface",
        "unregisterProgressTopic",
        "topicId:Long",
        "void",
        f"{_N15}:72",
    ),
    _m(
        "ServiceInterface",
        "getExtendedDataSchemaByName",
        "name:String",
        "SExtendedDataSchema",
        f"{_S15}:439",
    ),
    _m(
        "ServiceInterface",
        "getAllExtendedDataSchemas",
        "",
        "List<SExtendedDataSchema>",
        f"{_S15}:1101",
    ),
    _m("ServiceInterface", "uploadFile", "file:SFile", "Long", f"{_S15}:1211"),
    _m("ServiceInterface", "getFile", "fileId:Long", "SFile", f"{_S15}:1221"),
    _m(
        "ServiceInterface",
        "addExtendedDataToRevision",
        "roid:Long, extendedData:SExtendedData",
        "void",
        f"{_S15}:210",
    ),
    _m("ServiceInterface", "getExtendedData", "oid:Long", "SExtendedData", f"{_S15}:220"),
    _m(
        "ServiceInterface",
        "getAllExtendedDataOfRevision",
        "roid:Long",
        "List<SExtendedData>",
        f"{_S15}:229",
    ),
    _m("ServiceInterface", "getProjectByPoid", "poid:Long", "SProject", f"{_S15}:258"),
    _m("ServiceInterface", "getRevision", "roid:Long", "SRevision", f"{_S15}:285"),
    _m(
        "ServiceInterface",
        "getAllRevisionsOfProject",
        "poid:Long",
        "List<SRevision>",
        f"{_S15}:388",
    ),
    _m(
        "ServiceInterface",
        "getAllProjects",
        "onlyTopLevel:Boolean, onlyActive:Boolean",
        "List<SProject>",
        f"{_S15}:398",
    ),
    _m(
        "ServiceInterface",
        "addProject",
        "projectName:String, schema:String",
        "SProject",
        f"{_S15}:410",
    ),
    _m(
        "ServiceInterface",
        "getSuggestedDeserializerForExtension",
        "extension:String, poid:Long",
        "SDeserializerPluginConfiguration",
        f"{_S15}:200",
    ),
    _m(
        "ServiceInterface",
        "initiateCheckin",
        "poid:Long, deserializerOid:Long",
        "Long",
        f"{_S15}:72",
    ),
    _m("ServiceInterface", "getService", "soid:Long", "SService", f"{_S15}:1179"),
)

METHODS: dict[Dialect, dict[tuple[str, str], Method]] = {
    Dialect.BIMSIE1: {(m.interface, m.name): m for m in _METHODS_14},
    Dialect.BIMSERVER_15: {(m.interface, m.name): m for m in _METHODS_15},
}


def method(dialect: Dialect, name: str) -> Method:
    """The one method of that name in the dialect (names are unique in the table)."""
    for found in METHODS[dialect].values():
        if found.name == name:
            return found
    raise KeyError(f"{name} is not in the {dialect} method table")


def simple_interface_name(dialect: Dialect, name: str) -> str | None:
    """The simple name of an interface given simply or fully qualified, as JsonHandler looks
    it up (``getByName`` then ``getBySimpleName``); None when the dialect has no such
    interface."""
    namespaces = NAMESPACES[dialect]
    if name in namespaces:
        return name
    namespace, _, simple = name.rpartition(".")
    if simple in namespaces and namespaces[simple] == namespace:
        return simple
    return None
