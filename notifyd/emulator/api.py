"""The emulated JSON API: BIMserver's method table (``notifyd.protocol.bimserver.api``) with an
implementation per method, dispatched and failing as ``JsonHandler`` does.

Order of checks, as in ``JsonHandler.processSingleRequest`` ([1.5] lines 113-166): interface
(full or simple name), method, every declared parameter present and converted
(``JsonConverter``), then the token (``getServiceMap``: a bad token fails every method, even one
that needs none; [1.4] skips it for ``login``), then the method's own authentication and rights
checks. Each implementation names the source it follows.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from notifyd.emulator.state import (
    ADMIN_UOID,
    EmulatedRevision,
    Grant,
    LongAction,
    ProgressTopic,
    ServerState,
    StoredFile,
)
from notifyd.protocol.bimserver import api
from notifyd.protocol.bimserver.catalogue import DESERIALIZER_NAMES, IFC_CONTENT_TYPE
from notifyd.protocol.bimserver.converter import ConversionFailure, from_json
from notifyd.protocol.bimserver.sobjects import sobject
from notifyd.records import Dialect


class ApiError(Exception):
    """BIMserver answers the call with this exception."""

    def __init__(
        self,
        message: str,
        exception_type: str = "UserException",
        error_code: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type
        self.error_code = error_code


def null_pointer() -> ApiError:
    """What BIMserver answers where its code dereferences a missing object."""
    return ApiError("java.lang.NullPointerException", "NullPointerException")


class Auth(Enum):
    NONE = "none"  # no check in the implementation
    TOKEN = "token"  # noqa: S105 - requireAuthentication: any valid token
    REAL_USER = "real_user"  # requireRealUserAuthentication: not a notification's token


@dataclass(frozen=True, slots=True)
class Call:
    grant: Grant | None
    params: dict[str, Any]


Handler = Callable[["JsonApi", Call], Any]
_HANDLERS: dict[str, tuple[Auth, Handler]] = {}


def handles(name: str, auth: Auth) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = (auth, fn)
        return fn

    return register


class JsonApi:
    def __init__(
        self,
        state: ServerState,
        *,
        username: str,
        password: str,
        on_extended_data: Callable[[int, int], None] | None = None,
    ) -> None:
        self.state = state
        self.dialect = state.dialect
        self.username = username
        self.password = password
        self.on_extended_data = on_extended_data
        missing = {m.name for m in api.METHODS[self.dialect].values()} - set(_HANDLERS)
        if missing:
            raise RuntimeError(f"no emulation for {sorted(missing)}")

    # -- dispatch ------------------------------------------------------------------------

    def resolve(self, request: Any) -> tuple[api.Method, dict[str, Any]]:
        """The declared method and its converted parameters, or the ApiError BIMserver gives."""
        if not isinstance(request, dict):
            raise ApiError(
                f"java.lang.ClassCastException: {type(request).__name__}", "ClassCastException"
            )
        if "interface" not in request:
            if self.dialect is Dialect.BIMSIE1:
                raise null_pointer()
            raise ApiError('No "interface" parameter found in request')
        interface_name = str(request["interface"])
        if "method" not in request:
            if self.dialect is Dialect.BIMSIE1:
                raise null_pointer()
            raise ApiError('No "method" parameter found in request')
        method_name = str(request["method"])
        interface = api.simple_interface_name(self.dialect, interface_name)
        if interface is None:
            raise ApiError(f"No service found with name {interface_name}")
        declared = api.METHODS[self.dialect].get((interface, method_name))
        if declared is None:
            elsewhere = [m for m in api.METHODS[self.dialect].values() if m.name == method_name]
            suggestion = f" (suggestion: {elsewhere[0].interface})" if elsewhere else ""
            raise ApiError(f"Method {method_name} not found on {interface_name}{suggestion}")
        raw = request.get("parameters")
        if "parameters" not in request:
            if declared.params and self.dialect is Dialect.BIMSERVER_15:
                raise ApiError(
                    f"Missing 'parameters' field, expected {len(declared.params)} parameters"
                )
            raw = {}
        if not isinstance(raw, dict):
            raise ApiError(f"java.lang.ClassCastException: {raw!r:.60}", "ClassCastException")
        params: dict[str, Any] = {}
        for param in declared.params:
            if param.name not in raw:
                if "parameters" not in request:  # [1.4] invokes with nulls
                    raise null_pointer()
                raise ApiError(f"Missing parameter: {declared.name} -> {param.name}")
            try:
                params[param.name] = from_json(self.dialect, param.type, raw[param.name])
            except ConversionFailure as exc:
                raise ApiError(exc.message, exc.exception_type) from None
        return declared, params

    def authenticate(self, token: str | None, method_name: str) -> Grant | None:
        """``PublicInterfaceFactory.get(token)`` and ``Authorization.fromToken``: [1.5] raises
        AuthenticationException, [1.4] a UserException with the same message."""
        if token is None or (self.dialect is Dialect.BIMSIE1 and method_name == "login"):
            return None
        grant = self.state.tokens.get(token)
        kind = (
            "AuthenticationException" if self.dialect is Dialect.BIMSERVER_15 else "UserException"
        )
        if grant is None:
            code = ("DefaultErrorCode", 3) if self.dialect is Dialect.BIMSERVER_15 else None
            raise ApiError("Invalid token", kind, code)
        if grant.expires_at < time.time():
            raise ApiError("This token has expired", kind)
        return grant

    def invoke(self, declared: api.Method, params: dict[str, Any], grant: Grant | None) -> Any:
        auth, handler = _HANDLERS[declared.name]
        if auth is not Auth.NONE and grant is None:
            raise ApiError("Authentication required for this call")
        if auth is Auth.REAL_USER and grant is not None and not grant.user:
            raise ApiError("Real authentication required (this session has token authentication)")
        return handler(self, Call(grant, params))

    # -- shared lookups ------------------------------------------------------------------

    def revision(self, roid: int | None) -> EmulatedRevision | None:
        return self.state.revisions.get(roid) if roid is not None else None

    def action(self, topic_id: int | None) -> LongAction | None:
        action = self.state.long_actions.get(topic_id) if topic_id is not None else None
        if (
            action is not None
            and action.title == "Starting download"
            and time.time() >= action.prepared_at
        ):
            # LongStreamingDownloadAction.java:173: progress -1; [1.4] LongDownloadAction:74: 0
            action.title = "Done preparing"
            action.progress = -1 if self.dialect is Dialect.BIMSERVER_15 else 0
        return action

    def start_download(
        self, roids: list[int], serializer_oid: int, grant: Grant, sync: bool
    ) -> int:
        if serializer_oid not in self.state.serializers:
            raise null_pointer()  # ServiceImpl.download: the configuration is null
        for roid in roids:
            if not grant.user and roid not in grant.read_roids:
                raise ApiError("No rights to download revision")  # canDownload
            if roid not in self.state.revisions:
                raise ApiError("Revision does not exist")
        action = LongAction(
            id=self.state.new_id(),
            roid=roids[0],
            serializer_oid=serializer_oid,
            prepared_at=time.time() + (0 if sync else self.state.prepare_seconds),
        )
        self.state.long_actions[action.id] = action
        return action.id


# -- authentication and server -----------------------------------------------------------


@handles("login", Auth.NONE)
def _login(api_: JsonApi, call: Call) -> str:
    """LoginDatabaseAction: "Invalid username/password combination"."""
    if call.params["username"] != api_.username or call.params["password"] != api_.password:
        raise ApiError("Invalid username/password combination")
    return api_.state.issue_token(Grant(user=True))


@handles("getLoggedInUser", Auth.TOKEN)
def _logged_in_user(api_: JsonApi, call: Call) -> dict[str, Any]:
    return sobject(
        api_.dialect,
        "SUser",
        oid=ADMIN_UOID,
        name="Administrator",
        username=api_.username,
        userType="ADMIN",
        state="ACTIVE",
    )


@handles("getServiceInterfaces", Auth.NONE)
def _service_interfaces(api_: JsonApi, call: Call) -> list[dict[str, Any]]:
    return [
        sobject(
            api_.dialect,
            "SServiceInterface",
            name=f"{ns}.{simple}",
            nameSpace=ns,
            simpleName=simple,
        )
        for simple, ns in api.NAMESPACES[api_.dialect].items()
    ]


@handles("getServerInfo", Auth.NONE)
def _server_info(api_: JsonApi, call: Call) -> dict[str, Any]:
    minor = 4 if api_.dialect is Dialect.BIMSIE1 else 5
    version: dict[str, Any] = {"major": 1, "minor": minor, "revision": 0}
    if api_.dialect is Dialect.BIMSERVER_15:
        version["fullString"] = f"1.{minor}.0"
    return sobject(
        api_.dialect,
        "SServerInfo",
        serverState="RUNNING",
        version=sobject(api_.dialect, "SVersion", **version),
    )


# -- serializers and deserializers -------------------------------------------------------


@handles("getSerializerByName", Auth.TOKEN)
def _serializer_by_name(api_: JsonApi, call: Call) -> dict[str, Any]:
    """AbstractGetByFieldDatabaseAction.java:46 throws on a miss."""
    name = call.params["serializerName"]
    for oid, serializer in api_.state.serializers.items():
        if serializer.name == name:
            return api_.state.s_serializer(oid)
    raise ApiError(f"No SerializerPluginConfiguration found where name = {name}")


@handles("getSerializerByPluginClassName", Auth.TOKEN)
def _serializer_by_plugin_class(api_: JsonApi, call: Call) -> dict[str, Any]:
    """GetSerializerByPluginClassNameDatabaseAction throws on a miss."""
    name = call.params["pluginClassName"]
    for oid, serializer in api_.state.serializers.items():
        if serializer.plugin.plugin_class == name:
            return api_.state.s_serializer(oid)
    raise ApiError(f"No plugin found with classname {name}")


@handles("getSerializerByContentType", Auth.TOKEN)
def _serializer_by_content_type(api_: JsonApi, call: Call) -> dict[str, Any] | None:
    """GetSerializerByContentTypeDatabaseAction.java:65-83: the first streaming one, else the
    first one, whatever its schema; null on a miss."""
    if call.params["contentType"] != IFC_CONTENT_TYPE:
        return None
    ordered = sorted(api_.state.serializers.items(), key=lambda item: not item[1].plugin.streaming)
    return api_.state.s_serializer(ordered[0][0])


@handles("getSuggestedDeserializerForExtension", Auth.TOKEN)
def _deserializer(api_: JsonApi, call: Call) -> dict[str, Any] | None:
    project = api_.state.projects.get(call.params["poid"])
    if project is None:
        raise null_pointer()
    if str(call.params["extension"]).lstrip(".").lower() != "ifc":
        return None
    wanted = {"ifc4": "IFC4"}.get(project.schema or "", "IFC2X3")
    name = DESERIALIZER_NAMES[api_.dialect][wanted]
    oid = next(o for o, n in api_.state.deserializers.items() if n == name)
    return api_.state.s_deserializer(oid)


# -- downloads ---------------------------------------------------------------------------


@handles("download", Auth.TOKEN)
def _download(api_: JsonApi, call: Call) -> int:
    assert call.grant is not None
    p = call.params
    roids = p["roids"] if "roids" in p else [p["roid"]]
    if not roids:
        raise ApiError("No revisions to download")
    return api_.start_download(roids, p["serializerOid"], call.grant, bool(p["sync"]))


@handles("getDownloadData", Auth.NONE)
def _download_data(api_: JsonApi, call: Call) -> dict[str, Any]:
    """ServiceImpl.getDownloadData: no rights check; it does not finish the action."""
    topic_id = call.params.get("topicId", call.params.get("actionId"))
    action = api_.action(topic_id)
    if action is None:
        raise ApiError(f"No data found for topicId {topic_id}")
    revision = api_.state.revisions[action.roid]
    values: dict[str, Any] = {
        "projectName": api_.state.projects[revision.poid].name,
        "revisionNr": api_.state.projects[revision.poid].revisions.index(revision.roid) + 1,
        "file": base64.b64encode(revision.path.read_bytes()).decode(),
    }
    if api_.dialect is Dialect.BIMSERVER_15:
        values["serializerOid"] = action.serializer_oid
    return sobject(api_.dialect, "SCheckoutResult", **values)


@handles("cleanupLongAction", Auth.NONE)
def _cleanup(api_: JsonApi, call: Call) -> None:
    topic_id = call.params.get("topicId", call.params.get("actionId"))
    if topic_id is not None:
        api_.state.long_actions.pop(topic_id, None)


# -- progress ------------------------------------------------------------------------------


@handles("getProgress", Auth.NONE)
def _progress(api_: JsonApi, call: Call) -> dict[str, Any] | None:
    topic_id = call.params["topicId"]
    action = api_.action(topic_id)
    if action is not None:
        return api_.state.s_action_state(action)
    topic = api_.state.topics.get(topic_id)
    if topic is None or topic.unregistered:
        raise ApiError(f"No topic found with topicId {topic_id}")
    return topic.states[-1] if topic.states else None


@handles("registerProgressOnRevisionTopic", Auth.NONE)
def _register_topic(api_: JsonApi, call: Call) -> int:
    p = call.params
    topic = ProgressTopic(
        id=api_.state.new_id(),
        poid=p["poid"],
        roid=p["roid"],
        type=p["type"],
        description=str(p["description"]),
    )
    api_.state.topics[topic.id] = topic
    return topic.id


@handles("updateProgressTopic", Auth.NONE)
def _update_topic(api_: JsonApi, call: Call) -> None:
    """An unknown topic is not an error: the notification fails later, in BIMserver's queue."""
    topic = api_.state.topics.get(call.params["topicId"])
    if topic is not None and call.params["state"] is not None:
        topic.states.append(call.params["state"])


