"""BIMserver's S-objects as ``JsonConverter.toJson`` writes them, in each dialect.

``JsonConverter`` writes every field of the class (nulls included) after ``"__type"`` with the
simple class name; Dates are epoch milliseconds, byte arrays and DataHandlers base64, enums their
names. The field lists below are the generated classes' own, read from
``Shared/generated/org/bimserver/interfaces/objects/`` [1.4] and
``PluginBase/generated/org/bimserver/interfaces/objects/`` [1.5], superclass fields first.
"""

from __future__ import annotations

from typing import Any

from notifyd.records import Dialect

# name:JavaType, in declaration order.
_FIELDS: dict[Dialect, dict[str, str]] = {
    Dialect.BIMSIE1: {
        "SRevision": (
            "oid:long rid:int id:Integer userId:long date:Date comment:String size:Long "
            "concreteRevisions:List<Long> lastConcreteRevisionId:long checkouts:List<Long> "
            "projectId:long tag:String lastError:String bmi:Integer extendedData:List<Long> "
            "logs:List<Long> serviceId:long hasGeometry:boolean"
        ),
        "SProject": (
            "oid:long rid:int id:Integer name:String hasAuthorizedUsers:List<Long> "
            "concreteRevisions:List<Long> revisions:List<Long> lastConcreteRevisionId:long "
            "lastRevisionId:long checkouts:List<Long> state:SObjectState createdDate:Date "
            "createdById:long geoTagId:long subProjects:List<Long> parentId:long "
            "description:String exportLengthMeasurePrefix:SSIPrefix extendedData:List<Long> "
            "services:List<Long> logs:List<Long> modelCheckers:List<Long> schema:String "
            "sendEmailOnNewRevision:boolean"
        ),
        "SService": (
            "oid:long rid:int name:String serviceName:String serviceIdentifier:String "
            "providerName:String url:String token:String notificationProtocol:SAccessMethod "
            "description:String trigger:STrigger readRevision:boolean readExtendedDataId:long "
            "writeRevisionId:long writeExtendedDataId:long profileIdentifier:String "
            "profileName:String profileDescription:String profilePublic:boolean projectId:long "
            "userId:long internalServiceId:long modelCheckers:List<Long>"
        ),
        "SExtendedData": (
            "oid:long rid:int url:String fileId:long size:long title:String added:Date "
            "userId:long schemaId:long revisionId:long projectId:long"
        ),
        "SExtendedDataSchema": (
            "oid:long rid:int name:String url:String namespace:String description:String "
            "fileId:long size:long validate:boolean type:SExtendedDataSchemaType users:List<Long> "
            "extendedData:List<Long>"
        ),
        "SFile": "oid:long rid:int data:byte[] filename:String mime:String",
        "SLongActionState": (
            "oid:long rid:int start:Date end:Date progress:Integer state:SActionState "
            "title:String stage:int errors:List<String> warnings:List<String> infos:List<String>"
        ),
        "SSerializerPluginConfiguration": (
            "oid:long rid:int name:String enabled:Boolean description:String "
            "pluginDescriptorId:long settingsId:long objectIDMId:long userSettingsId:long "
            "renderEngineId:long"
        ),
        "SDeserializerPluginConfiguration": (
            "oid:long rid:int name:String enabled:Boolean description:String "
            "pluginDescriptorId:long settingsId:long userSettingsId:long"
        ),
        "SCheckoutResult": (
            "oid:long rid:int projectName:String revisionNr:Integer file:DataHandler"
        ),
        "SServiceInterface": "name:String nameSpace:String simpleName:String",
        "SServerInfo": (
            "oid:long rid:int serverState:SServerState errorMessage:String version:SVersion"
        ),
        "SVersion": (
            "oid:long rid:int major:Integer minor:Integer revision:Integer date:Date "
            "downloadUrl:String supportUrl:String supportEmail:String"
        ),
        "SUser": (
            "oid:long rid:int name:String passwordHash:byte[] passwordSalt:byte[] "
            "hasRightsOn:List<Long> revisions:List<Long> state:SObjectState createdOn:Date "
            "createdById:long userType:SUserType username:String lastSeen:Date token:String "
            "validationToken:byte[] validationTokenCreated:Date userSettingsId:long "
            "schemas:List<Long> extendedData:List<Long> services:List<Long> logs:List<Long>"
        ),
    },
    Dialect.BIMSERVER_15: {
        "SRevision": (
            "oid:long uuid:UUID rid:int id:Integer userId:long date:Date comment:String size:Long "
            "concreteRevisions:List<Long> lastConcreteRevisionId:long checkouts:List<Long> "
            "projectId:long tag:String lastError:String bmi:Integer extendedData:List<Long> "
            "logs:List<Long> serviceId:long hasGeometry:boolean bounds:SBounds "
            "boundsUntransformed:SBounds boundsMm:SBounds boundsUntransformedMm:SBounds "
            "servicesLinked:List<Long> densityCollectionId:long nrPrimitives:long"
        ),
        "SProject": (
            "oid:long uuid:UUID rid:int id:Integer name:String hasAuthorizedUsers:List<Long> "
            "concreteRevisions:List<Long> revisions:List<Long> lastConcreteRevisionId:long "
            "lastRevisionId:long checkouts:List<Long> state:SObjectState createdDate:Date "
            "createdById:long geoTagId:long subProjects:List<Long> parentId:long "
            "description:String exportLengthMeasurePrefix:SSIPrefix extendedData:List<Long> "
            "services:List<Long> logs:List<Long> modelCheckers:List<Long> schema:String "
            "sendEmailOnNewRevision:boolean newServices:List<Long> checkinInProgress:long"
        ),
        "SService": (
            "oid:long uuid:UUID rid:int name:String serviceName:String serviceIdentifier:String "
            "providerName:String url:String token:String notificationProtocol:SAccessMethod "
            "description:String trigger:STrigger readRevision:boolean readExtendedDataId:long "
            "writeRevisionId:long writeExtendedDataId:long profileIdentifier:String "
            "profileName:String profileDescription:String profilePublic:boolean projectId:long "
            "userId:long internalServiceId:long modelCheckers:List<Long>"
        ),
        "SExtendedData": (
            "oid:long uuid:UUID rid:int url:String fileId:long size:long title:String added:Date "
            "userId:long schemaId:long revisionId:long projectId:long timeToGenerate:long"
        ),
        "SExtendedDataSchema": (
            "oid:long uuid:UUID rid:int name:String url:String contentType:String "
            "description:String fileId:long size:long users:List<Long> extendedData:List<Long>"
        ),
        "SFile": "oid:long uuid:UUID rid:int data:byte[] filename:String mime:String size:long",
        "SLongActionState": (
            "oid:long uuid:UUID rid:int start:Date end:Date progress:Integer state:SActionState "
            "title:String stage:int errors:List<String> warnings:List<String> infos:List<String> "
            "topicId:long"
        ),
        "SSerializerPluginConfiguration": (
            "oid:long uuid:UUID rid:int name:String enabled:Boolean description:String "
            "pluginDescriptorId:long settingsId:long objectIDMId:long userSettingsId:long "
            "renderEngineId:long streaming:boolean"
        ),
        "SDeserializerPluginConfiguration": (
            "oid:long uuid:UUID rid:int name:String enabled:Boolean description:String "
            "pluginDescriptorId:long settingsId:long userSettingsId:long"
        ),
        "SCheckoutResult": (
            "oid:long uuid:UUID rid:int projectName:String revisionNr:Integer file:DataHandler "
            "serializerOid:long"
        ),
        "SLongCheckinActionState": (
            "oid:long uuid:UUID rid:int start:Date end:Date progress:Integer state:SActionState "
            "title:String stage:int errors:List<String> warnings:List<String> infos:List<String> "
            "topicId:long roid:long deserializeErrorCode:int"
        ),
        "SServiceInterface": "name:String nameSpace:String simpleName:String",
        "SServerInfo": (
            "oid:long uuid:UUID rid:int serverState:SServerState errorMessage:String "
            "version:SVersion"
        ),
        "SVersion": (
            "oid:long uuid:UUID rid:int major:Integer minor:Integer revision:Integer "
            "fullString:String date:Date downloadUrl:String supportUrl:String supportEmail:String"
        ),
        "SUser": (
            "oid:long uuid:UUID rid:int name:String passwordHash:byte[] passwordSalt:byte[] "
            "hasRightsOn:List<Long> state:SObjectState createdOn:Date createdById:long "
            "userType:SUserType username:String lastSeen:Date token:String validationToken:byte[] "
            "validationTokenCreated:Date userSettingsId:long schemas:List<Long> "
            "extendedData:List<Long> services:List<Long> logs:List<Long> "
            "oAuthAuthorizationCodes:List<Long> oAuthIssuedAuthorizationCodes:List<Long>"
        ),
    },
}

