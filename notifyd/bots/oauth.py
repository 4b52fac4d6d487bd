"""The OAuth 2.0 provider: client registration, the authorization code grant (with PKCE),
refresh tokens, and the bearer check the resource endpoint relies on.

RFC 6749, 7591 and 7636, with the quirks BIMserver needs (its source at HEAD is cited where
one is accepted). Codes and tokens are random, single-purpose and stored only as hashes; a
replayed code or refresh token revokes every token descended from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from notifyd.bots.oauth_wire import ClientRegistration, RegistrationAnswer, TokenAnswer
from notifyd.bots.servicelist import bot_id, resource_url, serves_bots
from notifyd.config import Settings
from notifyd.errors import NotifydError
from notifyd.grants import (
    AuthorizationCode,
    ClientStyle,
    IssuedToken,
    OAuthClient,
    TokenKind,
    secret_hash,
)
from notifyd.services import Registry, ServiceSpec
from notifyd.storage.base import GrantStore

# A registration does not expire; BIMserver still wants a lifetime (Oltu requires
# expires_in beside issued_at), so it gets ten years.
REGISTRATION_LIFETIME_MS = 10 * 365 * 86_400 * 1000
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_MAX_FIELD = 2048


class OAuthError(NotifydError):
    """An RFC 6749 error: ``error`` is the code clients act on, the message says what."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


class InvalidRedirect(OAuthError):
    """The authorization request cannot be answered by redirecting: the client or the
    redirect URI is not known. It is shown to the user, never sent to an unchecked URI."""


class RedirectedError(OAuthError):
    """An authorization error the client learns by redirect (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: str, description: str, *, redirect_uri: str, state: str | None):
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self) -> str:
        return redirect_with(
            self.redirect_uri, error=self.error, error_description=self.message, state=self.state
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequest:
    """A checked authorization request, as the consent page shows it and posts it back."""

    client: OAuthClient
    redirect_uri: str  # where the answer goes
    redirect_uri_given: str | None  # as the request gave it (the token request must match)
    state: str | None  # passed back unchanged (BIMserver sends a JSON blob)
    code_challenge: str | None
    service: ServiceSpec | None  # None: the user chooses on the consent page
    choices: tuple[ServiceSpec, ...]  # what the user may choose from

    def query(self) -> dict[str, str]:
        """The request's parameters, for the consent form to post back."""
        params = {"client_id": self.client.client_id, "response_type": "code"}
        if self.redirect_uri_given is not None:
            params["redirect_uri"] = self.redirect_uri_given
        if self.state is not None:
            params["state"] = self.state
        if self.code_challenge is not None:
            params["code_challenge"] = self.code_challenge
            params["code_challenge_method"] = "S256"
        if self.service is not None:
            params["service"] = self.service.identifier
        return params


@dataclass(frozen=True, slots=True, kw_only=True)
class Bearer:
    """Who a resource request runs for, by its access token."""

    account: str
    client_id: str
    service: str


