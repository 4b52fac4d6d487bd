"""What the emulated BIMserver holds: projects, revisions, files, extended data, services,
long actions, progress topics and tokens, and how each is written as an S-object."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifyd.protocol.bimserver.catalogue import (
    DESERIALIZER_NAMES,
    EXTENDED_DATA_NAMESPACES,
    SERIALIZER_PLUGINS,
    SerializerPlugin,
    project_schema_of_ifc,
)
from notifyd.protocol.bimserver.sobjects import sobject
from notifyd.records import Dialect
from notifyd.stepfile import header_schema

ADMIN_UOID = 1


@dataclass(slots=True, kw_only=True)
class Grant:
    """What a token allows. A login gives a user token (an admin: everything); a notification
    gives an ``ExplicitRightsAuthorization`` (``NewRevisionNotification.java:299-320``)."""

    read_roids: set[int] = field(default_factory=set)
    write_extended_data_roids: set[int] = field(default_factory=set)
    read_extended_data_roids: set[int] = field(default_factory=set)
    checkin_poid: int | None = None
    soid: int = -1
    user: bool = False
    expires_at: float = float("inf")


@dataclass(slots=True, kw_only=True)
class EmulatedSerializer:
    """A serializer configuration: a plugin under a name an administrator may change."""

    name: str
    plugin: SerializerPlugin
    enabled: bool = True


@dataclass(slots=True, kw_only=True)
class EmulatedProject:
    poid: int
    name: str
    schema: str | None  # SProject.schema: ifc2x3tc1, ifc4; set by the first revision if None
    revisions: list[int] = field(default_factory=list)
    services: list[int] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class EmulatedRevision:
    roid: int
    poid: int
    path: Path
    schema: str  # the IFC schema of the file, e.g. IFC2X3
    comment: str = ""
    service_id: int = -1  # the service whose token checked it in
    date_ms: int = 0
    extended_data: list[int] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class StoredFile:
    data: bytes
    filename: str | None
    mime: str | None


@dataclass(slots=True, kw_only=True)
class ExtendedDataSchema:
    oid: int
    name: str
    namespace: str
    content_type: str


@dataclass(slots=True, kw_only=True)
class LongAction:
    """A download: STARTED "Starting download", STARTED "Done preparing" once its data is
    ready, FINISHED "Done" only after ``/download`` streamed it."""

    id: int
    roid: int
    serializer_oid: int
    state: str = "STARTED"
    title: str = "Starting download"
    progress: int = 0
    prepared_at: float = 0.0


@dataclass(slots=True, kw_only=True)
class ProgressTopic:
    id: int
    poid: int
    roid: int
    type: str
    description: str
    states: list[dict[str, Any]] = field(default_factory=list)
    unregistered: bool = False


@dataclass(slots=True, kw_only=True)
class RegisteredService:
    """An external service added to a project (an ``SService``)."""

    soid: int
    url: str
    identifier: str
    profile: str
    descriptor: dict[str, Any]
    user_token: str | None
    poid: int | None = None
    write_poid: int | None = None  # SService.writeRevisionId

    @property
    def trigger(self) -> str:
        return str(self.descriptor.get("trigger") or "NEW_REVISION")


class ServerState:
    """Every object the emulated BIMserver holds, with its oid counter."""

    def __init__(self, dialect: Dialect, *, prepare_seconds: float = 0.0) -> None:
        self.dialect = dialect
        self.prepare_seconds = prepare_seconds
        self.ids = itertools.count(1000)
        self.projects: dict[int, EmulatedProject] = {}
        self.revisions: dict[int, EmulatedRevision] = {}
        self.files: dict[int, StoredFile] = {}
        self.extended_data: dict[int, dict[str, Any]] = {}
        self.long_actions: dict[int, LongAction] = {}
        self.topics: dict[int, ProgressTopic] = {}
        self.services: dict[int, RegisteredService] = {}
        self.tokens: dict[str, Grant] = {}
        self.serializers: dict[int, EmulatedSerializer] = {
            next(self.ids): EmulatedSerializer(name=plugin.default_name, plugin=plugin)
            for plugin in SERIALIZER_PLUGINS[dialect]
        }
        self.deserializers: dict[int, str] = {
            next(self.ids): name for name in DESERIALIZER_NAMES[dialect].values()
        }
        names = ("VALIDATION_JSON_1_0", "IFC_ANALYTICS_JSON_1_0", "UNSTRUCTURED_UTF8_TEXT_1_0")
        self.schemas: dict[int, ExtendedDataSchema] = {}
        for name in names:
            oid = next(self.ids)
            self.schemas[oid] = ExtendedDataSchema(
                oid=oid,
                name=name,
                namespace=EXTENDED_DATA_NAMESPACES[name],
                content_type="text/plain"
                if name.startswith("UNSTRUCTURED")
                else "application/json",
            )

    def new_id(self) -> int:
        return next(self.ids)

    # -- objects -------------------------------------------------------------------------

    def add_project(self, name: str, schema: str | None = None) -> EmulatedProject:
        project = EmulatedProject(poid=self.new_id(), name=name, schema=schema)
        self.projects[project.poid] = project
        return project

    def add_revision(
        self,
        poid: int,
        path: Path,
        comment: str = "",
        *,
        schema: str | None = None,
        service_id: int = -1,
    ) -> EmulatedRevision:
        project = self.projects[poid]
        schema = schema or header_schema(path) or "IFC2X3"
        if project.schema is None:
            project.schema = project_schema_of_ifc(schema)
        revision = EmulatedRevision(
            roid=self.new_id(),
            poid=poid,
            path=path,
            schema=schema,
            comment=comment,
            service_id=service_id,
            date_ms=int(time.time() * 1000),
        )
        self.revisions[revision.roid] = revision
        project.revisions.append(revision.roid)
        return revision

    def issue_token(self, grant: Grant) -> str:
        token = secrets.token_hex(32)
        self.tokens[token] = grant
        return token

    def notification_grant(self, service: RegisteredService, roid: int) -> Grant:
        """The rights NewRevisionNotification puts in the token: read every revision of the
        project if the service reads revisions ([1.4]: the last revision of each related
        project), check in to the service's write project, write extended data to the
        revision ([1.4] only when the service writes extended data; [1.5] always)."""
        revision = self.revisions[roid]
        project = self.projects[revision.poid]
        if self.dialect is Dialect.BIMSIE1:
            readable = {project.revisions[-1]} if project.revisions else set()
        else:
            readable = set(project.revisions)
        descriptor = service.descriptor
        writes_extended = bool(descriptor.get("writeExtendedData"))
        return Grant(
            read_roids=readable if descriptor.get("readRevision") else set(),
            write_extended_data_roids=(
                {roid} if writes_extended or self.dialect is Dialect.BIMSERVER_15 else set()
            ),
            read_extended_data_roids={roid} if descriptor.get("readExtendedData") else set(),
            checkin_poid=service.write_poid,
            soid=service.soid,
        )

    # -- S-objects -----------------------------------------------------------------------

    def s_project(self, project: EmulatedProject) -> dict[str, Any]:
        return sobject(
            self.dialect,
            "SProject",
            oid=project.poid,
            id=project.poid,
            name=project.name,
            schema=project.schema,
            state="ACTIVE",
            revisions=list(project.revisions),
            lastRevisionId=project.revisions[-1] if project.revisions else -1,
            services=list(project.services),
            hasAuthorizedUsers=[ADMIN_UOID],
        )

    def s_revision(self, revision: EmulatedRevision) -> dict[str, Any]:
        project = self.projects[revision.poid]
        return sobject(
            self.dialect,
            "SRevision",
            oid=revision.roid,
            id=project.revisions.index(revision.roid) + 1,
            userId=ADMIN_UOID,
            date=revision.date_ms,
            comment=revision.comment,
            size=revision.path.stat().st_size,
            projectId=revision.poid,
            extendedData=list(revision.extended_data),
            serviceId=revision.service_id,
        )

    def s_serializer(self, oid: int) -> dict[str, Any]:
        serializer = self.serializers[oid]
        values: dict[str, Any] = {
            "oid": oid,
            "name": serializer.name,
            "enabled": serializer.enabled,
        }
        if self.dialect is Dialect.BIMSERVER_15:
            values["streaming"] = serializer.plugin.streaming
        return sobject(self.dialect, "SSerializerPluginConfiguration", **values)

    def s_deserializer(self, oid: int) -> dict[str, Any]:
        return sobject(
            self.dialect,
            "SDeserializerPluginConfiguration",
            oid=oid,
            name=self.deserializers[oid],
            enabled=True,
        )

    def s_schema(self, schema: ExtendedDataSchema) -> dict[str, Any]:
        if self.dialect is Dialect.BIMSIE1:
            return sobject(
                self.dialect,
                "SExtendedDataSchema",
                oid=schema.oid,
                name=schema.name,
                namespace=schema.namespace,
                validate=False,
            )
        return sobject(
            self.dialect,
            "SExtendedDataSchema",
            oid=schema.oid,
            name=schema.name,
            contentType=schema.content_type,
        )

    def s_service(self, service: RegisteredService) -> dict[str, Any]:
        d = service.descriptor
        return sobject(
            self.dialect,
            "SService",
            oid=service.soid,
            name=d.get("name"),
            serviceName=d.get("name"),
            serviceIdentifier=service.identifier,
            providerName=d.get("providerName"),
            url=service.url,
            token=service.user_token,
            notificationProtocol="JSON",
            description=d.get("description"),
            trigger=service.trigger,
            readRevision=bool(d.get("readRevision")),
            writeRevisionId=service.write_poid if service.write_poid is not None else -1,
            profileIdentifier=service.profile,
            projectId=service.poid if service.poid is not None else -1,
            userId=ADMIN_UOID,
        )

    def s_action_state(self, action: LongAction) -> dict[str, Any]:
        values: dict[str, Any] = {
            "start": int(action.prepared_at * 1000) or None,
            "state": action.state,
            "title": action.title,
            "progress": action.progress,
            "stage": 0,
        }
        if self.dialect is Dialect.BIMSERVER_15:
            values["topicId"] = action.id
        return sobject(self.dialect, "SLongActionState", **values)
