"""Request ids on every log line, and no stack trace ever reaching a caller."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from notifyd.protocol.rpc import exception_body
from notifyd.web.keys import REQUEST_ID

log = structlog.get_logger("notifyd.web")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the caller's X-Request-Id if sane) to every log line of the request."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex[:16]
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn anything unexpected into a JSON error naming the request id, and log it."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        request_id = request.get(REQUEST_ID, "")
        log.exception("request_failed", path=request.rel_url.path)
        return web.json_response(
            exception_body(f"notifyd failed to handle the request (request id {request_id})"),
            status=500 if not request.path.endswith("/json") else 200,
        )


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; the secret path segment never appears in it."""

    secret: str | None = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        path = request.rel_url.path
        if self.secret:
            path = path.replace(f"/{self.secret}/", "/[redacted]/")
        log.info(
            "http_request",
            request_id=request.get(REQUEST_ID),
            method=request.method,
            path=path,
            status=response.status,
            remote=request.remote,
            duration_ms=round(time_ * 1000, 2),
        )


def make_access_logger(secret: str | None) -> type[AccessLogger]:
    return type("ConfiguredAccessLogger", (AccessLogger,), {"secret": secret})
