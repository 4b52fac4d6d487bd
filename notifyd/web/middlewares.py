"""Request ids on every log line, and no stack trace ever reaching a caller."""

from __future__ import annotations

import itertools
import re
import secrets
import time

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from notifyd.hooks import HttpRequest
from notifyd.protocol.rpc import exception_body
from notifyd.web.keys import HOOKS, REQUEST_ID, SETTINGS

log = structlog.get_logger("notifyd.web")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A random prefix per process and a counter: unique across restarts, no syscall per request.
_PROCESS_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the caller's X-Request-Id if sane) to every log line of the request,
    and turn anything unexpected into a JSON error that names it instead of a stack trace."""
    incoming = request.headers.get("X-Request-Id", "")
    if incoming and _VALID_REQUEST_ID.match(incoming):
        request_id = incoming
    else:
        request_id = f"{_PROCESS_PREFIX}-{next(_request_numbers)}"
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        status = exc.status
        raise
    except Exception:
        log.exception("request_failed", path=request.rel_url.path)
        response = web.json_response(
            exception_body(f"notifyd failed to handle the request (request id {request_id})"),
            status=200 if request.path.endswith("/json") else 500,
        )
        status = response.status
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        request.app[HOOKS].http_request(
            HttpRequest(
                route=_route_label(request),
                method=request.method,
                status=status,
                seconds=time.perf_counter() - started,
            )
        )
    response.headers["X-Request-Id"] = request_id
    return response


def _route_label(request: web.Request) -> str:
    """The route's pattern with the secret path segment hidden; "unmatched" for a path no
    route serves (raw paths would give any caller a new series and could hold a secret)."""
    resource = request.match_info.route.resource
    if resource is None:  # aiohttp's SystemRoute: 404 or 405 before any handler
        return "unmatched"
    pattern = resource.canonical
    secret = request.app[SETTINGS].secret_path
    if secret:
        pattern = pattern.replace(f"/{secret}/", "/[secret]/")
    return pattern


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; the secret path segment never appears in it.

    The JSON endpoint logs its own line, which also says what each call came to."""

    secret: str | None = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        path = request.rel_url.path
        if request.method == "POST" and path.endswith("/json"):
            return
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