@handles("unregisterProgressTopic", Auth.NONE)
def _unregister_topic(api_: JsonApi, call: Call) -> None:
    topic = api_.state.topics.get(call.params["topicId"])
    if topic is not None:
        topic.unregistered = True


# -- extended data and files ----------------------------------------------------------------


@handles("getExtendedDataSchemaByName", Auth.TOKEN)
def _schema_by_name(api_: JsonApi, call: Call) -> dict[str, Any]:
    name = call.params["name"]
    for schema in api_.state.schemas.values():
        if schema.name == name:
            return api_.state.s_schema(schema)
    raise ApiError(f"No ExtendedDataSchema found where name = {name}")


@handles("getExtendedDataSchemaByNamespace", Auth.TOKEN)
def _schema_by_namespace(api_: JsonApi, call: Call) -> dict[str, Any]:
    namespace = call.params["namespace"]
    for schema in api_.state.schemas.values():
        if schema.namespace == namespace:
            return api_.state.s_schema(schema)
    raise ApiError(f"No ExtendedDataSchema found where namespace = {namespace}")


@handles("getAllExtendedDataSchemas", Auth.TOKEN)
def _all_schemas(api_: JsonApi, call: Call) -> list[dict[str, Any]]:
    ordered = sorted(api_.state.schemas.values(), key=lambda s: s.name)
    return [api_.state.s_schema(schema) for schema in ordered]


