"""The BIM-bots resource URLs: ``POST /services/{service}`` takes a model and answers with
the result (or 202 and where to poll), ``GET /bots/jobs/{topic}`` and ``.../result``.

What BIMserver sends and reads (``ServiceImpl.java:2641-2665`` at HEAD): ``Authorization:
Bearer`` (or the ``Token`` header its own runner servlet reads, ``ServiceRunnerServlet.java:84``),
``Input-Type``, ``Output-Type``, a raw body with no Content-Type; it needs ``Content-Type`` on
the answer, reads the file name as ``filename="..."`` (quoted: it skips
``indexOf("filename=") + 10`` characters), and ``Data-Title``. The job goes through the same intake,
queue and worker as a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from notifyd.bots.oauth import Bearer, OAuthError
from notifyd.errors import ProtocolError, StorageError, UnknownService, UnsupportedType
from notifyd.intake import UploadRequest
from notifyd.records import Job, JobStatus, StoredResult, Upload
from notifyd.user_accounts import PaymentRequired
from notifyd.web.forwarded import public_base_url, public_settings
from notifyd.web.keys import INTAKE, JOB_EVENTS, OAUTH, SETTINGS, STORAGE, USER_ACCOUNTS
from notifyd.worker.upload_binding import UPLOADS

log = structlog.get_logger("notifyd.bots")

_WRITE_CHUNK = 1024 * 1024
_ASYNC_FLOWS = ("ASYNC", "ASYNC_WS")


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _refusal(
    kind: type[web.HTTPException], body: dict[str, str], **kwargs: Any
) -> web.HTTPException:
    return kind(text=json.dumps(body), content_type="application/json", **kwargs)


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("Token") or None


def _unauthorized(exc: OAuthError) -> tuple[dict[str, str], dict[str, str]]:
    """RFC 6750 section 3: the body and the challenge of a refused token."""
    return (
        {"error": exc.error, "error_description": exc.message},
        {"WWW-Authenticate": f'Bearer realm="notifyd", error="{exc.error}"'},
    )


async def _bearer(request: web.Request) -> Bearer:
    try:
        return await request.app[OAUTH].bearer(_token(request))
    except OAuthError as exc:
        body, headers = _unauthorized(exc)
        raise _refusal(web.HTTPUnauthorized, body, headers=headers) from None


def _header_value(text: str | None, limit: int = 200) -> str | None:
    """A caller's or a service's text, safe to send back as a header value."""
    if text is None:
        return None
    return "".join(c for c in text if c.isprintable())[:limit]


async def handle_post(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    bearer = await _bearer(request)
    input_type = request.headers.get("Input-Type", "").strip()
    output_type = request.headers.get("Output-Type", "").strip()
    for name, value in (("Input-Type", input_type), ("Output-Type", output_type)):
        if not value:
            return _problem(400, f"the {name} header is missing: name a schema the service lists")
    service = request.match_info["service"]
    try:
        spec = request.app[INTAKE].check_upload(service, input_type, output_type)
    except UnknownService as exc:
        return _problem(404, exc.message)
    except UnsupportedType as exc:
        return _problem(415, exc.message)
    accounts = request.app[USER_ACCOUNTS]
    if accounts.price_of(spec.identifier) > 0:  # a free service costs no lookup here
        try:  # before the body: a paid service without credit is refused without the upload
            account = await accounts.grants.account(bearer.account)
            await accounts.admit(spec.identifier, account, public_base_url(request))
        except PaymentRequired as exc:
            return _problem(402, exc.message)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):
        return _problem(415, f"Content-Encoding {encoding[:40]!r}: send the model uncompressed")
    limit = settings.bots_max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        return _problem(413, f"the model is {request.content_length} bytes; the limit is {limit}")
    upload_id = secrets.token_urlsafe(18)
    relative = Path(UPLOADS) / f"{upload_id}.model"
    path = settings.data_dir / relative
    size = await _receive(request, path, limit, settings.body_idle_seconds)
    if size == 0:
        await asyncio.to_thread(path.unlink, True)
        return _problem(400, "the request has no model: post the file as the body")
    context_id = _header_value(request.headers.get("Context-Id"))
    try:
        job_id = await request.app[INTAKE].upload(
            UploadRequest(
                upload_id=upload_id,
                service=spec.identifier,
                input_type=input_type,
                output_type=output_type,
                model_path=str(relative),
                size=size,
                account=bearer.account,
                client_id=bearer.client_id,
                context_id=context_id,
            ),
            public_base_url(request),
        )
    except (ProtocolError, StorageError) as exc:
        await asyncio.to_thread(path.unlink, True)
        status = (
            503
            if isinstance(exc, StorageError)
            else 402
            if isinstance(exc, PaymentRequired)
            else 400
        )
        return _problem(status, exc.message)
    log.info(
        "bots_job_accepted",
        job_id=job_id,
        service=spec.identifier,
        account=bearer.account,
        bytes=size,
        input_type=input_type,
    )
    flow = request.headers.get("Accept-Flow", "SYNC").strip().upper()
    wants_async = flow in _ASYNC_FLOWS or "respond-async" in request.headers.get("Prefer", "")
    if not wants_async:
        job = await _wait(request, job_id, settings.bots_sync_wait_seconds)
        if job.status.is_final:
            return await _final_answer(request, job)
    return _accepted(request, upload_id, context_id)


async def _receive(request: web.Request, path: Path, limit: int, idle_seconds: float) -> int:
    """The body to ``path`` (0600), a megabyte at a time, fsynced before the job is stored so
    that a stored job always finds its model; removed if anything goes wrong."""
    await asyncio.to_thread(path.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
    fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size = 0
    pending = bytearray()
    try:
        with os.fdopen(fd, "wb", buffering=0) as file:
            while True:
                try:
                    async with asyncio.timeout(idle_seconds):
                        chunk = await request.content.readany()
                except TimeoutError:
                    raise _refusal(
                        web.HTTPRequestTimeout,
                        {"error": f"the body paused longer than {idle_seconds} s"},
                    ) from None
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise _refusal(
                        web.HTTPRequestEntityTooLarge,
                        {"error": f"the model is over the limit of {limit} bytes"},
                        max_size=limit,
                        actual_size=size,
                    )
                pending += chunk
                if len(pending) >= _WRITE_CHUNK:
                    data, pending = pending, bytearray()
                    await asyncio.to_thread(file.write, data)
            if pending:
                await asyncio.to_thread(file.write, pending)
            await asyncio.to_thread(os.fsync, file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            await asyncio.shield(asyncio.to_thread(path.unlink, True))
        raise
    return size


async def _wait(request: web.Request, job_id: int, seconds: float) -> Job:
    """The job once it ended, or as it is when ``seconds`` have passed. The worker in this
    process announces endings; one in another process is seen at the next look."""
    storage = request.app[STORAGE]
    events = request.app[JOB_EVENTS]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        job = await storage.get(job_id)
        remaining = deadline - loop.time()
        if job.status.is_final or remaining <= 0:
            return job
        await events.wait(job_id, min(remaining, 0.5))


def _accepted(request: web.Request, topic: str, context_id: str | None) -> web.Response:
    location = f"{public_settings(request).public_base_url}/bots/jobs/{topic}"
    headers = {"Output-Type": "Async", "Topic-Id": topic, "Location": location}
    if context_id:
        headers["Context-Id"] = context_id
    return web.json_response({"topicId": topic, "location": location}, status=202, headers=headers)


async def _final_answer(request: web.Request, job: Job) -> web.StreamResponse:
    upload = job.origin
    assert isinstance(upload, Upload)
    if job.status is not JobStatus.SUCCEEDED:
        return _problem(
            422 if job.status is JobStatus.DEAD else 409,
            job.last_error or f"the job was {job.status}",
        )
    delivery = job.result.delivery if job.result else None
    if not isinstance(delivery, StoredResult):
        return _problem(500, "the job succeeded without a result to send")
    path = request.app[SETTINGS].data_dir / delivery.path
    if not await asyncio.to_thread(path.is_file):
        return _problem(410, "the result was removed after bots_retention_seconds")
    headers = {
        "Content-Type": delivery.mime,
        "Content-Disposition": f'attachment; filename="{delivery.filename}"',
        "Output-Type": delivery.output_type,
        "Data-Title": _header_value(delivery.title) or "",
    }
    if upload.context_id:
        headers["Context-Id"] = upload.context_id
    return web.FileResponse(path, headers=headers)


async def _owned_job(request: web.Request) -> Job:
    """The job of the topic in the path, if the token's account posted it (a topic of
    someone else's is as unknown as one that never was)."""
    bearer = await _bearer(request)
    job = await request.app[STORAGE].find(f"upload:{request.match_info['topic']}")
    if job is None or not isinstance(job.origin, Upload) or job.origin.account != bearer.account:
        raise _refusal(web.HTTPNotFound, {"error": "no such topic for this account"})
    return job


