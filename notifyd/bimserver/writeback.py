"""Writing results back to BIMserver within a notification token's rights.

The token (``ExplicitRightsAuthorization``, built in ``NewRevisionNotification.java:299-320``)
may write extended data to the notified revision and check in to one project: the service's
``writeRevision`` project, chosen when the service was added to a project in BIMserver. The
service learns that project from its own ``SService`` (``ServiceInterface.getService(soid)``
needs only authentication: ``ServiceImpl.java:2348``), field ``writeRevisionId``.

A check-in made with the token records the service on the new revision (``SRevision.serviceId``,
``CheckinDatabaseAction.java:160-166``). The token may read its write project
(``getProjectByPoid``: the service's user has rights on it) and its revisions (``getRevision``),
but not list them (``getAllRevisionsOfProject`` requires real user authentication,
``ServiceImpl.java:940``): so an interrupted check-in is found by reading the project's newest
revisions in one batch and looking for the job's marker in their comments.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from notifyd.bimserver.client import BimServerClient, bimserver_error
from notifyd.errors import BimServerError, BimServerUnavailable, PermanentError
from notifyd.protocol.bimserver.catalogue import EXTENDED_DATA_NAMESPACES
from notifyd.records import Dialect

# How many of the write project's newest revisions a retried check-in looks through.
RECENT_REVISIONS = 20


async def extended_data_schema_id(
    client: BimServerClient, schema: str, namespace: str | None = None
) -> int:
    found: int = await client.facts.remembered(
        f"schema:{schema}:{namespace}", lambda: _extended_data_schema_id(client, schema, namespace)
    )
    return found


async def _extended_data_schema_id(
    client: BimServerClient, schema: str, namespace: str | None
) -> int:
    found = None
    if client.dialect is Dialect.BIMSIE1:
        namespace = namespace or EXTENDED_DATA_NAMESPACES.get(schema)
        if namespace is not None:
            found = await client.optional("getExtendedDataSchemaByNamespace", namespace=namespace)
        if not found:
            # Namespaces were never standardised in 1.4: look for the name among them all.
            every = await client.call("getAllExtendedDataSchemas")
            found = next(
                (e for e in every or [] if str(e.get("name", "")).upper() == schema.upper()),
                None,
            )
    else:
        found = await client.optional("getExtendedDataSchemaByName", name=schema)
    if not found or found.get("oid") in (None, -1):
        raise PermanentError(
            f"BIMserver at {client.api_url} has no extended data schema {schema}"
            + (f" (namespace {namespace})" if namespace else "")
            + "; an administrator adds it there (ServiceInterface.addExtendedDataSchema), or set "
            "extended_data_namespace on the service"
        )
    return int(found["oid"])


async def upload_file(client: BimServerClient, data: bytes, *, filename: str, mime: str) -> int:
    file: dict[str, Any] = {
        "__type": "SFile",
        "data": base64.b64encode(data).decode("ascii"),
        "filename": filename,
        "mime": mime,
    }
    if client.dialect is Dialect.BIMSERVER_15:
        file["size"] = len(data)  # SFile has no size field in 1.4
    file_id = await client.call("uploadFile", file=file)
    if file_id is None:
        raise BimServerUnavailable("uploadFile returned no file id")
    return int(file_id)


async def add_extended_data(
    client: BimServerClient, roid: int, *, schema_id: int, file_id: int, title: str, took_ms: int
) -> None:
    """The server fills in user, added, size, project and revision
    (``AddExtendedDataToRevisionDatabaseAction.java:52-67``)."""
    extended: dict[str, Any] = {
        "__type": "SExtendedData",
        "title": title,
        "schemaId": schema_id,
        "fileId": file_id,
    }
    if client.dialect is Dialect.BIMSERVER_15:
        extended["timeToGenerate"] = took_ms
    await client.call("addExtendedDataToRevision", roid=roid, extendedData=extended)


async def extended_data_of_revision(client: BimServerClient, roid: int) -> list[dict[str, Any]]:
    """The revision's extended data (``getAllExtendedDataOfRevision`` checks no rights)."""
    return list(await client.call("getAllExtendedDataOfRevision", roid=roid) or [])


