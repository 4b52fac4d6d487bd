"""Signatures shared with a platform that registered with the provider and holds a secret.

Two directions, both HMAC-SHA256 with the platform's secret (``whsec_`` + base64 of 32
random bytes, the Standard Webhooks form):

- **Tokens notifyd issues for the platform** are JWTs (RFC 7519) signed with HS256: header
  ``{"alg": "HS256", "typ": "JWT"}``, claims ``iss`` (the provider's name), ``aud`` (the
  platform), ``sub`` (the account), ``jti`` (the token's id), ``iat``. The platform checks
  the signature with its secret and reads whom the token is for; notifyd still stores only
  the token's SHA-256, like any user token.
- **Requests the platform signs** are checked the Standard Webhooks way
  (standardwebhooks.com): headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
  ``webhook-signature`` (space-separated ``v1,<base64>`` entries), the signature being
  HMAC-SHA256 over ``<id>.<timestamp>.<body>``. A timestamp more than 5 minutes off is
  refused, and so is an id seen before (replay); the storage remembers ids for that window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from notifyd.errors import NotifydError

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
TOLERANCE_SECONDS = 300


class SignatureError(NotifydError):
    """A signed request that cannot be believed; the message names why."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(secret: str, claims: dict[str, Any]) -> str:
    """A JWT HS256 over ``claims``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret_bytes(secret), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    webhook_id: str
    timestamp: int


def verify_request(secret: str, headers: dict[str, str], body: bytes, now: float) -> SignedRequest:
    """The request's id and time once its signature is right; SignatureError otherwise.
    (Whether the id was seen before is the caller's to check, against the storage.)"""
    webhook_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    missing = [
        name
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing:
        raise SignatureError(f"the request is not signed: {', '.join(missing)} missing")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise SignatureError(f"webhook-timestamp {stamp[:20]!r} is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            f"webhook-timestamp is {int(now - timestamp)} s off this server's clock "
            f"(at most {TOLERANCE_SECONDS} s either way): sign it again, or fix the clock"
        )
    content = f"{webhook_id}.{stamp}.".encode() + body
    expected = base64.b64encode(
        hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    ).decode()
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return SignedRequest(webhook_id, timestamp)
    raise SignatureError("webhook-signature does not match the body with this platform's secret")
