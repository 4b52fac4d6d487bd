"""Faults a test can inject into the emulated BIMserver: transport failures and BIMserver
exceptions with the types and messages the real server uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web


class FaultKind(StrEnum):
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    SLOW = "slow"  # answer after ``delay`` seconds
    HTTP_404 = "http_404"
    DROP = "drop"  # close the connection without an answer
    DROP_AFTER = "drop_after"  # do the call, then close the connection without an answer
    TRUNCATE = "truncate"  # /download: send half the file, then close
    NO_DATA_FOR_TOPIC = "no_data_for_topic"  # the long action is gone (server restarted)
    EXPIRED_TOKEN = "expired_token"  # noqa: S105 - a fault name, not a secret
    EXCEPTION = "exception"  # a UserException (or ``exception_type``) with ``message``
    REDIRECT = "redirect"  # 307 to ``message`` (a proxy or a hijacked server sending elsewhere)


@dataclass(slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    target: str  # "Interface.method", "method", "/download", "/upload" or "*"
    times: int = 1
    delay: float = 0.0
    message: str = "injected fault"
    exception_type: str = "UserException"

    def matches(self, target: str) -> bool:
        return self.times > 0 and (
            self.target in ("*", target) or target.endswith("." + self.target)
        )


class FaultPlan:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def take(self, target: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(target):
                fault.times -= 1
                return fault
        return None


async def transport_fault(request: web.Request, fault: Fault | None) -> web.StreamResponse | None:
    """The answer a transport fault gives instead of BIMserver's, or None to go on."""
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
    if fault.kind is FaultKind.REDIRECT:
        return web.Response(status=307, headers={"Location": fault.message})
    if fault.kind is FaultKind.DROP:
        drop(request)
    return None


def drop(request: web.Request) -> None:
    """Close the connection with no answer."""
    assert request.transport is not None
    request.transport.abort()
    raise asyncio.CancelledError