@handles("uploadFile", Auth.NONE)
def _upload_file(api_: JsonApi, call: Call) -> int:
    """ServiceImpl.uploadFile checks no authentication."""
    file = call.params["file"]
    if file is None:
        raise null_pointer()
    file_id = api_.state.new_id()
    api_.state.files[file_id] = StoredFile(
        data=file.get("data") or b"", filename=file.get("filename"), mime=file.get("mime")
    )
    return file_id


@handles("getFile", Auth.NONE)
def _get_file(api_: JsonApi, call: Call) -> dict[str, Any] | None:
    file_id = call.params["fileId"]
    stored = api_.state.files.get(file_id)
    if stored is None:
        return None
    values: dict[str, Any] = {
        "oid": file_id,
        "data": base64.b64encode(stored.data).decode(),
        "filename": stored.filename,
        "mime": stored.mime,
    }
    if api_.dialect is Dialect.BIMSERVER_15:
        values["size"] = len(stored.data)
    return sobject(api_.dialect, "SFile", **values)


@handles("addExtendedDataToRevision", Auth.TOKEN)
def _add_extended_data(api_: JsonApi, call: Call) -> None:
    """AddExtendedDataToRevisionDatabaseAction.java:52-87: rights, file, revision; the schema
    is not checked (an unknown schemaId converts to null); then NEW_EXTENDED_DATA fires."""
    grant = call.grant
    assert grant is not None
    roid = call.params["roid"]
    if not grant.user and roid not in grant.write_extended_data_roids:
        if api_.dialect is Dialect.BIMSIE1:
            raise ApiError("No rights to write extended data to revision")
        has = next(iter(grant.write_extended_data_roids), -1)
        raise ApiError(
            f"No rights to write extended data to revision ({roid}), has rights for {has}"
        )
    extended = call.params["extendedData"]
    if extended is None:
        raise null_pointer()
    file = api_.state.files.get(extended.get("fileId", -1))
    if file is None:
        raise null_pointer()  # file.getData() on a null file
    revision = api_.revision(roid)
    if revision is None:
        raise ApiError(f"Revision with roid {roid} not found")
    edid = api_.state.new_id()
    values: dict[str, Any] = {
        "oid": edid,
        "title": extended.get("title"),
        "schemaId": extended.get("schemaId", -1),
        "fileId": extended["fileId"],
        "size": len(file.data),
        "added": int(time.time() * 1000),
        "userId": ADMIN_UOID,
        "revisionId": roid,
        "projectId": revision.poid,
    }
    if api_.dialect is Dialect.BIMSERVER_15:
        values["timeToGenerate"] = extended.get("timeToGenerate", 0)
    api_.state.extended_data[edid] = sobject(api_.dialect, "SExtendedData", **values)
    revision.extended_data.append(edid)
    if api_.on_extended_data is not None:
        api_.on_extended_data(roid, edid)


