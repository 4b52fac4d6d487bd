"""Downloading a revision as IFC, the way BIMserver's own clients do.

1. The project's schema (``getProjectByPoid``: ``SRevision`` has no schema in 1.4 or 1.5).
2. A serializer for it: by plugin class (``PluginInterface.getSerializerByPluginClassName``),
   then by default name (``getSerializerByName``), both of which *throw* on a miss, then
   ``getSerializerByContentType`` (null on a miss, and the first IFC serializer of any schema).
3. ``download`` starts a long action; its progress stops at STARTED, title "Done preparing"
   (``LongStreamingDownloadAction.java:173-209``, [1.4] ``LongDownloadAction.java:74``):
   FINISHED comes only after the bytes were streamed out. So the client waits for "Done
   preparing" (as ``BimServerClient.waitForDonePreparing``, BimServerClientLib
   ``BimServerClient.java:609-625``) and never for FINISHED.
4. The raw ``/download`` servlet streams the file to disk ([1.5] ``?token&topicId``; [1.4]
   ``?token&longActionId&serializerOid&topicId``, the topicId letting it mark the action
   FINISHED: ``DownloadServlet.java:91-95,145,225``). Its errors are text with HTTP 200 or a
   500, never JSON; a real file always has ``Content-Disposition``.
5. ``cleanupLongAction``, whatever happened.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from notifyd.bimserver.client import BimServerClient, describe_network_error
from notifyd.errors import BimServerDown, BimServerError, BimServerUnavailable, PermanentError
from notifyd.protocol.bimserver.catalogue import (
    IFC_CONTENT_TYPE,
    SERIALIZER_PLUGINS,
    ifc_schema_of_project,
)
from notifyd.records import Dialect
from notifyd.stepfile import header_schema

log = structlog.get_logger("notifyd.bimserver")

CHUNK = 1 << 20
FULL_MODEL_QUERY = '{"includeAllFields":true}'  # DefaultQueries.allAsString()
DONE_PREPARING = "Done preparing"


@dataclass(frozen=True, slots=True)
class DownloadedModel:
    path: Path
    size: int
    schema: str | None  # FILE_SCHEMA of the file, e.g. IFC2X3
    serializer: str


@dataclass(frozen=True, slots=True)
class Serializer:
    oid: int
    name: str


async def project_schema(client: BimServerClient, poid: int) -> str | None:
    """The project's IFC schema (IFC2X3, IFC4), asked once per project; None when the token's
    user may not read the project."""

    async def look_up() -> str:
        try:
            project = await client.call("getProjectByPoid", poid=poid)
        except BimServerError as exc:
            if exc.refuses_access:
                return ""
            raise
        return ifc_schema_of_project((project or {}).get("schema")) or ""

    found = await client.facts.remembered(f"project-schema:{poid}", look_up)
    return found or None


async def find_ifc_serializer(
    client: BimServerClient, schema: str | None, accepted: set[str]
) -> Serializer:
    key = f"serializer:{schema}:{','.join(sorted(accepted))}"
    found: Serializer = await client.facts.remembered(
        key, lambda: _find_ifc_serializer(client, schema, accepted)
    )
    return found


async def _find_ifc_serializer(
    client: BimServerClient, schema: str | None, accepted: set[str]
) -> Serializer:
    wanted = [schema] if schema else sorted(accepted)
    plugins = [p for p in SERIALIZER_PLUGINS[client.dialect] if p.schema in wanted]
    for plugin in plugins:
        found = await client.optional(
            "getSerializerByPluginClassName", pluginClassName=plugin.plugin_class
        )
        if _usable(found):
            return Serializer(int(found["oid"]), str(found.get("name") or plugin.default_name))
    for plugin in plugins:
        found = await client.optional("getSerializerByName", serializerName=plugin.default_name)
        if _usable(found):
            return Serializer(int(found["oid"]), plugin.default_name)
    found = await client.call("getSerializerByContentType", contentType=IFC_CONTENT_TYPE)
    if not _usable(found):
        raise PermanentError(f"BIMserver at {client.api_url} has no IFC serializer enabled")
    return Serializer(int(found["oid"]), str(found.get("name") or IFC_CONTENT_TYPE))


def _usable(found: object) -> bool:
    return (
        isinstance(found, dict)
        and found.get("oid") not in (None, -1)
        and found.get("enabled") is not False
    )


async def download_revision(
    client: BimServerClient,
    roid: int,
    dest: Path,
    *,
    poid: int,
    accepted_schemas: set[str],
    on_progress: Callable[[int], Awaitable[None]] | None = None,
) -> DownloadedModel:
    """Prepare the revision as IFC on BIMserver and stream it to ``dest``."""
    schema = await project_schema(client, poid)
    serializer = await find_ifc_serializer(client, schema, accepted_schemas)
    if client.dialect is Dialect.BIMSIE1:
        topic = await client.call(
            "download", roid=roid, serializerOid=serializer.oid, showOwn=False, sync=False
        )
    else:
        topic = await client.call(
            "download",
            roids=[roid],
            query=FULL_MODEL_QUERY,
            serializerOid=serializer.oid,
            sync=False,
        )
    if topic is None:
        raise BimServerUnavailable("download: BIMserver returned no topic id")
    topic_id = int(topic)
    try:
        await wait_until_prepared(client, topic_id, on_progress)
        try:
            size = await _stream(client, topic_id, serializer.oid, dest)
        except _NoRawDownload as exc:
            log.info("raw_download_unavailable", reason=str(exc))
            size = await _download_base64(client, topic_id, dest)
    finally:
        await _cleanup(client, topic_id)
    return DownloadedModel(
        path=dest,
        size=size,
        schema=await asyncio.to_thread(header_schema, dest),
        serializer=serializer.name,
    )


async def wait_until_prepared(
    client: BimServerClient,
    topic_id: int,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Poll the download's progress until its data is ready ("Done preparing", or FINISHED
    when a non-streaming action completed); AS_ERROR becomes a BimServerError."""
    deadline = time.monotonic() + client.download_timeout
    delay = client.progress_poll
    while True:
        state = await client.call("getProgress", topicId=topic_id) or {}
        progress = state.get("progress")
        if on_progress is not None and isinstance(progress, int) and progress >= 0:
            await on_progress(progress)
        if state.get("state") == "AS_ERROR":
            errors = "; ".join(map(str, state.get("errors") or [])) or state.get("title") or "?"
            raise BimServerError(
                f"download {topic_id} failed: {errors}", call="download", permanent=False
            )
        if state.get("state") == "FINISHED" or state.get("title") == DONE_PREPARING:
            return
        if time.monotonic() > deadline:
            raise BimServerUnavailable(
                f"download {topic_id} was not prepared in {client.download_timeout:.0f} s"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _stream(client: BimServerClient, topic_id: int, serializer_oid: int, dest: Path) -> int:
    """The raw download from the servlet, observed as the call ``/download`` (beside the JSON
    method ``download`` that prepared it)."""
    started = time.perf_counter()
    try:
        size = await _stream_file(client, topic_id, serializer_oid, dest)
    except Exception as exc:
        outcome = next((o for kind, o in _DOWNLOAD_OUTCOMES if isinstance(exc, kind)), "error")
        client.observe("/download", outcome, started)
        raise
    client.observe("/download", "ok", started)
    return size


async def _stream_file(
    client: BimServerClient, topic_id: int, serializer_oid: int, dest: Path
) -> int:
    params = {"token": client.token or "", "topicId": str(topic_id)}
    if client.dialect is Dialect.BIMSIE1:
        params.update(longActionId=str(topic_id), serializerOid=str(serializer_oid))
    try:
        async with client.session.get(
            f"{client.api_url}/download",
            params=params,
            headers={"Accept-Encoding": "gzip" if client.download_gzip else "identity"},
            timeout=aiohttp.ClientTimeout(total=client.download_timeout, sock_read=120),
            allow_redirects=False,
        ) as response:
            if response.status == 404:
                raise _NoRawDownload("no /download servlet (HTTP 404)")
            if response.status >= 500:
                raise BimServerDown(f"/download answered HTTP {response.status}")
            if response.status != 200:
                raise _NoRawDownload(f"/download answered HTTP {response.status}")
            if "Content-Disposition" not in response.headers:
                # DownloadServlet prints its errors as text (e.g. "No valid topicId").
                text = (await response.content.read(500)).decode("utf-8", "replace").strip()
                raise BimServerError(
                    f"/download sent no file: {text[:200]!r}", call="download", permanent=False
                )
            size = 0
            with dest.open("wb") as handle:
                async for chunk in response.content.iter_chunked(CHUNK):
                    handle.write(chunk)
                    size += len(chunk)
    except aiohttp.ClientConnectorError as exc:
        raise BimServerDown(f"download {topic_id}: {describe_network_error(exc)}") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BimServerUnavailable(
            f"download {topic_id} broke off: {describe_network_error(exc)}"
        ) from exc
    return size


async def _download_base64(client: BimServerClient, topic_id: int, dest: Path) -> int:
    key = "actionId" if client.dialect is Dialect.BIMSIE1 else "topicId"
    result = await client.call("getDownloadData", **{key: topic_id})
    if not result or not result.get("file"):
        raise BimServerUnavailable(f"getDownloadData for {topic_id} returned no file")
    data = base64.b64decode(result["file"])
    await asyncio.to_thread(dest.write_bytes, data)
    return len(data)


async def _cleanup(client: BimServerClient, topic_id: int) -> None:
    key = "actionId" if client.dialect is Dialect.BIMSIE1 else "topicId"
    try:
        await client.call("cleanupLongAction", **{key: topic_id})
    except (BimServerError, BimServerUnavailable) as exc:
        log.warning("cleanup_failed", topic_id=topic_id, error=str(exc))


class _NoRawDownload(Exception):
    """The raw /download servlet cannot serve this download; use getDownloadData."""


# How a failed raw download is counted (first match; BimServerError last: the others are
# its kinds).
_DOWNLOAD_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (_NoRawDownload, "http_error"),
    (BimServerDown, "unreachable"),
    (BimServerUnavailable, "timeout"),
    (BimServerError, "exception"),
)
