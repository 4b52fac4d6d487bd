"""The emulated JSON API's methods, one function per method of BIMserver's method table,
registered with ``handles``; each docstring names the source it follows."""

from __future__ import annotations

import base64
import time
from typing import Any

from notifyd.emulator.api import ApiError, Auth, Call, JsonApi, handles, null_pointer
from notifyd.emulator.state import ADMIN_UOID, Grant, ProgressTopic, StoredFile
from notifyd.protocol.bimserver import api
from notifyd.protocol.bimserver.catalogue import DESERIALIZER_NAMES, IFC_CONTENT_TYPE
from notifyd.protocol.bimserver.sobjects import sobject
from notifyd.records import Dialect

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


def _schema_where(api_: JsonApi, field: str, value: str) -> dict[str, Any]:
    """AbstractGetByFieldDatabaseAction.java:46 throws on a miss."""
    for schema in api_.state.schemas.values():
        if getattr(schema, field) == value:
            return api_.state.s_schema(schema)
    raise ApiError(f"No ExtendedDataSchema found where {field} = {value}")


@handles("getExtendedDataSchemaByName", Auth.TOKEN)
def _schema_by_name(api_: JsonApi, call: Call) -> dict[str, Any]:
    return _schema_where(api_, "name", call.params["name"])


@handles("getExtendedDataSchemaByNamespace", Auth.TOKEN)
def _schema_by_namespace(api_: JsonApi, call: Call) -> dict[str, Any]:
    return _schema_where(api_, "namespace", call.params["namespace"])


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