@handles("getExtendedData", Auth.TOKEN)
def _get_extended_data(api_: JsonApi, call: Call) -> dict[str, Any]:
    """GetExtendedDataByIdDatabaseAction.java:40-53."""
    assert call.grant is not None
    found = api_.state.extended_data.get(call.params["oid"])
    if found is None:
        raise null_pointer()
    if not call.grant.user and found["revisionId"] not in call.grant.read_extended_data_roids:
        raise ApiError("No rights to read extended data from revision")
    return found


@handles("getAllExtendedDataOfRevision", Auth.NONE)
def _extended_data_of_revision(api_: JsonApi, call: Call) -> list[dict[str, Any]]:
    """ServiceImpl.getAllExtendedDataOfRevision checks no authentication."""
    revision = api_.revision(call.params["roid"])
    if revision is None:
        raise ApiError(f"No revision found with roid {call.params['roid']}")
    return [api_.state.extended_data[edid] for edid in revision.extended_data]


# -- projects, revisions, services ---------------------------------------------------------


@handles("getProjectByPoid", Auth.TOKEN)
def _project(api_: JsonApi, call: Call) -> dict[str, Any]:
    project = api_.state.projects.get(call.params["poid"])
    if project is None:
        raise ApiError(f"Project with oid {call.params['poid']} does not exist")
    return api_.state.s_project(project)


