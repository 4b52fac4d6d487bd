"""The public address of a request that came through a reverse proxy.

Every URL notifyd hands out (``getService``, ``/servicelist``, token answers, ``Location``
headers, the consent form) is built from the public base URL: ``public_url`` when it is
configured (the administrator said so); otherwise, when the request comes from an address in
``trusted_proxies``, the scheme, host and path prefix that proxy reports; otherwise the
configured host and port. ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Forwarded-Prefix``; of a list, the last element counts (the
one the nearest proxy, ours, added). A value that is not a plain scheme, host or path is
ignored, never copied into a URL. A client that sends these headers directly, not through a
trusted proxy, changes nothing.
"""

from __future__ import annotations

import ipaddress
import re

from aiohttp import web

from notifyd.config import Settings
from notifyd.web.keys import SETTINGS

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*/?$")
_PROTOS = frozenset({"http", "https"})


def public_base_url(request: web.Request) -> str:
    """This request's public base URL (no copy of the settings: cheap on any request)."""
    settings = request.app[SETTINGS]
    return forwarded_base_url(request, settings) or settings.public_base_url


def public_settings(request: web.Request) -> Settings:
    """The settings with ``public_url`` as this request's public base URL."""
    settings = request.app[SETTINGS]
    base = forwarded_base_url(request, settings)
    if base is None:
        return settings
    return settings.model_copy(update={"public_url": base})


def forwarded_base_url(request: web.Request, settings: Settings) -> str | None:
    """The base URL a trusted proxy reports, or None (not configured, not trusted, or the
    proxy reported no host)."""
    if settings.public_url or not settings.trusted_proxies:
        return None
    try:
        remote = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return None
    if not any(remote in net for net in settings.trusted_proxies):
        return None
    proto, host = _from_forwarded(request.headers.get("Forwarded", ""))
    proto = proto or _last(request.headers.get("X-Forwarded-Proto", ""))
    host = host or _last(request.headers.get("X-Forwarded-Host", ""))
    prefix = _last(request.headers.get("X-Forwarded-Prefix", ""))
    if not host or not _HOST.match(host):
        return None
    scheme = proto.lower() if proto.lower() in _PROTOS else request.scheme
    prefix = prefix.rstrip("/") if prefix and _PREFIX.match(prefix) else ""
    return f"{scheme}://{host}{prefix}{settings.base_path}"


def _last(value: str) -> str:
    return value.rsplit(",", 1)[-1].strip()


def _from_forwarded(value: str) -> tuple[str, str]:
    """``proto`` and ``host`` of the last element of an RFC 7239 ``Forwarded`` header."""
    proto = host = ""
    element = _last(value)
    for pair in element.split(";"):
        name, _, raw = pair.partition("=")
        text = raw.strip().strip('"')
        match name.strip().lower():
            case "proto":
                proto = text
            case "host":
                host = text
    return proto, host