async def extended_data_file(client: BimServerClient, edid: int, dest: Path) -> Path:
    """Fetch the extended data that triggered a job into ``dest``."""
    extended = await client.call("getExtendedData", oid=edid)
    if not extended or extended.get("fileId") in (None, -1):
        raise PermanentError(f"extended data {edid} has no file")
    file = await client.call("getFile", fileId=int(extended["fileId"]))
    if not file or file.get("data") is None:
        raise PermanentError(f"the file of extended data {edid} is empty")
    await asyncio.to_thread(dest.write_bytes, base64.b64decode(file["data"]))
    return dest


async def write_project(client: BimServerClient, soid: int) -> int:
    """The project a service's token may check in to: its SService's ``writeRevisionId``."""
    service = await client.call("getService", soid=soid)
    poid = (service or {}).get("writeRevisionId")
    if poid in (None, -1):
        raise PermanentError(
            f"service {soid} has no project to write revisions to: choose one (writeRevision) "
            "when adding the service to a project in BIMserver"
        )
    return int(poid)


async def find_checked_in(client: BimServerClient, poid: int, marker: str) -> int | None:
    """The roid of a revision of ``poid`` whose comment carries ``marker``, among the newest."""
    project = await client.call("getProjectByPoid", poid=poid)
    roids = [int(r) for r in (project or {}).get("revisions") or []][-RECENT_REVISIONS:]
    outcomes = await client.batch([("getRevision", {"roid": roid}) for roid in reversed(roids)])
    for outcome in outcomes:
        if outcome.failed:
            raise bimserver_error(outcome.exception_type or "", outcome.message, "getRevision")
        if marker in str((outcome.result or {}).get("comment")):
            return int(outcome.result["oid"])
    return None


async def checkin(
    client: BimServerClient, poid: int, path: Path, *, comment: str
) -> dict[str, Any]:
    """Check ``path`` in through the multipart ``/upload`` servlet (``UploadServlet.java``),
    fields before the file: it reads them in one streaming pass."""
    deserializer = await client.call(
        "getSuggestedDeserializerForExtension",
        extension=path.suffix.lstrip(".").lower() or "ifc",
        poid=poid,
    )
    if not deserializer or deserializer.get("oid") in (None, -1):
        raise PermanentError(f"BIMserver has no deserializer for {path.suffix} in project {poid}")
    form = aiohttp.FormData(quote_fields=False)
    for key, value in (
        ("token", client.token or ""),
        ("poid", str(poid)),
        ("comment", comment),
        ("deserializerOid", str(deserializer["oid"])),
        ("merge", "false"),
        ("sync", "true"),
    ):
        form.add_field(key, value)
    with path.open("rb") as handle:
        form.add_field("file", handle, filename=path.name, content_type="application/octet-stream")
        _, payload = await client.post(
            "/upload", "upload", data=form, timeout=client.download_timeout
        )
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BimServerUnavailable(f"upload: unreadable answer {payload[:120]!r}") from exc
    if not isinstance(document, dict):
        raise BimServerUnavailable(f"upload: unexpected answer {payload[:120]!r}")
    exception = document.get("exception")
    if isinstance(exception, dict):
        raise bimserver_error(
            str(exception.get("__type") or "UserException"), str(exception.get("message")), "upload"
        )
    if exception is not None:  # UploadServlet writes {"exception": "No poid"}
        raise BimServerError(str(exception), call="upload")
    if document.get("state") == "AS_ERROR":
        errors = "; ".join(map(str, document.get("errors") or [])) or "no reason given"
        raise BimServerError(f"check-in failed: {errors}", call="upload")
    if not {"state", "checkinid", "topicId"} & set(document):
        # [1.5] sync answers SLongCheckinActionState, [1.4] {"checkinid"}; anything else (the
        # servlet's {} when it did nothing) is no check-in.
        raise BimServerUnavailable(f"upload: no check-in in the answer {payload[:120]!r}")
    return document
