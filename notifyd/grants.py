"""Stored records of the BIM-bots OAuth 2.0 provider: accounts, registered clients, codes and
tokens. Secrets are never stored, only their SHA-256 (they are random and long, so a plain
hash is enough; passwords are the exception and use scrypt, see ``bots.accounts``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    name: str
    password_hash: str
    created_at: float
    email: str | None = None  # the sign-in of the accounts API (BIM-bots accounts have none)
    is_admin: bool = False


class ClientStyle(StrEnum):
    BIMSERVER = "bimserver"  # Oltu's JSON (redirect_url); its token request sends redirect_uri=crap
    RFC7591 = "rfc7591"  # redirect_uris, checked exactly


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthClient:
    client_id: str
    name: str
    url: str | None
    description: str | None
    icon: str | None  # an address shown as text, never fetched
    redirect_uris: tuple[str, ...]
    style: ClientStyle
    registered_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    account: str
    service: str
    redirect_uri: str | None  # as the authorization request gave it, if it did
    code_challenge: str | None  # PKCE, S256
    expires_at: float


class TokenKind(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    token_hash: str
    kind: TokenKind
    client_id: str
    account: str
    service: str  # the service the user chose when consenting: its URL is resource_url
    family: str  # every token descending from one code: revoked together on a replay
    expires_at: float
