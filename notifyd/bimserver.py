"""The client the worker uses to call BIMserver back, in its 1.4 or its 1.5+ dialect.

Every BIMserver exception becomes a ``BimServerError`` with BIMserver's message; connection
problems, timeouts and 5xx answers become ``BimServerUnavailable`` (retried). Models are
streamed to disk through the raw ``/download`` servlet; nothing holds a whole model in memory
except the base64 ``getDownloadData`` fallback, which BIMserver's JSON API leaves no way round.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog

from notifyd.errors import BimServerError, BimServerUnavailable, PermanentError
from notifyd.records import Dialect
from notifyd.stepfile import header_schema

log = structlog.get_logger("notifyd.bimserver")

CHUNK = 1 << 20

# Serializer names BIMserver ships, most preferred first, by IFC schema of the revision.
SERIALIZER_NAMES = {
    "IFC2X3": ("Ifc2x3tc1 (Streaming)", "Ifc2x3tc1"),
    "IFC4": ("Ifc4 (Streaming)", "Ifc4"),
}
SCHEMA_NAME_OF_IFC = {"IFC2X3": "IFC_STEP_2X3TC1", "IFC4": "IFC_STEP_4", "IFC4X3": "IFC_STEP_4X3"}

# BIMserver 1.4 finds extended data schemas by namespace, not by name.
EXTENDED_DATA_NAMESPACES = {
    "VALIDATION_JSON_1_0": "http://extend.bimserver.org/validationreport",
    "IFC_ANALYTICS_JSON_1_0": "http://extend.bimserver.org/ifcanalytics",
    "UNSTRUCTURED_UTF8_TEXT_1_0": "http://extend.bimserver.org/text",
}


@dataclass(frozen=True, slots=True)
class Interfaces:
    """Where each method lives in a dialect."""

    service: str  # serializers, download, extended data, checkin, revisions
    plain_service: str  # uploadFile, cleanupLongAction
    notifications: str  # progress topics
    meta: str = "MetaInterface"


INTERFACES = {
    Dialect.BIMSIE1: Interfaces(
        service="Bimsie1ServiceInterface",
        plain_service="ServiceInterface",
        notifications="Bimsie1NotificationRegistryInterface",
    ),
    Dialect.BIMSERVER_15: Interfaces(
        service="ServiceInterface",
        plain_service="ServiceInterface",
        notifications="NotificationRegistryInterface",
    ),
}


@dataclass(frozen=True, slots=True)
class DownloadedModel:
    path: Path
    size: int
    schema: str | None  # FILE_SCHEMA of the file, e.g. IFC2X3
    serializer: str


async def detect_dialect(
    session: aiohttp.ClientSession, api_url: str, *, timeout: float = 30.0
) -> Dialect | None:
    """1.4 lists Bimsie1AuthInterface among its interfaces; None when BIMserver won't say."""
    client = BimServerClient(session, api_url, token=None, dialect=Dialect.BIMSERVER_15)
    try:
        interfaces = await client.call("MetaInterface", "getServiceInterfaces", timeout=timeout)
    except BimServerError:
        return None
    names = {item.get("simpleName") for item in interfaces or [] if isinstance(item, dict)}
    return Dialect.BIMSIE1 if "Bimsie1AuthInterface" in names else Dialect.BIMSERVER_15


@dataclass(slots=True)
class ServerFacts:
    """What notifyd learnt about one BIMserver: its dialect, and lookups (serializer and
    extended data schema ids) that rarely change, kept for ``ttl`` seconds."""

    dialect: Dialect
    ttl: float = 300.0
    lookups: dict[str, tuple[float, Any]] = field(default_factory=dict)

    def recall(self, key: str) -> Any:
        found = self.lookups.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl:
            return None
        return found[1]

    def remember(self, key: str, value: Any) -> None:
        self.lookups[key] = (time.monotonic(), value)


class ServerCache:
    """One dialect probe per BIMserver; falls back to the dialect the notification came in."""

    def __init__(self) -> None:
        self._facts: dict[str, ServerFacts] = {}
        self._lock = asyncio.Lock()

    async def facts_for(
        self, session: aiohttp.ClientSession, api_url: str, fallback: Dialect
    ) -> ServerFacts:
        if api_url in self._facts:
            return self._facts[api_url]
        async with self._lock:
            if api_url not in self._facts:
                detected = await detect_dialect(session, api_url)
                self._facts[api_url] = ServerFacts(detected or fallback)
                log.info("bimserver_dialect", api_url=api_url, dialect=str(detected or fallback))
            return self._facts[api_url]

    def forget_lookups(self, api_url: str) -> None:
        """After a failure, look everything up afresh: a serializer may have been disabled."""
        facts = self._facts.get(api_url)
        if facts is not None:
            facts.lookups.clear()


class BimServerClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        *,
        token: str | None,
        dialect: Dialect,
        facts: ServerFacts | None = None,
        call_timeout: float = 60.0,
        progress_poll: float = 0.05,
        download_timeout: float = 3600.0,
    ) -> None:
        self.session = session
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.dialect = dialect
        self.facts = facts or ServerFacts(dialect)
        self.interfaces = INTERFACES[dialect]
        self.call_timeout = call_timeout
        self.progress_poll = progress_poll
        self.download_timeout = download_timeout

    # -- JSON API ------------------------------------------------------------------------

    async def call(
        self, interface: str, method: str, *, timeout: float | None = None, **parameters: Any
    ) -> Any:
        """One JSON API call; a null result (BIMserver's ``{}``) comes back as None."""
        body: dict[str, Any] = {
            "request": {"interface": interface, "method": method, "parameters": parameters}
        }
        if self.token is not None:
            body["token"] = self.token
        name = f"{interface}.{method}"
        try:
            async with self.session.post(
                f"{self.api_url}/json",
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout or self.call_timeout),
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BimServerUnavailable(f"{name}: {_describe_network_error(exc)}") from exc
        if status >= 500 or status == 429:
            raise BimServerUnavailable(f"{name}: BIMserver answered HTTP {status}")
        if status != 200:
            raise BimServerError(f"HTTP {status} from {self.api_url}/json", call=name)
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise BimServerUnavailable(
                f"{name}: the answer is not JSON: {payload[:120]!r}"
            ) from exc
        response_obj = document.get("response") if isinstance(document, dict) else None
        if not isinstance(response_obj, dict):
            raise BimServerUnavailable(f"{name}: the answer has no 'response': {payload[:120]!r}")
        exception = response_obj.get("exception")
        if exception is not None:
            raise BimServerError(
                str(exception.get("message", exception)),
                exception_type=str(exception.get("__type", "UserException")),
                call=name,
            )
        result = response_obj.get("result")
        return None if result == {} else result

    # -- revision and serializer ------------------------------------------------------------

    async def revision_schema(self, roid: int) -> str | None:
        """The revision's IFC schema, e.g. IFC2X3: the revision's own (1.5), else its
        project's (SProject carries the schema in 1.4 too); None when BIMserver won't say."""
        revision = await self._optional(self.interfaces.service, "getRevision", roid=roid)
        schema = (revision or {}).get("schema")
        if not schema and revision and revision.get("projectId") is not None:
            project = await self._optional(
                self.interfaces.service, "getProjectByPoid", poid=int(revision["projectId"])
            )
            schema = (project or {}).get("schema")
        if not schema:
            return None
        return "IFC2X3" if str(schema).lower().startswith("ifc2x3") else str(schema).upper()

    async def _optional(self, interface: str, method: str, **parameters: Any) -> Any:
        """A call whose answer helps but is not needed, on a BIMserver that may not have the
        method: None when it says no. A refused token or right, or a passing failure, still
        counts."""
        try:
            return await self.call(interface, method, **parameters)
        except BimServerError as exc:
            if exc.refuses_access or not exc.permanent:
                raise
            log.info("optional_call_refused", call=exc.call, error=exc.bimserver_message)
            return None

    async def find_ifc_serializer(self, schema: str | None, accepted: set[str]) -> tuple[int, str]:
        """The serializer for the revision's schema, by name first: getSerializerByContentType
        returns the first IFC serializer, which may be the wrong schema."""
        return await self._remembered(
            f"serializer:{schema}:{','.join(sorted(accepted))}",
            lambda: self._find_ifc_serializer(schema, accepted),
        )

    async def _remembered(self, key: str, look_up: Callable[[], Awaitable[Any]]) -> Any:
        known = self.facts.recall(key)
        if known is None:
            known = await look_up()
            self.facts.remember(key, known)
        return known

    async def _find_ifc_serializer(self, schema: str | None, accepted: set[str]) -> tuple[int, str]:
        candidates = [schema] if schema else sorted(accepted)
        for candidate in candidates:
            for name in SERIALIZER_NAMES.get(candidate or "", ()):
                found = await self._optional(
                    self.interfaces.service, "getSerializerByName", serializerName=name
                )
                if found and found.get("oid") is not None:
                    return int(found["oid"]), name
        found = await self.call(
            self.interfaces.service, "getSerializerByContentType", contentType="application/ifc"
        )
        if not found or found.get("oid") is None:
            raise PermanentError(f"BIMserver at {self.api_url} has no IFC serializer enabled")
        return int(found["oid"]), str(found.get("name", "application/ifc"))

    async def download_revision(
        self,
        roid: int,
        dest: Path,
        *,
        poid: int,
        accepted_schemas: set[str],
        on_progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> DownloadedModel:
        """Prepare the revision as IFC on BIMserver and stream it to ``dest``."""
        # A BIMserver project has one schema for all its revisions, so it is asked once.
        schema = self.facts.recall(f"project-schema:{poid}")
        if schema is None:
            schema = await self.revision_schema(roid)
            if schema is not None:
                self.facts.remember(f"project-schema:{poid}", schema)
        serializer_oid, serializer_name = await self.find_ifc_serializer(schema, accepted_schemas)
        if self.dialect is Dialect.BIMSIE1:
            action = await self.call(
                self.interfaces.service,
                "download",
                roid=roid,
                serializerOid=serializer_oid,
                showOwn=False,
                sync=False,
            )
        else:
            action = await self.call(
                self.interfaces.service,
                "download",
                roids=[roid],
                query='{"includeAllFields":true}',
                serializerOid=serializer_oid,
                sync=False,
            )
        if action is None:
            raise BimServerUnavailable("download: BIMserver returned no topic id")
        action_id = int(action)
        try:
            await self.wait_for_action(action_id, on_progress)
            try:
                size = await self._stream_download(action_id, serializer_oid, dest)
            except _RawDownloadUnavailable as exc:
                log.info("raw_download_unavailable", reason=str(exc))
                size = await self._download_base64(action_id, dest)
        finally:
            await self._cleanup(action_id)
        return DownloadedModel(
            path=dest,
            size=size,
            schema=await asyncio.to_thread(header_schema, dest),
            serializer=serializer_name,
        )

    async def wait_for_action(
        self, action_id: int, on_progress: Callable[[int], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        """Poll a long action until it finishes; AS_ERROR becomes a BimServerError."""
        deadline = time.monotonic() + self.download_timeout
        delay = self.progress_poll
        while True:
            state = await self.call(self.interfaces.notifications, "getProgress", topicId=action_id)
            if state is None:
                raise BimServerError(f"No data found for topicId {action_id}", call="getProgress")
            if on_progress is not None and isinstance(state.get("progress"), int):
                await on_progress(state["progress"])
            if state.get("state") == "FINISHED":
                return state
            if state.get("state") == "AS_ERROR":
                errors = "; ".join(map(str, state.get("errors") or [])) or "no reason given"
                raise BimServerError(f"long action {action_id} failed: {errors}", call="download")
            if time.monotonic() > deadline:
                raise BimServerUnavailable(
                    f"long action {action_id} did not finish in {self.download_timeout:.0f} s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _stream_download(self, action_id: int, serializer_oid: int, dest: Path) -> int:
        if self.dialect is Dialect.BIMSIE1:
            params = {"longActionId": action_id, "serializerOid": serializer_oid}
        else:
            params = {"topicId": action_id}
        params_str = {k: str(v) for k, v in params.items()}
        try:
            async with self.session.get(
                f"{self.api_url}/download",
                params={"token": self.token or "", **params_str},
                timeout=aiohttp.ClientTimeout(total=self.download_timeout, sock_read=120),
            ) as response:
                if response.status == 404:
                    raise _RawDownloadUnavailable("no /download servlet (HTTP 404)")
                if response.status >= 500:
                    raise BimServerUnavailable(
                        f"download: BIMserver answered HTTP {response.status}"
                    )
                if response.status != 200:
                    raise _RawDownloadUnavailable(f"/download answered HTTP {response.status}")
                if response.content_type in ("application/json", "text/json"):
                    await self._raise_json_error(await response.read(), "download")
                size = 0
                with dest.open("wb") as handle:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        handle.write(chunk)
                        size += len(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BimServerUnavailable(
                f"download of long action {action_id} broke off: {_describe_network_error(exc)}"
            ) from exc
        return size

    async def _raise_json_error(self, payload: bytes, call: str) -> None:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BimServerUnavailable(f"{call}: unreadable answer {payload[:120]!r}") from None
        exception = document.get("exception") or (document.get("response") or {}).get("exception")
        if exception:
            raise BimServerError(
                str(exception.get("message")),
                exception_type=str(exception.get("__type", "UserException")),
                call=call,
            )
        raise BimServerUnavailable(f"{call}: unexpected JSON answer {payload[:120]!r}")

    async def _download_base64(self, action_id: int, dest: Path) -> int:
        key = "actionId" if self.dialect is Dialect.BIMSIE1 else "topicId"
        result = await self.call(self.interfaces.service, "getDownloadData", **{key: action_id})
        if not result or not result.get("file"):
            raise BimServerUnavailable(f"getDownloadData for {action_id} returned no file")
        data = base64.b64decode(result["file"])
        await asyncio.to_thread(dest.write_bytes, data)
        return len(data)

    async def _cleanup(self, action_id: int) -> None:
        key = "actionId" if self.dialect is Dialect.BIMSIE1 else "topicId"
        try:
            await self.call(self.interfaces.plain_service, "cleanupLongAction", **{key: action_id})
        except (BimServerError, BimServerUnavailable) as exc:
            log.warning("cleanup_failed", action_id=action_id, error=str(exc))

    # -- extended data -------------------------------------------------------------------

    async def extended_data_schema_id(self, schema: str, namespace: str | None = None) -> int:
        return await self._remembered(
            f"schema:{schema}:{namespace}",
            lambda: self._extended_data_schema_id(schema, namespace),
        )

    async def _extended_data_schema_id(self, schema: str, namespace: str | None) -> int:
        found = None
        if self.dialect is Dialect.BIMSIE1:
            namespace = namespace or EXTENDED_DATA_NAMESPACES.get(schema)
            if namespace is not None:
                found = await self._optional(
                    self.interfaces.service, "getExtendedDataSchemaByNamespace", namespace=namespace
                )
            if not found:
                # Namespaces were never standardised in 1.4: look for the name among them all.
                every = await self._optional("ServiceInterface", "getAllExtendedDataSchemas")
                found = next(
                    (e for e in every or [] if str(e.get("name", "")).upper() == schema.upper()),
                    None,
                )
        else:
            found = await self.call(
                self.interfaces.service, "getExtendedDataSchemaByName", name=schema
            )
        if not found or found.get("oid") is None:
            raise PermanentError(
                f"BIMserver at {self.api_url} has no extended data schema {schema}"
                + (f" (namespace {namespace})" if namespace else "")
                + "; add it on the BIMserver, or set extended_data_namespace on the service"
            )
        return int(found["oid"])

    async def upload_file(self, data: bytes, *, filename: str, mime: str) -> int:
        file_id = await self.call(
            self.interfaces.plain_service,
            "uploadFile",
            file={
                "__type": "SFile",
                "data": base64.b64encode(data).decode("ascii"),
                "filename": filename,
                "mime": mime,
                "size": len(data),
            },
        )
        if file_id is None:
            raise BimServerUnavailable("uploadFile returned no file id")
        return int(file_id)

    async def add_extended_data(
        self, roid: int, *, schema_id: int, file_id: int, title: str, size: int, took_ms: int
    ) -> None:
        extended: dict[str, Any] = {
            "__type": "SExtendedData",
            "title": title,
            "schemaId": schema_id,
            "fileId": file_id,
            "size": size,
            "added": int(time.time() * 1000),
        }
        if self.dialect is Dialect.BIMSERVER_15:
            extended["timeToGenerate"] = took_ms
        await self.call(
            self.interfaces.service, "addExtendedDataToRevision", roid=roid, extendedData=extended
        )

    async def extended_data_of_revision(self, roid: int) -> list[dict[str, Any]] | None:
        """The revision's extended data, or None when this BIMserver cannot list it."""
        found = await self._optional(
            self.interfaces.service, "getAllExtendedDataOfRevision", roid=roid
        )
        return None if found is None else list(found)

    async def revisions_of_project(self, poid: int) -> list[dict[str, Any]] | None:
        """The project's revisions, or None when this BIMserver cannot list them."""
        found = await self._optional(self.interfaces.service, "getAllRevisionsOfProject", poid=poid)
        return None if found is None else list(found)

    async def extended_data_file(self, edid: int, dest: Path) -> Path:
        """Fetch the extended data that triggered a job into ``dest``."""
        extended = await self.call(self.interfaces.service, "getExtendedData", oid=edid)
        if not extended or extended.get("fileId") is None:
            raise PermanentError(f"extended data {edid} has no file")
        file = await self.call(self.interfaces.service, "getFile", fileId=int(extended["fileId"]))
        if not file or file.get("data") is None:
            raise PermanentError(f"the file of extended data {edid} is empty")
        await asyncio.to_thread(dest.write_bytes, base64.b64decode(file["data"]))
        return dest

    # -- check-in ------------------------------------------------------------------------

    async def checkin(self, poid: int, path: Path, *, comment: str) -> dict[str, Any]:
        """Check ``path`` in as a new revision through the multipart ``/upload`` servlet."""
        deserializer = await self.call(
            self.interfaces.service,
            "getSuggestedDeserializerForExtension",
            extension=path.suffix.lstrip(".").lower() or "ifc",
            poid=poid,
        )
        if not deserializer or deserializer.get("oid") is None:
            raise PermanentError(
                f"BIMserver has no deserializer for {path.suffix} in project {poid}"
            )
        form = aiohttp.FormData(quote_fields=False)
        # The servlet reads the fields in one streaming pass: they must come before the file.
        for key, value in (
            ("token", self.token or ""),
            ("poid", str(poid)),
            ("comment", comment),
            ("deserializerOid", str(deserializer["oid"])),
            ("merge", "false"),
            ("sync", "true"),
        ):
            form.add_field(key, value)
        try:
            with path.open("rb") as handle:
                form.add_field(
                    "file", handle, filename=path.name, content_type="application/octet-stream"
                )
                async with self.session.post(
                    f"{self.api_url}/upload",
                    data=form,
                    timeout=aiohttp.ClientTimeout(total=self.download_timeout),
                ) as response:
                    payload = await response.read()
                    status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BimServerUnavailable(f"upload: {_describe_network_error(exc)}") from exc
        if status >= 500:
            raise BimServerUnavailable(f"upload: BIMserver answered HTTP {status}")
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise BimServerUnavailable(f"upload: unreadable answer {payload[:120]!r}") from exc
        if not isinstance(document, dict):
            raise BimServerUnavailable(f"upload: unexpected answer {payload[:120]!r}")
        if "exception" in document:
            await self._raise_json_error(payload, "upload")
        if document.get("state") == "AS_ERROR":
            errors = "; ".join(map(str, document.get("errors") or [])) or "no reason given"
            raise BimServerError(f"check-in failed: {errors}", call="upload")
        topic = document.get("topicId")
        if topic is not None and document.get("state") is None:
            return await self.wait_for_action(int(topic))
        return document

    # -- progress ------------------------------------------------------------------------

    async def register_progress(self, poid: int, roid: int, description: str) -> int | None:
        topic = await self.call(
            self.interfaces.notifications,
            "registerProgressOnRevisionTopic",
            type="RUNNING_SERVICE",
            poid=poid,
            roid=roid,
            description=description,
        )
        return int(topic) if topic is not None else None

    async def update_progress(
        self,
        topic_id: int,
        *,
        state: str,
        title: str,
        started_ms: int,
        progress: int = -1,
        errors: list[str] | None = None,
        ended: bool = False,
    ) -> None:
        body: dict[str, Any] = {
            "__type": "SLongActionState",
            "state": state,
            "title": title,
            "start": started_ms,
            "progress": progress,
            "stage": 0,
            "errors": errors or [],
            "warnings": [],
            "infos": [],
        }
        if ended:
            body["end"] = int(time.time() * 1000)
        await self.call(
            self.interfaces.notifications, "updateProgressTopic", topicId=topic_id, state=body
        )

    async def unregister_progress(self, topic_id: int) -> None:
        await self.call(self.interfaces.notifications, "unregisterProgressTopic", topicId=topic_id)


class _RawDownloadUnavailable(Exception):
    """The raw /download servlet cannot serve this download; use getDownloadData."""


def _describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