FIELDS: dict[Dialect, dict[str, dict[str, str]]] = {
    dialect: {
        name: dict(part.split(":", 1) for part in spec.split()) for name, spec in classes.items()
    }
    for dialect, classes in _FIELDS.items()
}

# Enum literals (the generated S-enums); an unknown literal fails conversion. The same in both
# dialects but for the server states and user types 1.5 added.
_ENUMS_IN_BOTH: dict[str, tuple[str, ...]] = {
    "SActionState": ("UNKNOWN", "STARTED", "AS_ERROR", "FINISHED"),
    "SProgressTopicType": ("DOWNLOAD", "UPLOAD", "RUNNING_SERVICE", "BRANCH"),
    "STrigger": ("NEW_REVISION", "NEW_PROJECT", "NEW_EXTENDED_DATA"),
    "SAccessMethod": tuple(
        ["SOAP", "WEB_INTERFACE", "INTERNAL", "REST", "SYNDICATION", "JSON", "PROTOCOL_BUFFERS"]
    ),
    "SObjectState": ("ACTIVE", "DELETED"),
}
ENUMS: dict[Dialect, dict[str, tuple[str, ...]]] = {
    Dialect.BIMSIE1: {
        **_ENUMS_IN_BOTH,
        "SServerState": tuple(
            [
                "UNDEFINED",
                "NOT_SETUP",
                "MIGRATION_REQUIRED",
                "MIGRATION_IMPOSSIBLE",
                "FATAL_ERROR",
                "RUNNING",
            ]
        ),
        "SUserType": ("SYSTEM", "ADMIN", "USER", "READ_ONLY"),
        "SExtendedDataSchemaType": ("XSD", "PDF", "TXT"),
    },
    Dialect.BIMSERVER_15: {
        **_ENUMS_IN_BOTH,
        "SServerState": tuple(
            [
                "UNDEFINED",
                "NOT_SETUP",
                "SETUP",
                "MIGRATION_REQUIRED",
                "MIGRATION_IMPOSSIBLE",
                "FATAL_ERROR",
                "RUNNING",
            ]
        ),
        "SUserType": ("SYSTEM", "ADMIN", "USER", "READ_ONLY", "MONITOR"),
    },
}


def _default(name: str, java_type: str) -> Any:
    """What BIMserver writes for a field nobody set: -1 for a missing reference (SConverter
    writes -1 for a null object's oid), 0 for a count, false, [] or null."""
    if java_type.startswith("List<") or java_type.startswith("Set<"):
        return []
    if java_type == "long":
        return -1 if name == "oid" or name.endswith("Id") else 0
    if java_type == "int":
        return 0
    if java_type == "boolean":
        return False
    return None


def sobject(dialect: Dialect, type_name: str, **values: Any) -> dict[str, Any]:
    """The object as BIMserver writes it: ``__type`` first, then every field of the class.

    A value for a field the class does not have in this dialect is a programming error."""
    fields = FIELDS[dialect][type_name]
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"{type_name} has no field {', '.join(sorted(unknown))} in {dialect}")
    body: dict[str, Any] = {"__type": type_name}
    for name, java_type in fields.items():
        body[name] = values[name] if name in values else _default(name, java_type)
    return body
