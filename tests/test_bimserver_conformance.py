"""The emulator answers every method of the conformance table as BIMserver's source does.

Each (dialect, method) row of ``docs/bimserver-conformance.md`` is pinned here: the row exists
with the source line of the method table, the call answers with the declared type carrying every
field ``JsonConverter`` writes, a missing parameter fails as ``JsonHandler`` says, and each
exception listed for the row comes with its type and message.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyd.emulator import BimServerEmulator, Grant
from notifyd.protocol.bimserver import api
from notifyd.protocol.bimserver.catalogue import SERIALIZER_PLUGINS
from notifyd.protocol.bimserver.sobjects import FIELDS
from notifyd.records import Dialect
from tests.conftest import PROJECT_ROOT
from tests.ifc_factory import build_model

DIALECTS = [Dialect.BIMSIE1, Dialect.BIMSERVER_15]
TABLE = PROJECT_ROOT / "docs" / "bimserver-conformance.md"
ROWS = [(d, m) for d in DIALECTS for m in api.METHODS[d].values()]


@dataclass
class World:
    """An emulator with a project, a revision, a file, extended data and tokens."""

    emulator: BimServerEmulator
    session: aiohttp.ClientSession
    poid: int
    roid: int
    admin: str
    service_token: str  # a notification token: read, write extended data, check in to poid
    file_id: int
    edid: int
    topic: int

    @property
    def dialect(self) -> Dialect:
        return self.emulator.dialect

    async def call(self, name: str, params: dict[str, Any], token: str | None = None) -> Any:
        declared = api.method(self.dialect, name)
        body: dict[str, Any] = {
            "request": {"interface": declared.interface, "method": name, "parameters": params}
        }
        if token is not None:
            body["token"] = token
        async with self.session.post(f"{self.emulator.url}/json", json=body) as response:
            assert response.status == 200
            return (await response.json())["response"]


@pytest.fixture(params=DIALECTS, ids=str)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with (
        BimServerEmulator(request.param, data_dir=tmp_path) as emulator,
        aiohttp.ClientSession() as session,
    ):
        poid = emulator.add_project("P")
        roid = emulator.add_revision(poid, build_model(tmp_path / "m.ifc"))
        admin = emulator.issue_token(Grant(user=True))
        service_token = emulator.issue_token(
            Grant(
                read_roids={roid},
                write_extended_data_roids={roid},
                read_extended_data_roids={roid},
                checkin_poid=poid,
            )
        )
        world = World(emulator, session, poid, roid, admin, service_token, 0, 0, 0)
        file = {"__type": "SFile", "data": "e30=", "filename": "x.json", "mime": "application/json"}
        world.file_id = (await world.call("uploadFile", {"file": file}))["result"]
        schema = next(iter(emulator.state.schemas))
        extended = {
            "__type": "SExtendedData",
            "title": "t",
            "schemaId": schema,
            "fileId": world.file_id,
        }
        await world.call(
            "addExtendedDataToRevision", {"roid": roid, "extendedData": extended}, admin
        )
        world.edid = emulator.revisions[roid].extended_data[0]
        world.topic = (
            await world.call(
                "registerProgressOnRevisionTopic",
                {"type": "RUNNING_SERVICE", "poid": poid, "roid": roid, "description": "d"},
            )
        )["result"]
        yield world


def serializer_oid(world: World) -> int:
    return next(iter(world.emulator.state.serializers))


def valid_params(world: World, name: str) -> dict[str, Any]:
    """Arguments that succeed for each method of the table."""
    plugin = SERIALIZER_PLUGINS[world.dialect][0]
    state = {
        "__type": "SLongActionState",
        "state": "STARTED",
        "title": "t",
        "progress": 5,
        "stage": 0,
    }
    examples: dict[str, dict[str, Any]] = {
        "login": {"username": world.emulator.username, "password": world.emulator.password},
        "getSerializerByName": {"serializerName": plugin.default_name},
        "getSerializerByContentType": {"contentType": "application/ifc"},
        "getSerializerByPluginClassName": {"pluginClassName": plugin.plugin_class},
        "getDownloadData": {},
        "cleanupLongAction": {},
        "getProgress": {"topicId": world.topic},
        "registerProgressOnRevisionTopic": {
            "type": "RUNNING_SERVICE",
            "poid": world.poid,
            "roid": world.roid,
            "description": "d",
        },
        "updateProgressTopic": {"topicId": world.topic, "state": state},
        "unregisterProgressTopic": {"topicId": world.topic},
        "getExtendedDataSchemaByNamespace": {
            "namespace": "http://extend.bimserver.org/validationreport"
        },
        "getExtendedDataSchemaByName": {"name": "VALIDATION_JSON_1_0"},
        "uploadFile": {"file": {"__type": "SFile", "data": "", "filename": "f", "mime": "m"}},
        "getFile": {"fileId": world.file_id},
        "addExtendedDataToRevision": {
            "roid": world.roid,
            "extendedData": {"__type": "SExtendedData", "title": "t", "fileId": world.file_id},
        },
        "getExtendedData": {"oid": world.edid},
        "getAllExtendedDataOfRevision": {"roid": world.roid},
        "getProjectByPoid": {"poid": world.poid},
        "getRevision": {"roid": world.roid},
        "getAllRevisionsOfProject": {"poid": world.poid},
        "getAllProjects": {"onlyTopLevel": True, "onlyActive": True},
        "addProject": {"projectName": "Q", "schema": "ifc4"},
        "getSuggestedDeserializerForExtension": {"extension": "ifc", "poid": world.poid},
        "initiateCheckin": {"poid": world.poid, "deserializerOid": 1},
        "getService": {"soid": 424242},
        "getAllExtendedDataSchemas": {},
        "getServiceInterfaces": {},
        "getServerInfo": {},
        "getLoggedInUser": {},
    }
    if name == "download":
        if world.dialect is Dialect.BIMSIE1:
            return {
                "roid": world.roid,
                "serializerOid": serializer_oid(world),
                "showOwn": False,
                "sync": False,
            }
        return {
            "roids": [world.roid],
            "query": "{}",
            "serializerOid": serializer_oid(world),
            "sync": False,
        }
    return examples[name]


async def started_download(world: World) -> int:
    answer = await world.call("download", valid_params(world, "download"), world.admin)
    return int(answer["result"])


def check_shape(dialect: Dialect, declared: str, value: Any) -> None:
    """The value is of the declared type with every field the class has in that dialect."""
    if declared == "void":
        assert value == {}
        return
    inner = re.fullmatch(r"List<(\w+)>", declared)
    if inner:
        assert isinstance(value, list)
        for item in value:
            check_shape(dialect, inner.group(1), item)
        return
    if declared in ("Long", "String"):
        assert isinstance(value, int if declared == "Long" else str)
        return
    if value == {}:  # a null result
        return
    expected = {"SDownloadResult": "SCheckoutResult"}.get(declared, declared)
    assert value["__type"] == expected
    assert set(value) == {"__type", *FIELDS[dialect][expected]}


def test_every_row_of_the_method_table_is_in_the_document() -> None:
    text = TABLE.read_text()
    for dialect, declared in ROWS:
        params = ", ".join(f"{p.name}: {p.type}" for p in declared.params)
        row = f"| {declared.interface}.{declared.name}({params}) | {declared.returns} |"
        assert row in text, f"{dialect}: no row {row}"
        assert declared.source in text


@pytest.mark.parametrize(
    ("world", "name"), [(d, m.name) for d, m in ROWS], indirect=["world"], ids=str
)
async def test_each_method_answers_with_its_declared_shape(world: World, name: str) -> None:
    declared = api.method(world.dialect, name)
    params = valid_params(world, name)
    if name in ("getDownloadData", "cleanupLongAction"):
        key = "actionId" if world.dialect is Dialect.BIMSIE1 else "topicId"
        params = {key: await started_download(world)}
    answer = await world.call(name, params, world.admin)
    assert "exception" not in answer, answer
    check_shape(world.dialect, declared.returns, answer["result"])


@pytest.mark.parametrize(("dialect", "name"), [(d, m.name) for d, m in ROWS if m.params])
async def test_each_missing_parameter_is_named(tmp_path: Path, dialect: Dialect, name: str) -> None:
    declared = api.method(dialect, name)
    async with BimServerEmulator(dialect) as emulator, aiohttp.ClientSession() as session:
        for missing in declared.params:
            params = {p.name: VALUE_OF[p.type] for p in declared.params if p is not missing}
            body = {
                "request": {"interface": declared.interface, "method": name, "parameters": params}
            }
            async with session.post(f"{emulator.url}/json", json=body) as response:
                answer = (await response.json())["response"]
            assert answer["exception"] == {
                "__type": "UserException",
                "message": f"Missing parameter: {name} -> {missing.name}",
            }


# A value of each parameter type that converts (an empty object is null).
VALUE_OF: dict[str, Any] = {
    "Long": 1,
    "String": "x",
    "Boolean": True,
    "Set<Long>": [1],
    "SProgressTopicType": "RUNNING_SERVICE",
    "SFile": {},
    "SExtendedData": {},
    "SLongActionState": {},
}

Case = tuple[str, Callable[[World], dict[str, Any]], str, str, str]

# (method, params, token: admin|service|none|bad, exception type [1.5], message start)
EXCEPTIONS: list[Case] = [
    (
        "getSerializerByName",
        lambda w: {"serializerName": "Nope"},
        "admin",
        "UserException",
        "No SerializerPluginConfiguration found where name = Nope",
    ),
    (
        "getSerializerByPluginClassName",
        lambda w: {"pluginClassName": "x.Y"},
        "admin",
        "UserException",
        "No plugin found with classname x.Y",
    ),
    (
        "getExtendedDataSchemaByName",
        lambda w: {"name": "NOPE"},
        "admin",
        "UserException",
        "No ExtendedDataSchema found where name = NOPE",
    ),
    (
        "getExtendedDataSchemaByNamespace",
        lambda w: {"namespace": "urn:x"},
        "admin",
        "UserException",
        "No ExtendedDataSchema found where namespace = urn:x",
    ),
    (
        "getProgress",
        lambda w: {"topicId": 999999},
        "none",
        "UserException",
        "No topic found with topicId 999999",
    ),
    (
        "getDownloadData",
        lambda w: {"topicId": 999999, "actionId": 999999},
        "none",
        "UserException",
        "No data found for topicId 999999",
    ),
    (
        "getRevision",
        lambda w: {"roid": 999999},
        "admin",
        "UserException",
        "Revision does not exist",
    ),
    (
        "getProjectByPoid",
        lambda w: {"poid": 999999},
        "admin",
        "UserException",
        "Project with oid 999999 does not exist",
    ),
    (
        "getAllRevisionsOfProject",
        lambda w: {"poid": w.poid},
        "service",
        "UserException",
        "Real authentication required (this session has token authentication)",
    ),
    (
        "getAllProjects",
        lambda w: {"onlyTopLevel": True, "onlyActive": True},
        "service",
        "UserException",
        "Real authentication required (this session has token authentication)",
    ),
    (
        "getRevision",
        lambda w: {"roid": w.roid},
        "none",
        "UserException",
        "Authentication required for this call",
    ),
    ("getRevision", lambda w: {"roid": w.roid}, "bad", "AuthenticationException", "Invalid token"),
    (
        "getProgress",
        lambda w: {"topicId": w.topic},
        "bad",
        "AuthenticationException",
        "Invalid token",
    ),
    (
        "getAllExtendedDataOfRevision",
        lambda w: {"roid": 999999},
        "none",
        "UserException",
        "No revision found with roid 999999",
    ),
    (
        "addExtendedDataToRevision",
        lambda w: {"roid": w.roid, "extendedData": {"__type": "SExtendedData", "fileId": 999999}},
        "admin",
        "NullPointerException",
        "java.lang.NullPointerException",
    ),
    (
        "addExtendedDataToRevision",
        lambda w: {"roid": w.roid, "extendedData": {"fileId": w.file_id}},
        "admin",
        "ConvertException",
        "Missing __type field in ",
    ),
    (
        "addExtendedDataToRevision",
        lambda w: {"roid": w.roid, "extendedData": {"__type": "SNothing"}},
        "admin",
        "ConvertException",
        "Unknown type: SNothing",
    ),
    (
        "uploadFile",
        lambda w: {"file": {"__type": "SExtendedData"}},
        "admin",
        "IllegalArgumentException",
        "argument type mismatch",
    ),
    (
        "registerProgressOnRevisionTopic",
        lambda w: {"type": "SOMETHING", "poid": 1, "roid": 1, "description": "d"},
        "none",
        "UnsupportedOperationException",
        '"SOMETHING"',
    ),
    (
        "download",
        lambda w: {**valid_params(w, "download"), "serializerOid": 5},
        "admin",
        "NullPointerException",
        "java.lang.NullPointerException",
    ),
]


@pytest.mark.parametrize(
    ("world", "name", "params", "who", "kind", "message"),
    [
        (dialect, *case)
        for dialect in DIALECTS
        for case in EXCEPTIONS
        if case[0] in {m.name for m in api.METHODS[dialect].values()}
    ],
    indirect=["world"],
)
async def test_each_listed_exception_has_its_type_and_message(
    world: World,
    name: str,
    params: Callable[[World], dict[str, Any]],
    who: str,
    kind: str,
    message: str,
) -> None:
    given = params(world)
    declared = api.method(world.dialect, name)
    given = {p.name: given[p.name] for p in declared.params if p.name in given}
    token = {"admin": world.admin, "service": world.service_token, "none": None}.get(who, "ab12")
    answer = await world.call(name, given, token)
    exception = answer["exception"]
    if kind == "AuthenticationException" and world.dialect is Dialect.BIMSIE1:
        kind = "UserException"  # 1.4's AuthenticationException is wrapped in a UserException
    assert exception["__type"] == kind
    assert exception["message"].startswith(message)


async def test_rights_of_a_notification_token_are_those_bimserver_grants(world: World) -> None:
    """ExplicitRightsAuthorization: download listed revisions, write extended data to the
    notified one, check in to the write project; nothing else."""
    other_poid = world.emulator.add_project("other")
    other = world.emulator.add_revision(other_poid, world.emulator.revisions[world.roid].path)
    token = world.emulator.issue_token(Grant(read_roids={world.roid}, checkin_poid=world.poid))
    params = valid_params(world, "download")
    key = "roid" if world.dialect is Dialect.BIMSIE1 else "roids"
    params[key] = other if key == "roid" else [other]
    refused = await world.call("download", params, token)
    assert refused["exception"]["message"] == "No rights to download revision"
    written = await world.call(
        "addExtendedDataToRevision", valid_params(world, "addExtendedDataToRevision"), token
    )
    expected = (
        "No rights to write extended data to revision"
        if world.dialect is Dialect.BIMSIE1
        else f"No rights to write extended data to revision ({world.roid}), has rights for -1"
    )
    assert written["exception"]["message"] == expected


async def test_a_download_stays_at_done_preparing_until_its_bytes_are_fetched(
    world: World,
) -> None:
    """LongStreamingDownloadAction.java:173 / LongDownloadAction.java:74, DownloadServlet."""
    topic = await started_download(world)
    progress = (await world.call("getProgress", {"topicId": topic}, world.admin))["result"]
    assert (progress["state"], progress["title"]) == ("STARTED", "Done preparing")
    key = "actionId" if world.dialect is Dialect.BIMSIE1 else "topicId"
    await world.call("getDownloadData", {key: topic}, world.admin)
    again = (await world.call("getProgress", {"topicId": topic}, world.admin))["result"]
    assert again["state"] == "STARTED"  # getDownloadData never finishes it
    query = {"token": world.admin, "topicId": str(topic)}
    if world.dialect is Dialect.BIMSIE1:
        query.update(longActionId=str(topic), serializerOid=str(serializer_oid(world)))
    async with world.session.get(f"{world.emulator.url}/download", params=query) as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"].startswith('inline; filename="')
        assert (await response.read()).startswith(b"ISO-10303-21;")
    done = (await world.call("getProgress", {"topicId": topic}, world.admin))["result"]
    assert (done["state"], done["progress"]) == ("FINISHED", 100)
    await world.call("cleanupLongAction", {key: topic}, world.admin)
    gone = await world.call("getProgress", {"topicId": topic}, world.admin)
    assert gone["exception"]["message"] == f"No topic found with topicId {topic}"


async def test_download_servlet_errors_are_not_json(world: World) -> None:
    unknown = {"topicId": "999999", "longActionId": "999999", "serializerOid": "1"}
    for params in ({"token": world.admin, **unknown}, unknown):  # unknown topic; no token
        async with world.session.get(f"{world.emulator.url}/download", params=params) as answer:
            assert answer.status == 500
            assert answer.content_type != "application/json"


async def test_batch_answers_are_bare_and_independent(world: World) -> None:
    interface = api.method(world.dialect, "getProjectByPoid").interface
    body = {
        "token": world.admin,
        "id": 7,
        "requests": [
            {
                "interface": interface,
                "method": "getProjectByPoid",
                "parameters": {"poid": world.poid},
            },
            {"interface": interface, "method": "getProjectByPoid", "parameters": {}},
        ],
    }
    async with world.session.post(f"{world.emulator.url}/json", json=body) as response:
        answer = await response.json()
    first, second = answer["responses"]
    assert first["result"]["name"] == "P"
    assert second["exception"]["message"] == "Missing parameter: getProjectByPoid -> poid"
    assert ("id" in answer) is (world.dialect is Dialect.BIMSERVER_15)  # 1.4 never echoes it


async def test_invalid_json_is_an_empty_http_500(world: World) -> None:
    async with world.session.post(f"{world.emulator.url}/json", data=b"{nope") as response:
        assert response.status == 500
        assert await response.read() == b""


async def test_interfaces_by_simple_or_qualified_name_and_the_wrong_dialect(world: World) -> None:
    declared = api.method(world.dialect, "getProjectByPoid")
    namespace = api.NAMESPACES[world.dialect][declared.interface]
    for interface in (declared.interface, f"{namespace}.{declared.interface}"):
        body = {
            "token": world.admin,
            "request": {
                "interface": interface,
                "method": "getProjectByPoid",
                "parameters": {"poid": str(world.poid)},
            },
        }
        async with world.session.post(f"{world.emulator.url}/json", json=body) as response:
            assert (await response.json())["response"]["result"]["oid"] == world.poid
    other = "ServiceInterface" if world.dialect is Dialect.BIMSIE1 else "Bimsie1ServiceInterface"
    answer = await world.call("getProjectByPoid", {"poid": world.poid}, world.admin)
    assert "result" in answer
    body = {"request": {"interface": other, "method": "download", "parameters": {}}}
    async with world.session.post(f"{world.emulator.url}/json", json=body) as response:
        message = (await response.json())["response"]["exception"]["message"]
    assert message.startswith(("No service found with name", "Method download not found on"))


async def test_the_stream_welcome_is_a_number(world: World) -> None:
    async with world.session.ws_connect(f"{world.emulator.url}/stream") as socket:
        welcome = await socket.receive_json()
        assert isinstance(welcome["welcome"], int)
        await socket.send_json({"token": world.admin})
        assert isinstance((await socket.receive_json())["endpointid"], int)


async def upload(world: World, fields: list[tuple[str, str]], *, file: bool = True) -> Any:
    form = aiohttp.FormData()
    for name, value in fields:
        form.add_field(name, value)
    if file:
        form.add_field("file", b"ISO-10303-21;", filename="x.ifc")
    async with world.session.post(f"{world.emulator.url}/upload", data=form) as response:
        assert response.status == 200
        return await response.json(content_type=None)


async def test_upload_servlet_answers_as_bimserver(world: World) -> None:
    """UploadServlet.java:70-195: fields parsed as they arrive, errors as JSON with HTTP 200."""
    base = [("token", world.admin), ("poid", str(world.poid)), ("comment", "c")]
    deserializer = str(next(iter(world.emulator.state.deserializers)))
    assert await upload(world, [*base, ("deserializerOid", "77")]) == {
        "exception": {"__type": "UserException", "message": "Deserializer with oid 77 not found"}
    }
    assert await upload(world, [("token", world.admin), ("poid", "x1")]) == {
        "exception": {"__type": "NumberFormatException", "message": 'For input string: "x1"'}
    }
    assert await upload(world, [("comment", "c")]) == {"exception": "No poid"}
    no_token = [("poid", str(world.poid)), ("deserializerOid", deserializer)]
    assert await upload(world, no_token) == {}  # acts only "if (token != null)"
    async with world.session.post(f"{world.emulator.url}/upload", data=b"x") as response:
        assert await response.json(content_type=None) == {}  # not multipart: nothing done
    checked_in = await upload(world, [*base, ("deserializerOid", deserializer), ("sync", "true")])
    if world.dialect is Dialect.BIMSIE1:
        assert set(checked_in) == {"checkinid"}
    else:
        check_shape(world.dialect, "SLongCheckinActionState", checked_in)
        assert checked_in["roid"] == world.emulator.projects[world.poid].revisions[-1]