@handles("getRevision", Auth.TOKEN)
def _revision(api_: JsonApi, call: Call) -> dict[str, Any]:
    revision = api_.revision(call.params["roid"])
    if revision is None:
        raise ApiError("Revision does not exist")
    return api_.state.s_revision(revision)


@handles("getAllRevisionsOfProject", Auth.REAL_USER)
def _revisions_of_project(api_: JsonApi, call: Call) -> list[dict[str, Any]]:
    project = api_.state.projects.get(call.params["poid"])
    if project is None:
        raise ApiError(f"Project with oid {call.params['poid']} does not exist")
    return [api_.state.s_revision(api_.state.revisions[roid]) for roid in project.revisions]


@handles("getAllProjects", Auth.REAL_USER)
def _all_projects(api_: JsonApi, call: Call) -> list[dict[str, Any]]:
    return [api_.state.s_project(p) for p in api_.state.projects.values()]


@handles("addProject", Auth.REAL_USER)
def _add_project(api_: JsonApi, call: Call) -> dict[str, Any]:
    schema = str(call.params["schema"] or "ifc2x3tc1").lower()
    project = api_.state.add_project(str(call.params["projectName"]), schema)
    return api_.state.s_project(project)


@handles("initiateCheckin", Auth.TOKEN)
def _initiate_checkin(api_: JsonApi, call: Call) -> int:
    """ServiceImpl.initiateCheckin: an UPLOAD progress topic on the project."""
    if call.params["poid"] not in api_.state.projects:
        raise null_pointer()
    topic = ProgressTopic(
        id=api_.state.new_id(),
        poid=call.params["poid"],
        roid=-1,
        type="UPLOAD",
        description="Checkin",
    )
    api_.state.topics[topic.id] = topic
    return topic.id


@handles("getService", Auth.TOKEN)
def _service(api_: JsonApi, call: Call) -> dict[str, Any] | None:
    """ServiceImpl.getService(soid): authentication only; null for an unknown oid."""
    service = api_.state.services.get(call.params["soid"])
    return None if service is None else api_.state.s_service(service)
