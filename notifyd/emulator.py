"""A small BIMserver for tests and plugin authors: enough of the JSON API, in the 1.4 or the
1.5+ dialect, to serve real IFC files to notifyd, take back what services write, and send
notifications the way BIMserver does. It is strict like BIMserver (every parameter required,
``__type`` checked, rights in the token) and lenient like it (short or fully qualified
interface names, any Content-Type, the token in the body or a Bearer header, string numbers and
booleans). Faults can be injected on demand.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from notifyd.records import Dialect
from notifyd.stepfile import header_schema

SERIALIZERS = {
    Dialect.BIMSERVER_15: [
        {"oid": 262182, "name": "Ifc2x3tc1 (Streaming)", "schema": "IFC2X3"},
        {"oid": 262183, "name": "Ifc4 (Streaming)", "schema": "IFC4"},
        {"oid": 262184, "name": "Ifc2x3tc1", "schema": "IFC2X3"},
        {"oid": 262185, "name": "Ifc4", "schema": "IFC4"},
    ],
    Dialect.BIMSIE1: [
        {"oid": 131, "name": "Ifc2x3tc1", "schema": "IFC2X3"},
        {"oid": 132, "name": "Ifc4", "schema": "IFC4"},
    ],
}
DESERIALIZER = {"oid": 327718, "name": "Ifc2x3tc1 (Streaming)", "extension": "ifc"}
EXTENDED_DATA_SCHEMAS = {
    851969: ("VALIDATION_JSON_1_0", "http://extend.bimserver.org/validationreport"),
    851970: ("IFC_ANALYTICS_JSON_1_0", "http://extend.bimserver.org/ifcanalytics"),
    851971: ("UNSTRUCTURED_UTF8_TEXT_1_0", "http://extend.bimserver.org/text"),
    851972: ("BCF_ZIP_2_0", "http://extend.bimserver.org/bcf20"),
}
INTERFACE_PREFIXES = ("org.bimserver.", "org.buildingsmart.bimsie1.")


class FaultKind(StrEnum):
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    SLOW = "slow"  # answer after ``delay`` seconds
    HTTP_404 = "http_404"
    DROP = "drop"  # close the connection without an answer
    DROP_AFTER = "drop_after"  # do the call, then close the connection without an answer
    TRUNCATE = "truncate"  # /download: announce the whole file, send half, close
    NO_DATA_FOR_TOPIC = "no_data_for_topic"
    EXPIRED_TOKEN = "expired_token"  # noqa: S105 - a fault name, not a secret
    EXCEPTION = "exception"  # a UserException with ``message``


@dataclass(slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    target: str  # "Interface.method", "method", "/download", "/upload" or "*"
    times: int = 1
    delay: float = 0.0
    message: str = "injected fault"

    def matches(self, target: str) -> bool:
        return self.times > 0 and (
            self.target in ("*", target) or target.endswith("." + self.target)
        )


@dataclass(slots=True, kw_only=True)
class Grant:
    """What a token issued with a notification allows, as ExplicitRightsAuthorization does."""

    read_roids: set[int]
    write_extended_data_roids: set[int]
    checkin_poid: int | None
    user: bool = False  # a logged-in user may do everything


@dataclass(slots=True, kw_only=True)
class EmulatedRevision:
    roid: int
    poid: int
    path: Path
    schema: str
    comment: str = ""
    extended_data: list[int] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class LongAction:
    id: int
    roid: int
    serializer_oid: int
    state: str = "STARTED"
    polls: int = 0


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
    soid: int
    url: str
    identifier: str
    profile: str
    descriptor: dict[str, Any]
    user_token: str | None


class _UserError(Exception):
    def __init__(self, message: str, exception_type: str = "UserException") -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type


class BimServerEmulator:
    def __init__(
        self,
        dialect: Dialect = Dialect.BIMSERVER_15,
        *,
        host: str = "127.0.0.1",
        username: str = "admin@bimserver.test",
        password: str = "admin",  # noqa: S107 - the emulator's test login
        data_dir: Path | None = None,
        progress_steps: int = 1,
    ) -> None:
        self.dialect = dialect
        self.host = host
        self.username = username
        self.password = password
        self.data_dir = data_dir
        self.progress_steps = progress_steps
        self.ids = itertools.count(1000)
        self.projects: dict[int, str] = {}
        self.revisions: dict[int, EmulatedRevision] = {}
        self.files: dict[int, dict[str, Any]] = {}
        self.extended_data: dict[int, dict[str, Any]] = {}
        self.long_actions: dict[int, LongAction] = {}
        self.topics: dict[int, ProgressTopic] = {}
        self.services: dict[int, RegisteredService] = {}
        self.checkins: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, Grant] = {}
        self.expired_tokens: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._session: aiohttp.ClientSession | None = None
        self._own_dir: Path | None = None
        self._methods = self._method_table()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=1024**3)
        app.router.add_post("/json", self._handle_json)
        app.router.add_route("*", "/download", self._handle_download)
        app.router.add_post("/upload", self._handle_upload)
        app.router.add_get("/stream", self._handle_stream)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession()
        if self.data_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="notifyd-emulator-"))
            self.data_dir = self._own_dir
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    async def __aenter__(self) -> BimServerEmulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- test and dev helpers --------------------------------------------------------------

    def add_project(self, name: str = "Project") -> int:
        poid = next(self.ids)
        self.projects[poid] = name
        return poid

    def add_revision(
        self, poid: int, path: Path, comment: str = "", *, schema: str | None = None
    ) -> int:
        """Store ``path`` as a revision; ``schema`` (default: the file's header) is what
        BIMserver would have recorded for it."""
        roid = next(self.ids)
        schema = schema or header_schema(path) or "IFC2X3"
        self.revisions[roid] = EmulatedRevision(
            roid=roid, poid=poid, path=path, schema=schema, comment=comment
        )
        return roid

    def inject(self, kind: FaultKind | str, target: str = "*", **kw: Any) -> Fault:
        fault = Fault(kind=FaultKind(kind), target=target, **kw)
        self.faults.append(fault)
        return fault

    def extended_data_of(self, roid: int) -> list[dict[str, Any]]:
        """What services wrote to the revision: each with its schema name and file bytes."""
        out = []
        for edid in self.revisions[roid].extended_data:
            entry = dict(self.extended_data[edid])
            entry["schema"] = EXTENDED_DATA_SCHEMAS[entry["schemaId"]][0]
            entry["data"] = self.files[entry["fileId"]]["data"]
            out.append(entry)
        return out

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for _, m, params in self.calls if m == method]

    def issue_token(self, grant: Grant) -> str:
        token = secrets.token_hex(32)
        self.tokens[token] = grant
        return token

    def expire_token(self, token: str) -> None:
        self.expired_tokens.add(token)

    async def add_service(
        self, service_url: str, identifier: str, profile: str = "default"
    ) -> RegisteredService:
        """Add an external service to a project, as BIMserver's UI does: getService first."""
        descriptor = await self.call_service(
            service_url, "getService", serviceIdentifier=identifier
        )
        profiles = await self.call_service(
            service_url, "getPublicProfiles", serviceIdentifier=identifier
        )
        if profile not in {p["identifier"] for p in profiles}:
            raise ValueError(f"service {identifier} has no public profile {profile}")
        soid = next(self.ids)
        service = RegisteredService(
            soid=soid,
            url=service_url.rstrip("/"),
            identifier=identifier,
            profile=profile,
            descriptor=descriptor,
            user_token=descriptor.get("token"),
        )
        self.services[soid] = service
        return service

    async def call_service(self, service_url: str, method: str, **parameters: Any) -> Any:
        body = {
            "request": {
                "interface": self._remote_interface,
                "method": method,
                "parameters": parameters,
            }
        }
        answer = await self._post_to_service(service_url, body)
        response = answer["response"]
        if "exception" in response:
            raise RuntimeError(response["exception"]["message"])
        return response.get("result")

    @property
    def _remote_interface(self) -> str:
        if self.dialect is Dialect.BIMSIE1:
            return "Bimsie1RemoteServiceInterface"
        return "RemoteServiceInterface"

    async def _post_to_service(self, service_url: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        content_type = (
            "text/plain; charset=UTF-8" if self.dialect is Dialect.BIMSIE1 else "application/json"
        )
        async with self._session.post(
            service_url.rstrip("/") + "/json",
            data=orjson.dumps(body),
            headers={"Content-Type": content_type},
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"Call unsuccessful, status code {response.status}")
            return await response.json(content_type=None)

    def token_for(self, service: RegisteredService, roid: int) -> str:
        revision = self.revisions[roid]
        d = service.descriptor
        return self.issue_token(
            Grant(
                read_roids={r.roid for r in self.revisions.values() if r.poid == revision.poid}
                if d.get("readRevision")
                else set(),
                write_extended_data_roids={roid}
                if d.get("writeExtendedData") or self.dialect is Dialect.BIMSERVER_15
                else set(),
                checkin_poid=revision.poid if d.get("writeRevision") else None,
            )
        )

    async def notify_new_revision(self, service: RegisteredService, roid: int) -> str:
        """POST newRevision as NewRevisionNotification does; returns the token it sent."""
        revision = self.revisions[roid]
        token = self.token_for(service, roid)
        await self._notify(
            service,
            "newRevision",
            {
                "poid": revision.poid,
                "roid": roid,
                "soid": service.soid,
                "serviceIdentifier": service.identifier,
                "profileIdentifier": service.profile,
                "userToken": service.user_token,
                "token": token,
                "apiUrl": self.url,
            },
        )
        return token

    async def notify_new_extended_data(
        self, service: RegisteredService, roid: int, edid: int
    ) -> None:
        """NEW_EXTENDED_DATA reaches a service as two posts: newExtendedDataOnRevision (with
        the notification's soid, -1), then newRevision."""
        revision = self.revisions[roid]
        token = self.token_for(service, roid)
        common = {
            "serviceIdentifier": service.identifier,
            "profileIdentifier": service.profile,
            "userToken": service.user_token,
            "token": token,
            "apiUrl": self.url,
        }
        await self._notify(
            service,
            "newExtendedDataOnRevision",
            {"poid": revision.poid, "roid": roid, "edid": edid, "soid": -1, **common},
        )
        await self._notify(
            service,
            "newRevision",
            {"poid": revision.poid, "roid": roid, "soid": service.soid, **common},
        )

    async def _notify(
        self, service: RegisteredService, method: str, params: dict[str, Any]
    ) -> None:
        body = {
            "request": {"interface": self._remote_interface, "method": method, "parameters": params}
        }
        answer = await self._post_to_service(service.url, body)
        if "exception" in answer.get("response", {}):
            raise RuntimeError(answer["response"]["exception"]["message"])

    # -- the JSON API --------------------------------------------------------------------

    def _take_fault(self, target: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(target):
                fault.times -= 1
                return fault
        return None

    async def _apply_transport_fault(
        self, request: web.Request, fault: Fault | None
    ) -> web.StreamResponse | None:
        if fault is None:
            return None
        if fault.kind is FaultKind.SLOW:
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind is FaultKind.HTTP_500:
            return web.Response(status=500, text="Internal Server Error")
        if fault.kind is FaultKind.HTTP_503:
            return web.Response(status=503, text="Service Unavailable")
        if fault.kind is FaultKind.HTTP_404:
            return web.Response(status=404, text="Not Found")
        if fault.kind is FaultKind.DROP:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return None

    async def _handle_json(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _json({"response": _exception("Invalid JSON")})
        token = document.get("token")
        auth = request.headers.get("Authorization", "")
        if token is None and auth.startswith("Bearer "):
            token = auth[7:]
        if "requests" in document:
            responses = []
            for item in document["requests"]:
                answer = await self._answer(request, item, token)
                if isinstance(answer, web.StreamResponse):
                    return answer
                responses.append({"response": answer})
            return _json({"responses": responses})
        answer = await self._answer(request, document.get("request") or {}, token)
        if isinstance(answer, web.StreamResponse):
            return answer
        body: dict[str, Any] = {"response": answer}
        if "id" in document:
            body["id"] = document["id"]
        return _json(body)

    async def _answer(
        self, request: web.Request, call: dict[str, Any], token: str | None
    ) -> dict[str, Any] | web.StreamResponse:
        interface = str(call.get("interface", ""))
        for prefix in INTERFACE_PREFIXES:
            if interface.startswith(prefix):
                interface = interface[len(prefix) :]
        method = str(call.get("method", ""))
        params = call.get("parameters") or {}
        self.calls.append((interface, method, params))
        fault = self._take_fault(f"{interface}.{method}")
        early = await self._apply_transport_fault(request, fault)
        if early is not None:
            return early
        entry = self._methods.get((interface, method))
        if entry is None:
            return _exception(f"Method {interface}.{method} not found")
        required, handler, needs_auth = entry
        for name in required:
            if name not in params:
                return _exception(f"Missing parameter: {method} -> {name}")
        try:
            if fault is not None and fault.kind is FaultKind.EXCEPTION:
                raise _UserError(fault.message)
            if fault is not None and fault.kind is FaultKind.NO_DATA_FOR_TOPIC:
                raise _UserError(
                    f"No data found for topicId {params.get('topicId', params.get('actionId'))}"
                )
            grant = self._authorise(token, fault) if needs_auth else None
            result = handler(params, grant)
            if asyncio.iscoroutine(result):
                result = await result
        except _UserError as exc:
            return _exception(exc.message, exc.exception_type)
        if fault is not None and fault.kind is FaultKind.DROP_AFTER:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return {"result": {} if result is None else result}

    def _authorise(self, token: str | None, fault: Fault | None) -> Grant:
        if fault is not None and fault.kind is FaultKind.EXPIRED_TOKEN:
            raise _UserError("Token expired")
        if not token:
            raise _UserError("Not authenticated")
        if token in self.expired_tokens:
            raise _UserError("Token expired")
        grant = self.tokens.get(token)
        if grant is None:
            raise _UserError("Invalid token")
        return grant

    def _method_table(
        self,
    ) -> dict[tuple[str, str], tuple[tuple[str, ...], Callable[..., Any], bool]]:
        bimsie1 = self.dialect is Dialect.BIMSIE1
        service = "Bimsie1ServiceInterface" if bimsie1 else "ServiceInterface"
        notifications = (
            "Bimsie1NotificationRegistryInterface" if bimsie1 else "NotificationRegistryInterface"
        )
        auth = "Bimsie1AuthInterface" if bimsie1 else "AuthInterface"
        action_key = "actionId" if bimsie1 else "topicId"
        table: dict[tuple[str, str], tuple[tuple[str, ...], Callable[..., Any], bool]] = {
            ("MetaInterface", "getServiceInterfaces"): ((), self._service_interfaces, False),
            (auth, "login"): (("username", "password"), self._login, False),
            (service, "getSerializerByName"): (("serializerName",), self._serializer_by_name, True),
            (service, "getSerializerByContentType"): (
                ("contentType",),
                self._serializer_by_content_type,
                True,
            ),
            (service, "getDownloadData"): ((action_key,), self._download_data, True),
            ("ServiceInterface", "cleanupLongAction"): ((action_key,), self._cleanup, True),
            ("ServiceInterface", "uploadFile"): (("file",), self._upload_file, True),
            (service, "addExtendedDataToRevision"): (
                ("roid", "extendedData"),
                self._add_extended_data,
                True,
            ),
            (service, "getSuggestedDeserializerForExtension"): (
                ("extension", "poid"),
                self._deserializer,
                True,
            ),
            (service, "getRevision"): (("roid",), self._get_revision, True),
            ("ServiceInterface", "getAllExtendedDataSchemas"): ((), self._all_schemas, True),
            (service, "getProjectByPoid"): (("poid",), self._get_project, True),
            (service, "getAllRevisionsOfProject"): (("poid",), self._revisions_of_project, True),
            (service, "getAllExtendedDataOfRevision"): (
                ("roid",),
                self._extended_data_of_revision,
                True,
            ),
            (service, "getExtendedData"): (("oid",), self._get_extended_data, True),
            (service, "getFile"): (("fileId",), self._get_file, True),
            (notifications, "getProgress"): (("topicId",), self._progress, True),
            (notifications, "registerProgressOnRevisionTopic"): (
                ("type", "poid", "roid", "description"),
                self._register_topic,
                True,
            ),
            (notifications, "updateProgressTopic"): (
                ("topicId", "state"),
                self._update_topic,
                True,
            ),
            (notifications, "unregisterProgressTopic"): (
                ("topicId",),
                self._unregister_topic,
                True,
            ),
        }
        if bimsie1:
            table[(service, "download")] = (
                ("roid", "serializerOid", "showOwn", "sync"),
                self._download_1_4,
                True,
            )
            table[(service, "getExtendedDataSchemaByNamespace")] = (
                ("namespace",),
                self._schema_by_namespace,
                True,
            )
        else:
            table[(service, "download")] = (
                ("roids", "query", "serializerOid", "sync"),
                self._download_1_5,
                True,
            )
            table[(service, "getExtendedDataSchemaByName")] = (
                ("name",),
                self._schema_by_name,
                True,
            )
        return table

    # -- method implementations ------------------------------------------------------------

    def _service_interfaces(self, _params: dict[str, Any], _grant: None) -> list[dict[str, str]]:
        if self.dialect is Dialect.BIMSIE1:
            names = [
                ("Bimsie1AuthInterface", "org.buildingsmart.bimsie1.Bimsie1AuthInterface"),
                ("Bimsie1ServiceInterface", "org.buildingsmart.bimsie1.Bimsie1ServiceInterface"),
                (
                    "Bimsie1NotificationRegistryInterface",
                    "org.buildingsmart.bimsie1.Bimsie1NotificationRegistryInterface",
                ),
                ("ServiceInterface", "org.bimserver.ServiceInterface"),
                ("MetaInterface", "org.bimserver.MetaInterface"),
            ]
        else:
            names = [
                (n, f"org.bimserver.{n}")
                for n in (
                    "AuthInterface",
                    "ServiceInterface",
                    "NotificationRegistryInterface",
                    "MetaInterface",
                    "AdminInterface",
                )
            ]
        return [{"simpleName": s, "name": n} for s, n in names]

    def _login(self, params: dict[str, Any], _grant: None) -> str:
        if params["username"] != self.username or params["password"] != self.password:
            raise _UserError("Invalid username/password combination")
        return self.issue_token(
            Grant(read_roids=set(), write_extended_data_roids=set(), checkin_poid=None, user=True)
        )

    def _serializer(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        for serializer in SERIALIZERS[self.dialect]:
            if match(serializer):
                return {
                    "__type": "SSerializerPluginConfiguration",
                    "oid": serializer["oid"],
                    "rid": 0,
                    "name": serializer["name"],
                    "enabled": True,
                    "streaming": "Streaming" in str(serializer["name"]),
                }
        return None

    def _serializer_by_name(self, params: dict[str, Any], _g: Grant) -> dict[str, Any] | None:
        return self._serializer(lambda s: s["name"] == params["serializerName"])

    def _serializer_by_content_type(
        self, params: dict[str, Any], _g: Grant
    ) -> dict[str, Any] | None:
        # Like BIMserver: the first match, whatever its schema.
        if params["contentType"] != "application/ifc":
            return None
        return self._serializer(lambda s: True)

    def _revision(self, roid: Any) -> EmulatedRevision:
        revision = self.revisions.get(_int(roid, "roid"))
        if revision is None:
            raise _UserError(f"No revision found with roid {roid}")
        return revision

    def _start_download(self, roid: int, serializer_oid: Any, grant: Grant) -> int:
        revision = self._revision(roid)
        if not grant.user and revision.roid not in grant.read_roids:
            raise _UserError("No rights to download revision")
        oid = _int(serializer_oid, "serializerOid")
        if oid not in {s["oid"] for s in SERIALIZERS[self.dialect]}:
            raise _UserError(f"No serializer with oid {oid}")
        action = LongAction(id=next(self.ids), roid=revision.roid, serializer_oid=oid)
        self.long_actions[action.id] = action
        return action.id

    def _download_1_5(self, params: dict[str, Any], grant: Grant) -> int:
        roids = params["roids"]
        if not isinstance(roids, list) or len(roids) != 1:
            raise _UserError("roids must be a list with one roid")
        _bool(params["sync"], "sync")
        if not isinstance(params["query"], str):
            raise _UserError("query must be a string")
        return self._start_download(roids[0], params["serializerOid"], grant)

    def _download_1_4(self, params: dict[str, Any], grant: Grant) -> int:
        _bool(params["sync"], "sync")
        _bool(params["showOwn"], "showOwn")
        return self._start_download(params["roid"], params["serializerOid"], grant)

    def _action(self, action_id: Any) -> LongAction:
        action = self.long_actions.get(_int(action_id, "topicId"))
        if action is None:
            raise _UserError(f"No data found for topicId {action_id}")
        return action

    def _progress(self, params: dict[str, Any], _g: Grant) -> dict[str, Any]:
        action = self._action(params["topicId"])
        action.polls += 1
        if action.polls >= self.progress_steps:
            action.state = "FINISHED"
        progress = (
            100 if action.state == "FINISHED" else int(100 * action.polls / self.progress_steps)
        )
        return {
            "__type": "SLongActionState",
            "state": action.state,
            "progress": progress,
            "title": "Downloading",
            "stage": 0,
            "start": int(time.time() * 1000),
            "errors": [],
            "warnings": [],
            "infos": [],
        }

    def _download_data(self, params: dict[str, Any], _g: Grant) -> dict[str, Any]:
        action = self._action(params.get("topicId", params.get("actionId")))
        revision = self.revisions[action.roid]
        return {
            "__type": "SCheckoutResult",
            "projectName": self.projects.get(revision.poid, "Project"),
            "revisionNr": 1,
            "serializerOid": action.serializer_oid,
            "file": base64.b64encode(revision.path.read_bytes()).decode(),
        }

    def _cleanup(self, params: dict[str, Any], _g: Grant) -> None:
        self.long_actions.pop(_int(params.get("topicId", params.get("actionId")), "topicId"), None)

    def _schema(self, match: Callable[[str, str], bool]) -> dict[str, Any] | None:
        for oid, (name, namespace) in EXTENDED_DATA_SCHEMAS.items():
            if match(name, namespace):
                schema: dict[str, Any] = {
                    "__type": "SExtendedDataSchema",
                    "oid": oid,
                    "rid": 0,
                    "name": name,
                }
                if self.dialect is Dialect.BIMSIE1:
                    schema.update({"namespace": namespace, "validate": False, "type": "JSON"})
                else:
                    schema["contentType"] = "application/json"
                return schema
        return None

    def _all_schemas(self, _params: dict[str, Any], _g: Grant) -> list[dict[str, Any]]:
        names = {name for name, _ in EXTENDED_DATA_SCHEMAS.values()}
        found = [self._schema_named(name) for name in sorted(names)]
        return [schema for schema in found if schema is not None]

    def _schema_named(self, wanted: str) -> dict[str, Any] | None:
        return self._schema(lambda name, _ns: name == wanted)

    def _schema_by_name(self, params: dict[str, Any], _g: Grant) -> dict[str, Any] | None:
        return self._schema_named(params["name"])

    def _schema_by_namespace(self, params: dict[str, Any], _g: Grant) -> dict[str, Any] | None:
        return self._schema(lambda _name, ns: ns == params["namespace"])

    def _upload_file(self, params: dict[str, Any], _g: Grant) -> int:
        file = params["file"]
        _require_type(file, "SFile")
        data = base64.b64decode(file.get("data") or "")
        file_id = next(self.ids)
        self.files[file_id] = {
            "data": data,
            "filename": file.get("filename"),
            "mime": file.get("mime"),
            "size": len(data),
        }
        return file_id

    def _add_extended_data(self, params: dict[str, Any], grant: Grant) -> None:
        revision = self._revision(params["roid"])
        if not grant.user and revision.roid not in grant.write_extended_data_roids:
            raise _UserError("No rights to write extended data to revision")
        extended = params["extendedData"]
        _require_type(extended, "SExtendedData")
        file_id = _int(extended.get("fileId", -1), "fileId")
        if file_id not in self.files:
            raise _UserError(f"No file with id {file_id}")
        schema_id = _int(extended.get("schemaId", -1), "schemaId")
        if schema_id not in EXTENDED_DATA_SCHEMAS:
            raise _UserError(f"No extended data schema with id {schema_id}")
        edid = next(self.ids)
        self.extended_data[edid] = {
            "__type": "SExtendedData",
            "oid": edid,
            "rid": 0,
            "title": extended.get("title"),
            "schemaId": schema_id,
            "fileId": file_id,
            "size": self.files[file_id]["size"],
            "added": int(time.time() * 1000),
            "revisionId": revision.roid,
            "projectId": revision.poid,
        }
        revision.extended_data.append(edid)

    def _extended_data_of_revision(self, params: dict[str, Any], _g: Grant) -> list[dict[str, Any]]:
        revision = self._revision(params["roid"])
        return [self.extended_data[edid] for edid in revision.extended_data]

    def _get_extended_data(self, params: dict[str, Any], _g: Grant) -> dict[str, Any]:
        edid = _int(params["oid"], "oid")
        if edid not in self.extended_data:
            raise _UserError(f"No extended data with oid {edid}")
        return self.extended_data[edid]

    def _get_file(self, params: dict[str, Any], _g: Grant) -> dict[str, Any]:
        file_id = _int(params["fileId"], "fileId")
        file = self.files.get(file_id)
        if file is None:
            raise _UserError(f"No file with id {file_id}")
        return {
            "__type": "SFile",
            "oid": file_id,
            "rid": 0,
            "data": base64.b64encode(file["data"]).decode(),
            "filename": file["filename"],
            "mime": file["mime"],
            "size": file["size"],
        }

    def _deserializer(self, params: dict[str, Any], grant: Grant) -> dict[str, Any] | None:
        poid = _int(params["poid"], "poid")
        if poid not in self.projects:
            raise _UserError(f"No project found with poid {poid}")
        if str(params["extension"]).lower() != DESERIALIZER["extension"]:
            return None
        return {"__type": "SDeserializerPluginConfiguration", "rid": 0, **DESERIALIZER}

    def _get_revision(self, params: dict[str, Any], grant: Grant) -> dict[str, Any]:
        revision = self._revision(params["roid"])
        answer: dict[str, Any] = {
            "__type": "SRevision",
            "oid": revision.roid,
            "rid": 0,
            "projectId": revision.poid,
            "comment": revision.comment,
            "extendedData": list(revision.extended_data),
        }
        if self.dialect is Dialect.BIMSERVER_15:
            answer["schema"] = (
                "ifc2x3tc1" if revision.schema == "IFC2X3" else revision.schema.lower()
            )
        return answer

    def _revisions_of_project(self, params: dict[str, Any], grant: Grant) -> list[dict[str, Any]]:
        poid = _int(params["poid"], "poid")
        if poid not in self.projects:
            raise _UserError(f"No project found with poid {poid}")
        return [
            self._get_revision({"roid": r.roid}, grant)
            for r in self.revisions.values()
            if r.poid == poid
        ]

    def _get_project(self, params: dict[str, Any], _g: Grant) -> dict[str, Any]:
        poid = _int(params["poid"], "poid")
        if poid not in self.projects:
            raise _UserError(f"No project found with poid {poid}")
        schemas = {r.schema for r in self.revisions.values() if r.poid == poid} or {"IFC2X3"}
        schema = sorted(schemas)[0]
        return {
            "__type": "SProject",
            "oid": poid,
            "rid": 0,
            "name": self.projects[poid],
            "schema": "ifc2x3tc1" if schema == "IFC2X3" else schema.lower(),
        }

    def _register_topic(self, params: dict[str, Any], _g: Grant) -> int:
        if params["type"] not in ("DOWNLOAD", "UPLOAD", "RUNNING_SERVICE", "BRANCH"):
            raise _UserError(f"Unknown SProgressTopicType {params['type']}")
        topic = ProgressTopic(
            id=next(self.ids),
            poid=_int(params["poid"], "poid"),
            roid=_int(params["roid"], "roid"),
            type=params["type"],
            description=str(params["description"]),
        )
        self.topics[topic.id] = topic
        return topic.id

    def _topic(self, topic_id: Any) -> ProgressTopic:
        topic = self.topics.get(_int(topic_id, "topicId"))
        if topic is None or topic.unregistered:
            raise _UserError(f"No topic with id {topic_id}")
        return topic

    def _update_topic(self, params: dict[str, Any], _g: Grant) -> None:
        state = params["state"]
        _require_type(state, "SLongActionState")
        if state.get("state") not in ("UNKNOWN", "STARTED", "AS_ERROR", "FINISHED"):
            raise _UserError(f"Unknown SActionState {state.get('state')}")
        self._topic(params["topicId"]).states.append(state)

    def _unregister_topic(self, params: dict[str, Any], _g: Grant) -> None:
        self._topic(params["topicId"]).unregistered = True

    # -- raw servlets ----------------------------------------------------------------------

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        fault = self._take_fault("/download")
        early = await self._apply_transport_fault(request, fault)
        if early is not None:
            return early
        try:
            self._authorise(query.get("token"), fault)
            if self.dialect is Dialect.BIMSIE1:
                if "longActionId" not in query or "serializerOid" not in query:
                    raise _UserError("longActionId and serializerOid are required")
                action = self._action(query["longActionId"])
            else:
                action = self._action(query.get("topicId"))
        except _UserError as exc:
            return _json({"exception": {"__type": "UserException", "message": exc.message}})
        revision = self.revisions[action.roid]
        size = revision.path.stat().st_size
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/ifc",
                "Content-Disposition": f'inline; filename="{revision.path.name}"',
                "Content-Length": str(size),
            }
        )
        await response.prepare(request)
        limit = size // 2 if fault is not None and fault.kind is FaultKind.TRUNCATE else size
        sent = 0
        with revision.path.open("rb") as handle:
            while sent < limit:
                chunk = handle.read(min(1 << 20, limit - sent))
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
        if sent < size:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        """The websocket bimserverapi opens after login: welcome, token, endpoint id."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"welcome": {"version": "emulated"}})
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            document = orjson.loads(message.data)
            if "token" in document:
                await socket.send_json({"endpointid": next(self.ids)})
        return socket

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("/upload")
        early = await self._apply_transport_fault(request, fault)
        if early is not None:
            return early
        reader = await request.multipart()
        fields: dict[str, str] = {}
        data = b""
        filename = ""
        while (part := await reader.next()) is not None:
            if part.name == "file":  # type: ignore[union-attr]
                missing = {"token", "poid", "deserializerOid"} - set(fields)
                if missing:
                    return _json(
                        {
                            "exception": {
                                "__type": "UserException",
                                "message": "Fields must come before the file; missing "
                                + ", ".join(sorted(missing)),
                            }
                        }
                    )
                filename = part.filename or "upload.ifc"  # type: ignore[union-attr]
                data = await part.read()  # type: ignore[union-attr]
            else:
                fields[part.name or ""] = (await part.read()).decode()  # type: ignore[union-attr]
        try:
            grant = self._authorise(fields.get("token"), fault)
            poid = _int(fields.get("poid"), "poid")
            if not grant.user and grant.checkin_poid != poid:
                raise _UserError("No rights to checkin to this project")
            if _int(fields.get("deserializerOid"), "deserializerOid") != DESERIALIZER["oid"]:
                raise _UserError("No deserializer with that oid")
        except _UserError as exc:
            return _json({"exception": {"__type": "UserException", "message": exc.message}})
        assert self.data_dir is not None
        path = self.data_dir / f"checkin-{next(self.ids)}-{Path(filename).name}"
        path.write_bytes(data)
        roid = self.add_revision(poid, path, comment=fields.get("comment", ""))
        self.checkins.append(
            {
                "poid": poid,
                "roid": roid,
                "comment": fields.get("comment"),
                "fields": dict(fields),
                "bytes": len(data),
            }
        )
        if fault is not None and fault.kind is FaultKind.DROP_AFTER:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if self.dialect is Dialect.BIMSIE1:
            return _json({"checkinid": next(self.ids)})
        return _json(
            {
                "__type": "SLongCheckinActionState",
                "state": "FINISHED",
                "roid": roid,
                "progress": 100,
                "errors": [],
                "warnings": [],
                "infos": [],
            }
        )


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _exception(message: str, exception_type: str = "UserException") -> dict[str, Any]:
    return {"exception": {"__type": exception_type, "message": message}}


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _UserError(f"{name} must be a number, not {value!r}") from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _UserError(f"{name} must be a boolean, not {value!r}")


def _require_type(value: Any, type_name: str) -> None:
    if not isinstance(value, dict) or not value:
        raise _UserError(f"Expected a {type_name} object")
    if "__type" not in value:
        raise _UserError("Missing __type field")
    if value["__type"] != type_name:
        raise _UserError(f"Expected __type {type_name}, got {value['__type']}")
