"""Who may call notifyd and which BIMserver the worker may call back.

BIMserver signs nothing, and a notification's ``apiUrl`` is where the worker will send the
notification's token, so both the caller and the ``apiUrl`` are checked against allowlists.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from notifyd.errors import Forbidden, ProtocolError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> tuple[str, str, int, str] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username or parts.password:
        return None
    return (
        parts.scheme,
        parts.hostname.lower(),
        port or _DEFAULT_PORTS[parts.scheme],
        parts.path.rstrip("/"),
    )


def normalise_api_url(api_url: str) -> str:
    """The one spelling of a BIMserver's address: ``scheme://host[:port][/path]``.

    BIMserver sends its ``siteAddress`` setting as typed by its administrator, to which the
    worker appends ``/json``, ``/download`` and ``/upload``: whitespace around it goes, as do
    an empty ``?``/``#``, a default port and trailing slashes; scheme and host are lower case.
    Whitespace or control characters inside it, a query, a fragment or credentials would
    make every later call fail or leak, so they are refused here, naming the fault."""
    text = api_url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ProtocolError(f"apiUrl {_quoted(text)} contains whitespace or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ProtocolError(f"apiUrl {_quoted(text)} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ProtocolError(f"apiUrl {_quoted(text)} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ProtocolError("apiUrl must not carry a user name or password")
    if parts.query or parts.fragment:
        part = "a query ('?…')" if parts.query else "a fragment ('#…')"
        raise ProtocolError(
            f"apiUrl {_quoted(text)} has {part}; it must be BIMserver's site address, "
            "to which /json is appended"
        )
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:197] + "...")


def check_api_url(api_url: str, allowed: Sequence[str]) -> None:
    """Raise ProtocolError unless ``api_url`` is on an allowed origin (and under its path)."""
    origin = _origin(api_url)
    if origin is None:
        raise ProtocolError(f"apiUrl '{api_url}' is not an http(s) URL with a host")
    for entry in allowed:
        permitted = _origin(entry)
        if permitted is None:
            continue
        if origin[:3] == permitted[:3] and (
            origin[3] == permitted[3] or origin[3].startswith(permitted[3] + "/")
        ):
            return
    raise ProtocolError(
        f"apiUrl '{api_url}' is not allowed: add its origin to allowed_api_urls "
        "(NOTIFYD_ALLOWED_API_URLS) to accept notifications from that BIMserver"
    )


def client_ip(
    remote: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The caller's address; X-Forwarded-For counts only when it was set by a trusted proxy."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return None
    if not forwarded_for or not any(address in net for net in trusted_proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop_address = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not any(hop_address in net for net in trusted_proxies):
            return hop_address
    return address


def check_client_ip(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    allowed: Sequence[IPNetwork],
) -> None:
    if not allowed:
        return
    if address is None or not any(address in net for net in allowed):
        raise Forbidden(f"requests from {address or 'an unknown address'} are not allowed")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header (RFC 7617), None when the
    header is absent or another scheme; ValueError, naming the fault, when it is malformed."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("Authorization: Basic is not base64 of UTF-8 text") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("Authorization: Basic has no ':' between the user and the password")
    return user, password
