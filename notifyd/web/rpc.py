"""``POST <base>/json``: BIMserver's notifications and descriptor calls.

A notification is answered only after its job is committed; nothing else (download, analysis)
happens on this path. Every failure is answered as BIMserver expects: HTTP 200 with a
``UserException`` whose message names the fault.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from notifyd.access import check_api_url, check_client_ip, client_ip
from notifyd.errors import Forbidden, ProtocolError, StorageError
from notifyd.protocol import rpc
from notifyd.records import Notification, NotificationKind
from notifyd.services import profile_descriptor, service_descriptor
from notifyd.web.keys import REGISTRY, SETTINGS, STORAGE

log = structlog.get_logger("notifyd.rpc")


class BodyTooLarge(ProtocolError):
    """The request body is over the size limit."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing early when Content-Length already says more."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(
            f"the request body has {request.content_length} bytes; the limit is {limit} "
            "(setting max_body_bytes)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"the request body is over the limit of {limit} bytes (setting max_body_bytes)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def handle_json(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        address = client_ip(
            request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxies
        )
        check_client_ip(address, settings.allowed_ips)
        body = await read_body(request, settings.max_body_bytes)
        envelope = rpc.parse_envelope(body)
    except Forbidden as exc:
        log.warning("request_refused", reason=exc.message)
        return web.json_response(rpc.exception_body(exc.message), status=403)
    except BodyTooLarge as exc:
        log.warning("request_refused", reason=exc.message)
        return web.json_response(rpc.exception_body(exc.message), status=413)
    except ProtocolError as exc:
        log.info("request_invalid", reason=exc.message)
        return web.json_response(rpc.exception_body(exc.message))

    outcomes = await asyncio.gather(*(_answer(request.app, call) for call in envelope.calls))
    status = 503 if any(failed for _, failed in outcomes) else 200
    body_out = rpc.answer(envelope.id, [body for body, _ in outcomes], batch=envelope.batch)
    return web.json_response(body_out, status=status)


async def _answer(
    app: web.Application, call: rpc.Call | ProtocolError
) -> tuple[dict[str, Any], bool]:
    """One response of the envelope, and whether it failed on our side (not the caller's)."""
    if isinstance(call, ProtocolError):
        log.info("request_invalid", reason=call.message)
        return rpc.exception_body(call.message), False
    try:
        return rpc.result_body(await _dispatch(app, call)), False
    except ProtocolError as exc:
        log.info("request_invalid", method=call.method, reason=exc.message)
        return rpc.exception_body(exc.message), False
    except StorageError as exc:
        log.error("notification_not_stored", method=call.method, error=exc.message)
        return rpc.exception_body(f"notifyd could not store the notification: {exc.message}"), True


async def _dispatch(app: web.Application, call: rpc.Call) -> Any:
    registry = app[REGISTRY]
    params = call.parameters
    match params:
        case rpc.GetService():
            return service_descriptor(
                registry.service(params.serviceIdentifier), app[SETTINGS]
            ).to_wire()
        case rpc.GetPublicProfiles():
            return [
                profile_descriptor(p).to_wire()
                for p in registry.public_profiles(params.serviceIdentifier)
            ]
        case rpc.GetPrivateProfiles():
            registry.service(params.serviceIdentifier)
            return []  # private profiles belong to accounts, which this release does not have
        case rpc.NewRevision() | rpc.NewExtendedDataOnProject() | rpc.NewExtendedDataOnRevision():
            await _enqueue(app, call, params)
            return None
    raise ProtocolError(f"Method '{call.method}' is not supported")  # unreachable: allowlisted


async def _enqueue(
    app: web.Application, call: rpc.Call, params: rpc.NotificationParameters
) -> None:
    settings = app[SETTINGS]
    registry = app[REGISTRY]
    profile = registry.profile(params.serviceIdentifier, params.profileIdentifier)
    check_api_url(params.apiUrl, settings.allowed_api_urls)
    notification = Notification(
        kind=NotificationKind(call.method),
        dialect=call.dialect,
        poid=params.poid,
        roid=getattr(params, "roid", None),
        edid=getattr(params, "edid", None),
        soid=params.soid,
        service=params.serviceIdentifier,
        profile=profile.identifier,
        api_url=params.apiUrl.rstrip("/"),
        token=params.token,
        user_token=params.userToken,
    )
    result = await app[STORAGE].enqueue(notification, max_attempts=settings.max_attempts)
    log.info(
        "notification_queued" if result.created else "notification_duplicate",
        method=call.method,
        dialect=str(call.dialect),
        **result.job.log_context(),
    )
