"""``POST <base>/json``: BIMserver's notifications and descriptor calls.

A notification is answered only after its job is committed; nothing else (download, analysis)
happens on this path. Every failure is answered as BIMserver expects: HTTP 200 with a
``UserException`` whose message names the fault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web

from notifyd.access import check_client_ip, client_ip
from notifyd.errors import Forbidden, ProtocolError, StorageError
from notifyd.hooks import JsonCall
from notifyd.protocol import rpc
from notifyd.records import Dialect, NotificationKind
from notifyd.services import profile_descriptor, service_descriptor
from notifyd.signatures import SignatureError
from notifyd.user_accounts import private_profile_descriptor
from notifyd.web.body import BodyError, read_body
from notifyd.web.forwarded import public_base_url, public_settings
from notifyd.web.keys import (
    BODY_BUDGET,
    BODY_LIMITS,
    HOOKS,
    INTAKE,
    REGISTRY,
    SETTINGS,
    USER_ACCOUNTS,
)

log = structlog.get_logger("notifyd.rpc")


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def handle_json(request: web.Request) -> web.Response:
    """Answer the envelope and log one line saying what every call in it came to."""
    return await answer_envelope(request)


async def handle_platform_json(request: web.Request) -> web.Response:
    """The JSON endpoint for a platform that signs its requests (Standard Webhooks, see
    ``notifyd.signatures``): the same calls, believed only with a valid, fresh, unseen
    signature by the platform named in the path."""
    platform = request.match_info["platform"]

    async def check(body: bytes) -> None:
        await request.app[USER_ACCOUNTS].verify_platform_request(
            platform, {k.lower(): v for k, v in request.headers.items()}, body
        )

    return await answer_envelope(request, check)


async def answer_envelope(
    request: web.Request, check: Callable[[bytes], Awaitable[None]] | None = None
) -> web.Response:
    started = time.perf_counter()
    settings = request.app[SETTINGS]
    try:
        if settings.allowed_ips:
            address = client_ip(
                request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxies
            )
            check_client_ip(address, settings.allowed_ips)
        body = await read_body(request, request.app[BODY_LIMITS], request.app[BODY_BUDGET])
        if check is not None:
            await check(body)
        envelope = rpc.parse_envelope(body)
    except (ProtocolError, SignatureError) as exc:
        status = _refusal_status(exc)
        log.info("json_request", status=status, error=exc.message, **_timing(started))
        request.app[HOOKS].json_call(JsonCall(method="invalid", dialect="", outcome="refused"))
        return _json_response(rpc.exception_body(exc.message), status=status)

    if len(envelope.calls) == 1:
        outcomes = [await _answer(request, envelope.calls[0])]
    else:
        outcomes = await asyncio.gather(*(_answer(request, c) for c in envelope.calls))
    status = 503 if any(o.failed for o in outcomes) else 200
    body_out = rpc.answer(envelope.id, [o.body for o in outcomes], batch=envelope.batch)
    summaries = [o.summary for o in outcomes]
    calls: dict[str, Any] = summaries[0] if not envelope.batch else {"calls": summaries}
    (log.error if status != 200 else log.info)(
        "json_request", status=status, **calls, **_timing(started)
    )
    return _json_response(body_out, status=status)


def _refusal_status(exc: ProtocolError | SignatureError) -> int:
    """BIMserver reads a UserException from a 200; what the HTTP layer refuses keeps its own
    status (a body too large, a caller not allowed, a signature that does not hold)."""
    if isinstance(exc, SignatureError):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, BodyError):
        return exc.status
    return 200


def _timing(started: float) -> dict[str, float]:
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 2)}


@dataclass(frozen=True, slots=True)
class _Outcome:
    body: dict[str, Any]
    summary: dict[str, Any]
    failed: bool = False  # on our side (storage), not the caller's


async def _answer(request: web.Request, call: rpc.Call | ProtocolError) -> _Outcome:
    outcome = await _outcome(request, call)
    request.app[HOOKS].json_call(
        JsonCall(
            method=outcome.summary.get("method", "invalid"),
            dialect=outcome.summary.get("dialect", ""),
            outcome=_verdict(outcome),
        )
    )
    return outcome


def _verdict(outcome: _Outcome) -> str:
    if outcome.failed:
        return "not_stored"
    if "error" in outcome.summary:
        return "refused"
    if "job_id" in outcome.summary:
        return "duplicate" if outcome.summary["duplicate"] else "queued"
    return "answered"


async def _outcome(request: web.Request, call: rpc.Call | ProtocolError) -> _Outcome:
    if isinstance(call, ProtocolError):
        return _Outcome(rpc.exception_body(call.message), {"error": call.message})
    summary: dict[str, Any] = {"method": call.method, "dialect": str(call.dialect)}
    try:
        result = await _dispatch(request, call, summary)
    except ProtocolError as exc:
        return _Outcome(rpc.exception_body(exc.message), {**summary, "error": exc.message})
    except StorageError as exc:
        message = f"notifyd could not store the notification: {exc.message}"
        return _Outcome(rpc.exception_body(message), {**summary, "error": message}, failed=True)
    return _Outcome(rpc.result_body(result), summary)


async def _dispatch(request: web.Request, call: rpc.Call, summary: dict[str, Any]) -> Any:
    """Run an allowlisted call; what the log line should say about it goes into ``summary``."""
    app = request.app
    registry = app[REGISTRY]
    params = call.parameters
    match params:
        case rpc.GetService():
            return service_descriptor(
                registry.service(params.serviceIdentifier),
                public_settings(request),
                token_page=call.dialect is Dialect.BIMSIE1,
            ).to_wire()
        case rpc.GetPublicProfiles():
            return [
                profile_descriptor(p).to_wire()
                for p in registry.public_profiles(params.serviceIdentifier)
            ]
        case rpc.GetPrivateProfiles():
            profiles = await app[USER_ACCOUNTS].bimserver_profiles(
                params.serviceIdentifier, params.token, public_base_url(request)
            )
            return [private_profile_descriptor(p).to_wire() for p in profiles]
        case rpc.NewRevision() | rpc.NewExtendedDataOnProject() | rpc.NewExtendedDataOnRevision():
            summary.update(await _enqueue(request, call, params))
            return None
    raise ProtocolError(f"Method '{call.method}' is not supported")  # unreachable: allowlisted


async def _enqueue(
    request: web.Request, call: rpc.Call, params: rpc.NotificationParameters
) -> dict[str, Any]:
    accepted = await request.app[INTAKE].notification(
        NotificationKind(call.method), call.dialect, params, public_base_url(request)
    )
    n = accepted.notification
    return {
        "job_id": accepted.job_id,
        "duplicate": accepted.duplicate,
        "service": n.service,
        "poid": n.poid,
        "roid": n.roid,
    }