async def handle_state(request: web.Request) -> web.Response:
    job = await _owned_job(request)
    topic = request.match_info["topic"]
    body: dict[str, Any] = {
        "topicId": topic,
        "state": str(job.status),
        "attempts": job.attempts,
    }
    if job.status is JobStatus.SUCCEEDED:
        base = public_settings(request).public_base_url
        body["resultUrl"] = f"{base}/bots/jobs/{topic}/result"
    elif job.last_error:
        body["error"] = job.last_error
    return web.json_response(body)


async def handle_result(request: web.Request) -> web.StreamResponse:
    job = await _owned_job(request)
    if not job.status.is_final:
        return _problem(409, f"the job is {job.status}: poll the topic until it has ended")
    return await _final_answer(request, job)


def _expect_continue(limit: int) -> Any:
    """Invite the body (``Expect: 100-continue``, which curl sends for large files) only when
    the token is good and the declared size is within the limit: a refused upload is never
    sent."""

    async def expect(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _problem(417, "only Expect: 100-continue is understood")
        try:
            await request.app[OAUTH].bearer(_token(request))
        except OAuthError as exc:
            body, headers = _unauthorized(exc)
            return web.json_response(body, status=401, headers=headers)
        length = request.content_length
        if length is not None and length > limit:
            return _problem(413, f"the model is {length} bytes; the limit is {limit}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    return expect


def add_routes(app: web.Application, base_path: str, max_upload_bytes: int) -> None:
    app.router.add_post(
        f"{base_path}/services/{{service}}",
        handle_post,
        expect_handler=_expect_continue(max_upload_bytes),
    )
    app.router.add_get(f"{base_path}/bots/jobs/{{topic}}", handle_state)
    app.router.add_get(f"{base_path}/bots/jobs/{{topic}}/result", handle_result)