class OAuthProvider:
    def __init__(
        self,
        *,
        store: GrantStore,
        registry: Registry,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.clock = clock

    # -- registration (RFC 7591, and BIMserver's Oltu JSON) --------------------------------

    async def register(self, request: ClientRegistration) -> RegistrationAnswer:
        """A new client, or a new secret for the client registered with the same redirect
        URIs. ``client_icon`` is kept as text and never fetched (BIMserver's own server
        fetches it: a request forgery hole)."""
        if request.redirect_uris is not None:
            style = ClientStyle.RFC7591
            uris = request.redirect_uris
            if not uris:
                raise OAuthError("invalid_redirect_uri", "redirect_uris is empty")
        elif request.redirect_url is not None:
            style, uris = ClientStyle.BIMSERVER, [request.redirect_url]
        else:
            raise OAuthError(
                "invalid_redirect_uri",
                "a registration names where codes go: 'redirect_uris' (RFC 7591) "
                "or 'redirect_url' (BIMserver)",
            )
        for uri in uris:
            _check_redirect_uri(uri)
        method = request.token_endpoint_auth_method or "client_secret_basic"
        if method not in ("client_secret_basic", "client_secret_post"):
            raise OAuthError(
                "invalid_client_metadata",
                f"token_endpoint_auth_method {method!r} is not offered: "
                "use client_secret_basic or client_secret_post",
            )
        name = _text(request.client_name, "client_name") or urlsplit(uris[0]).netloc
        now = self.clock()
        secret = secrets.token_urlsafe(32)
        client = await self.store.register_client(
            OAuthClient(
                client_id=secrets.token_urlsafe(18),
                name=name,
                url=_text(request.client_url or request.client_uri, "client_url"),
                description=_text(request.client_description, "client_description"),
                icon=_text(request.client_icon or request.logo_uri, "client_icon"),
                redirect_uris=tuple(uris),
                style=style,
                registered_at=now,
            ),
            secret_hash(secret),
        )
        return RegistrationAnswer(
            client_id=client.client_id,
            client_secret=secret,
            issued_at=int(now * 1000),
            expires_in=REGISTRATION_LIFETIME_MS,
            client_id_issued_at=int(client.registered_at),
            client_secret_expires_at=0,
            client_name=client.name,
            redirect_uris=list(client.redirect_uris),
            token_endpoint_auth_method=method,
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )

    # -- authorization (the consent page) --------------------------------------------------

    async def check_authorization(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Raises InvalidRedirect (show it to the user) or RedirectedError (send it back)."""
        client_id = params.get("client_id", "")
        client = await self.store.client(client_id) if client_id else None
        if client is None:
            raise InvalidRedirect(
                "invalid_client",
                "client_id is missing or not registered here"
                if client_id
                else "the request has no client_id",
            )
        given = params.get("redirect_uri") or None
        redirect_uri = _registered_redirect(client, given)
        state = params.get("state")

        def refuse(error: str, description: str) -> RedirectedError:
            return RedirectedError(error, description, redirect_uri=redirect_uri, state=state)

        response_type = params.get("response_type")
        if response_type != "code":
            raise refuse(
                "unsupported_response_type", f"response_type must be 'code', not {response_type!r}"
            )
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or ("plain" if challenge else None)
        if challenge is not None and (method != "S256" or not _CHALLENGE.match(challenge)):
            raise refuse(
                "invalid_request",
                "PKCE needs code_challenge_method=S256 and a 43-character base64url "
                "code_challenge (the plain method is not accepted)",
            )
        choices = tuple(s for s in self.registry.services.values() if serves_bots(s))
        if not choices:
            raise refuse("temporarily_unavailable", "this provider offers no BIM-bots service")
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            redirect_uri_given=given,
            state=state,
            code_challenge=challenge,
            service=_service_asked(params.get("service"), state, choices),
            choices=choices,
        )

    async def approve(self, request: AuthorizationRequest, account: str, service: str) -> str:
        """The redirect that carries a new single-use code to the client."""
        spec = next((s for s in request.choices if s.identifier == service), None)
        if spec is None:
            raise OAuthError("invalid_request", f"service {service!r} is not offered here")
        code = secrets.token_urlsafe(32)
        await self.store.save_code(
            AuthorizationCode(
                code_hash=secret_hash(code),
                client_id=request.client.client_id,
                account=account,
                service=spec.identifier,
                redirect_uri=request.redirect_uri_given,
                code_challenge=request.code_challenge,
                expires_at=self.clock() + self.settings.oauth_code_seconds,
            )
        )
        return redirect_with(request.redirect_uri, code=code, state=request.state)

    # -- the token endpoint ----------------------------------------------------------------

    async def token(
        self,
        form: Mapping[str, str],
        basic: tuple[str, str] | None,
        *,
        public_base_url: str | None = None,
    ) -> TokenAnswer:
        """``public_base_url``: the request's, when a trusted proxy reported it."""
        client = await self._authenticate(form, basic)
        base = public_base_url or self.settings.public_base_url
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return await self._exchange_code(client, form, base)
        if grant_type == "refresh_token":
            return await self._refresh(client, form, base)
        raise OAuthError(
            "unsupported_grant_type",
            f"grant_type must be authorization_code or refresh_token, not {grant_type!r}",
        )

    async def _authenticate(
        self, form: Mapping[str, str], basic: tuple[str, str] | None
    ) -> OAuthClient:
        posted = form.get("client_secret")
        if basic is not None and posted is not None:
            raise OAuthError(
                "invalid_request",
                "the client authenticated twice (Authorization: Basic and client_secret); use one",
            )
        if basic is not None:
            client_id, secret = basic
        else:
            client_id, secret = form.get("client_id", ""), posted or ""
        if form.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_request", "client_id differs from the authenticated one")
        client = await self.store.client(client_id) if client_id and secret else None
        if client is None or not await self.store.secret_matches(client_id, secret_hash(secret)):
            raise OAuthError(
                "invalid_client",
                "client authentication failed: unknown client_id or wrong client_secret",
                status=401,
            )
        return client

    async def _exchange_code(
        self, client: OAuthClient, form: Mapping[str, str], base: str
    ) -> TokenAnswer:
        code_text = form.get("code")
        if not code_text:
            raise OAuthError("invalid_request", "the request has no code")
        now = self.clock()
        code, replayed = await self.store.take_code(secret_hash(code_text), now)
        if replayed:
            raise OAuthError(
                "invalid_grant", "the code was used before; the tokens it gave are revoked"
            )
        if code is None or code.expires_at <= now:
            raise OAuthError("invalid_grant", "the code is unknown or expired")
        if code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        self._check_code_redirect(client, code, form.get("redirect_uri"))
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not _VERIFIER.match(verifier) or not hmac.compare_digest(
                _s256(verifier), code.code_challenge
            ):
                raise OAuthError(
                    "invalid_grant", "code_verifier is missing or does not match code_challenge"
                )
        elif form.get("code_verifier"):
            raise OAuthError("invalid_request", "code_verifier sent for a code without PKCE")
        return await self._issue(
            client, code.account, code.service, family=code.code_hash, base=base
        )

    def _check_code_redirect(
        self, client: OAuthClient, code: AuthorizationCode, given: str | None
    ) -> None:
        """RFC 6749 section 4.1.3: the same redirect_uri as the authorization request. A
        client registered BIMserver's way is spared: BIMserver sends the literal
        ``redirect_uri=crap`` (``OAuthServiceImpl.java:381``), and such a client's codes were
        only ever sent to its registered address."""
        if client.style is ClientStyle.BIMSERVER:
            return
        if code.redirect_uri is not None and given != code.redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri differs from the one the code was issued for"
            )

    async def _refresh(
        self, client: OAuthClient, form: Mapping[str, str], base: str
    ) -> TokenAnswer:
        text = form.get("refresh_token")
        if not text:
            raise OAuthError("invalid_request", "the request has no refresh_token")
        token, replayed = await self.store.use_refresh_token(secret_hash(text), self.clock())
        if replayed:
            raise OAuthError(
                "invalid_grant",
                "the refresh token was used before; every token of its grant is revoked",
            )
        if token is None:
            raise OAuthError("invalid_grant", "the refresh token is unknown, expired or revoked")
        if token.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        return await self._issue(
            client, token.account, token.service, family=token.family, base=base
        )

    async def _issue(
        self, client: OAuthClient, account: str, service: str, *, family: str, base: str
    ) -> TokenAnswer:
        now = self.clock()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        common = {"client_id": client.client_id, "account": account, "service": service}
        await self.store.save_tokens(
            [
                IssuedToken(
                    token_hash=secret_hash(access),
                    kind=TokenKind.ACCESS,
                    family=family,
                    expires_at=now + self.settings.oauth_access_token_seconds,
                    **common,
                ),
                IssuedToken(
                    token_hash=secret_hash(refresh),
                    kind=TokenKind.REFRESH,
                    family=family,
                    expires_at=now + self.settings.oauth_refresh_token_seconds,
                    **common,
                ),
            ],
            now,
        )
        spec = self.registry.service(service)
        return TokenAnswer(
            access_token=access,
            token_type="Bearer",  # noqa: S106 (the scheme, not a secret)
            expires_in=int(self.settings.oauth_access_token_seconds),
            refresh_token=refresh,
            resource_url=resource_url(spec, base),
            service=service,
        )

    # -- the resource endpoint's check -----------------------------------------------------

    async def bearer(self, token: str | None) -> Bearer:
        if not token:
            raise OAuthError("invalid_token", "no access token: send Authorization: Bearer", 401)
        found = await self.store.live_token(secret_hash(token), TokenKind.ACCESS, self.clock())
        if found is None:
            raise OAuthError(
                "invalid_token", "the access token is unknown, expired or revoked", 401
            )
        return Bearer(account=found.account, client_id=found.client_id, service=found.service)


def redirect_with(uri: str, **params: str | None) -> str:
    """``uri`` with ``params`` added to its query (those it has are kept, RFC 6749 3.1.2)."""
    parts = urlsplit(uri)
    added = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _text(value: str | None, field: str) -> str | None:
    if value is not None and len(value) > _MAX_FIELD:
        raise OAuthError("invalid_client_metadata", f"{field} is longer than {_MAX_FIELD}")
    return value


def _check_redirect_uri(uri: str) -> None:
    """RFC 6749 section 3.1.2: absolute, no fragment; http(s) only (no custom schemes that
    another application on the user's machine could claim)."""
    parts = urlsplit(uri)
    if len(uri) > _MAX_FIELD or parts.scheme not in ("http", "https") or not parts.netloc:
        raise OAuthError(
            "invalid_redirect_uri", f"redirect URI {uri[:200]!r} is not an absolute http(s) URL"
        )
    if parts.fragment:
        raise OAuthError("invalid_redirect_uri", f"redirect URI {uri!r} has a fragment")


def _registered_redirect(client: OAuthClient, given: str | None) -> str:
    """Where the answer may go. An RFC 7591 client's redirect_uri must be one it
    registered (it may leave it out when it registered one). A client registered BIMserver's
    way registered one address; its requests may name another page of the same origin (the
    BIMserver UI's OAuth page), and go there."""
    if given is None:
        if len(client.redirect_uris) == 1:
            return client.redirect_uris[0]
        raise InvalidRedirect(
            "invalid_request", "the client registered several redirect URIs: name one"
        )
    if given in client.redirect_uris:
        return given
    if client.style is ClientStyle.BIMSERVER and _origin(given) == _origin(client.redirect_uris[0]):
        return given
    raise InvalidRedirect(
        "invalid_request", f"redirect_uri {given[:200]!r} is not registered for this client"
    )


def _origin(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.scheme.lower(), parts.netloc.lower()


def _service_asked(
    asked: str | None, state: str | None, choices: tuple[ServiceSpec, ...]
) -> ServiceSpec | None:
    """The service the client named: ``service`` (an identifier), or the one BIMserver
    names in its JSON state (``_serviceName``, ``_serviceOid`` against the list's id). That
    state is built by BIMserver's web UI, not its server, so it is read from the protocol
    reference, and anything else in ``state`` is passed back untouched. None leaves the
    choice to the user."""
    if asked:
        return next((s for s in choices if s.identifier == asked), None)
    try:
        blob = json.loads(state) if state else None
    except ValueError:
        return None
    if not isinstance(blob, dict):
        return None
    for spec in choices:
        if blob.get("_serviceName") in (spec.name, spec.identifier):
            return spec
        if str(blob.get("_serviceOid")) == str(bot_id(spec.identifier)):
            return spec
    return None
