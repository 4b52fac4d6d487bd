"""The emulated servlets: ``/json`` (JsonApiServlet + JsonHandler), ``/download``
(DownloadServlet), ``/upload`` (UploadServlet) and ``/stream`` (Streamer)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from notifyd.emulator.api import ApiError, JsonApi
from notifyd.emulator.faults import FaultKind, FaultPlan, drop, transport_fault
from notifyd.emulator.state import EmulatedRevision, ServerState, StoredFile
from notifyd.protocol.bimserver import envelope
from notifyd.protocol.bimserver.sobjects import sobject
from notifyd.records import Dialect

CallLog = list[tuple[str, str, dict[str, Any]]]


class Servlets:
    def __init__(
        self,
        state: ServerState,
        json_api: JsonApi,
        faults: FaultPlan,
        calls: CallLog,
        *,
        data_dir: Callable[[], Path],
        on_checkin: Callable[[EmulatedRevision, dict[str, str], int], Awaitable[None]],
    ) -> None:
        self.state = state
        self.api = json_api
        self.dialect = state.dialect
        self.faults = faults
        self.calls = calls
        self.data_dir = data_dir
        self.on_checkin = on_checkin

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/json", self.json)
        app.router.add_route("*", "/download", self.download)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/stream", self.stream)

    # -- /json -----------------------------------------------------------------------------

    async def json(self, request: web.Request) -> web.StreamResponse:
        """JsonApiServlet.java:47-75: a body that is not a JSON object is HTTP 500, empty."""
        try:
            document = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=500)
        if not isinstance(document, dict):
            return web.Response(status=500)
        token = document.get("token")
        token = None if token is None else str(token)
        if token is None:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer ") and self.dialect is Dialect.BIMSERVER_15:
                token = auth[7:]  # JsonHandler.getServiceMap: OAuthAccessResourceRequest
        body: dict[str, Any] = {}
        if self.dialect is Dialect.BIMSERVER_15 and "id" in document:
            message_id = _as_long(document["id"])
            if message_id != -1:
                body["id"] = message_id
        if "request" in document:
            element = await self._one(request, document["request"], token)
            if isinstance(element, web.StreamResponse):
                return element
            body["response"] = element
        elif "requests" in document:
            requests = document["requests"]
            if not isinstance(requests, list):
                body["response"] = self._exception(
                    "java.lang.ClassCastException", "ClassCastException"
                )
            else:
                responses = []
                for item in requests:
                    element = await self._one(request, item, token)
                    if isinstance(element, web.StreamResponse):
                        return element
                    responses.append(element)
                body["responses"] = responses
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _one(
        self, request: web.Request, call: Any, token: str | None
    ) -> dict[str, Any] | web.StreamResponse:
        raw = call if isinstance(call, dict) else {}
        interface = str(raw.get("interface", "")).rsplit(".", 1)[-1]
        method = str(raw.get("method", ""))
        given = raw.get("parameters")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        self.calls.append((interface, method, params))
        fault = self.faults.take(f"{interface}.{method}")
        early = await transport_fault(request, fault)
        if early is not None:
            return early
        try:
            declared, converted = self.api.resolve(call)
            if fault is not None and fault.kind is FaultKind.EXCEPTION:
                raise ApiError(fault.message, fault.exception_type)
            if fault is not None and fault.kind is FaultKind.NO_DATA_FOR_TOPIC:
                topic = converted.get("topicId", converted.get("actionId"))
                raise ApiError(f"No data found for topicId {topic}")
            if fault is not None and fault.kind is FaultKind.EXPIRED_TOKEN:
                raise ApiError("This token has expired", self._auth_type())
            grant = self.api.authenticate(token, declared.name)
            result = self.api.invoke(declared, converted, grant)
        except ApiError as exc:
            return self._exception(exc.message, exc.exception_type, exc.error_code)
        if fault is not None and fault.kind is FaultKind.DROP_AFTER:
            drop(request)
        return {"result": {} if result is None else result}

    def _auth_type(self) -> str:
        return (
            "AuthenticationException" if self.dialect is Dialect.BIMSERVER_15 else "UserException"
        )

    def _exception(
        self,
        message: str,
        exception_type: str = "UserException",
        error_code: tuple[str, int] | None = None,
    ) -> dict[str, Any]:
        return {
            "exception": envelope.exception_object(
                self.dialect, exception_type, message, error_code
            )
        }

    # -- /download -------------------------------------------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        """DownloadServlet.java:72-285. Its errors are never JSON: a ServiceException is
        printed through getWriter after getOutputStream was taken, which Jetty refuses, so
        the answer is a 500; a missing topicId leaves an empty 200."""
        fault = self.faults.take("/download")
        early = await transport_fault(request, fault)
        if early is not None:
            return early
        query = request.query
        try:
            if self.api.authenticate(query.get("token"), "download") is None:
                # getServiceFactory().get(null token) fails (DownloadServlet.java:95)
                raise ApiError("Token required")
            if self.dialect is Dialect.BIMSIE1:
                if "serializerOid" not in query:
                    raise ApiError("No SerializerPluginConfiguration found where name = null")
                raw_id = query.get("longActionId")
            else:
                raw_id = query.get("topicId")
            if raw_id is None:
                return web.Response(status=200)
            action = self.api.action(int(raw_id))
            if action is None:
                raise ApiError(f"No data found for topicId {raw_id}")
        except (ApiError, ValueError) as exc:
            return web.Response(status=500, text=f"Error 500 {exc}", content_type="text/html")
        while action.title == "Starting download":  # getCheckoutResult waits for the data
            await asyncio.sleep(0.01)
            self.api.action(action.id)
        revision = self.state.revisions[action.roid]
        size = revision.path.stat().st_size
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/ifc",
                "Content-Disposition": f'inline; filename="{revision.path.stem}.ifc"',
            }
        )
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
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
        # [1.5] always; [1.4] only when given the topicId (its progress topic).
        if self.dialect is Dialect.BIMSERVER_15 or query.get("topicId") == str(action.id):
            action.state, action.title, action.progress = "FINISHED", "Done", 100
        await response.write_eof()
        return response

    # -- /upload ---------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """UploadServlet: fields are read as they come, the file acts on what came before it;
        errors are ``{"exception": {__type, message}}`` with HTTP 200 and text/json."""
        fault = self.faults.take("/upload")
        early = await transport_fault(request, fault)
        if early is not None:
            return early
        fields: dict[str, str] = {}
        result: dict[str, Any] = {}
        try:
            if not request.content_type.startswith("multipart/"):
                # isMultipartContent is false: nothing is done, the answer is {} (line 75).
                return web.Response(body=b"{}", content_type="text/json")
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                if part.filename is None:
                    name = part.name or ""
                    fields[name] = (await part.read()).decode("utf-8", "replace")
                    if name in ("poid", "topicId", "deserializerOid"):
                        _parse_long(fields[name])  # Long.parseLong as each field arrives
                    continue
                data = await part.read()
                if fields.get("action") == "file":
                    result = self._upload_file(fields, part, data)
                elif "poid" in fields:
                    result = await self._checkin(fields, part.filename, data)
                else:
                    result = {"exception": "No poid"}
        except ApiError as exc:
            result = {"exception": {"__type": exc.exception_type, "message": exc.message}}
        except ValueError:  # a broken multipart body: FileUploadException in BIMserver
            result = {
                "exception": {
                    "__type": "MalformedStreamException",
                    "message": "Stream ended unexpectedly",
                }
            }
        if fault is not None and fault.kind is FaultKind.DROP_AFTER:
            drop(request)
        return web.Response(body=orjson.dumps(result), content_type="text/json")

    def _upload_file(
        self, fields: dict[str, str], part: aiohttp.BodyPartReader, data: bytes
    ) -> dict[str, Any]:
        self.api.authenticate(fields.get("token"), "uploadFile")
        file_id = self.state.new_id()
        self.state.files[file_id] = StoredFile(
            data=data, filename=part.filename, mime=part.headers.get("Content-Type")
        )
        return {"fileId": file_id}

    async def _checkin(self, fields: dict[str, str], filename: str, data: bytes) -> dict[str, Any]:
        poid = _parse_long(fields["poid"])
        deserializer = _parse_long(fields.get("deserializerOid", "-1"))
        if fields.get("token") is None:
            return {}  # UploadServlet.java:138 acts only "if (token != null)"
        grant = self.api.authenticate(fields.get("token"), "checkin")
        assert grant is not None
        if not grant.user and grant.checkin_poid != poid:
            if self.dialect is Dialect.BIMSIE1:
                raise ApiError("No rights to checkin to this project")
            raise ApiError(
                f"No rights to checkin to this project ({poid}, {grant.checkin_poid or -1})"
            )
        if poid not in self.state.projects:
            raise ApiError(f"Project with oid {poid} does not exist")
        if deserializer not in self.state.deserializers:
            raise ApiError(f"Deserializer with oid {deserializer} not found")  # ServiceImpl:1176
        path = self.data_dir() / f"checkin-{self.state.new_id()}-{Path(filename).name}"
        path.write_bytes(data)
        revision = self.state.add_revision(
            poid, path, fields.get("comment", ""), service_id=grant.soid
        )
        topic_id = _parse_long(fields.get("topicId", "-1"))
        if topic_id == -1:
            topic_id = self.state.new_id()
        await self.on_checkin(revision, fields, len(data))
        if self.dialect is Dialect.BIMSIE1:
            return {"checkinid": topic_id}
        if fields.get("sync") != "true":
            return {"topicId": topic_id}
        return sobject(
            self.dialect,
            "SLongCheckinActionState",
            state="FINISHED",
            title="Done",
            progress=100,
            roid=revision.roid,
            topicId=topic_id,
            start=int(time.time() * 1000),
            end=int(time.time() * 1000),
        )

    # -- /stream ---------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Streamer.java:91-93: the welcome is the server's time in ms; the client answers
        with its token and gets an endpoint id (lines 227-238)."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"welcome": int(time.time() * 1000)})
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                document = orjson.loads(message.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(document, dict) and "token" in document:
                await socket.send_json({"endpointid": self.state.new_id()})
        return socket


def _parse_long(text: str) -> int:
    """Java's ``Long.parseLong``, failing with its NumberFormatException and message."""
    if re.fullmatch(r"[+-]?\d+", text) is None:
        raise ApiError(f'For input string: "{text}"', "NumberFormatException")
    return int(text)


def _as_long(value: Any) -> int:
    """Jackson's ``asLong``: numbers as they are, numeric text parsed, anything else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0
