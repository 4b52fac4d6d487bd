"""The accounts JSON API, for scripts and desktop programs that have no browser: register, get
and revoke user tokens, read the account and its balance, manage private profiles.

Signing in is HTTP Basic with the e-mail and password (to get the first token) or
``Authorization: Bearer <user token>``. Every error is ``{"error": "..."}`` naming the fault,
with the HTTP status that fits it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifyd.access import basic_credentials
from notifyd.account_records import PrivateProfile, UserToken
from notifyd.bots.accounts import AccountError, AccountTaken, RegistrationClosed
from notifyd.errors import UnknownService
from notifyd.grants import Account
from notifyd.user_accounts import ProfileError
from notifyd.web.keys import USER_ACCOUNTS


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    password: str
    name: str


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""
    platform: str | None = None  # a token signed for this platform (a JWT, HS256)


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    identifier: str
    name: str
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="notifyd", Basic realm="notifyd"'}
    return web.json_response(
        {"error": message, **extra}, status=status, headers=headers if status == 401 else None
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _error(status, message, **extra)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes not UTF-8
        raise ApiError(400, f"the body is not JSON in UTF-8: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(400, f"the body does not fit: {problems}") from None


async def _signed_in(request: web.Request, *, basic: bool) -> Account:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    accounts = request.config_dict[USER_ACCOUNTS]
    if scheme.lower() == "bearer" and credentials.strip():
        account = await accounts.account_of_token(credentials.strip())
        if account is None:
            raise ApiError(401, "the user token is unknown or revoked; create one at /api/tokens")
        return account
    if scheme.lower() == "basic" and basic:
        try:
            email, password = basic_credentials(header) or ("", "")
        except ValueError as exc:
            raise ApiError(401, f"{exc}: send base64 of email:password") from None
        try:
            return await accounts.sign_in(password, email=email)
        except AccountError as exc:
            raise ApiError(401, exc.message) from None
    wanted = "Basic (e-mail and password) or Bearer (a user token)" if basic else "Bearer"
    raise ApiError(401, f"sign in with Authorization: {wanted}")


def _token_view(token: UserToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "created_at": token.created_at,
        "revoked": token.revoked_at is not None,
    }


def _profile_view(profile: PrivateProfile) -> dict[str, Any]:
    return {
        "service": profile.service,
        "identifier": profile.identifier,
        "name": profile.name,
        "description": profile.description,
        "settings": profile.settings,
        "updated_at": profile.updated_at,
    }


async def create_account(request: web.Request) -> web.Response:
    body = await _body(request, NewAccount)
    try:
        account = await request.config_dict[USER_ACCOUNTS].create(
            name=body.name, email=body.email, password=body.password
        )
    except AccountTaken as exc:
        raise ApiError(409, exc.message) from None
    except RegistrationClosed as exc:
        raise ApiError(403, exc.message) from None
    except AccountError as exc:
        raise ApiError(400, exc.message) from None
    return web.json_response({"name": account.name, "email": account.email}, status=201)


async def create_token(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=True)
    body = await _body(request, NewToken)
    try:
        token, secret = await request.config_dict[USER_ACCOUNTS].issue_token(
            account.name, body.label, body.platform
        )
    except AccountError as exc:
        raise ApiError(404, exc.message) from None
    return web.json_response({**_token_view(token), "token": secret}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=True)
    tokens = await request.config_dict[USER_ACCOUNTS].store.user_tokens(account.name)
    return web.json_response([_token_view(t) for t in tokens])


async def revoke_token(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=True)
    accounts = request.config_dict[USER_ACCOUNTS]
    token_id = request.match_info["id"]
    if not await accounts.store.revoke_user_token(account.name, token_id, accounts.clock()):
        raise ApiError(404, f"no live token {token_id!r} of this account")
    return web.Response(status=204)


async def show_account(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=True)
    balance = await request.config_dict[USER_ACCOUNTS].store.balance(account.name)
    return web.json_response(
        {
            "name": account.name,
            "email": account.email,
            "balance": balance,
            "is_admin": account.is_admin,
        }
    )


async def create_profile(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=False)
    body = await _body(request, ProfileBody)
    store = request.config_dict[USER_ACCOUNTS].store
    if await store.private_profile(account.name, body.service, body.identifier):
        raise ApiError(
            409,
            f"{body.service} already has a profile {body.identifier!r}; "
            f"PUT /api/profiles/{body.identifier}?service={body.service} to change it",
        )
    profile = await _save(request, account, body)
    return web.json_response(_profile_view(profile), status=201)


async def _save(request: web.Request, account: Account, body: ProfileBody) -> PrivateProfile:
    try:
        profile, _created = await request.config_dict[USER_ACCOUNTS].save_profile(
            account.name,
            service=body.service,
            identifier=body.identifier,
            name=body.name,
            description=body.description,
            settings=body.settings,
        )
    except UnknownService as exc:
        raise ApiError(404, exc.message) from None
    except ProfileError as exc:
        raise ApiError(400, exc.message, fields=exc.fields) from None
    return profile


async def _existing(
    request: web.Request, account: Account, service: str, identifier: str
) -> PrivateProfile:
    found = await request.config_dict[USER_ACCOUNTS].store.private_profile(
        account.name, service, identifier
    )
    if found is None:
        raise ApiError(404, f"no profile {identifier!r} of {service} in this account")
    return found


def _service_param(request: web.Request) -> str:
    service = request.query.get("service", "")
    if not service:
        raise ApiError(400, "name the service: ?service=<service identifier>")
    return service


async def list_profiles(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=False)
    profiles = await request.config_dict[USER_ACCOUNTS].store.private_profiles(
        account.name, request.query.get("service") or None
    )
    return web.json_response([_profile_view(p) for p in profiles])


async def show_profile(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=False)
    service, identifier = _service_param(request), request.match_info["identifier"]
    return web.json_response(_profile_view(await _existing(request, account, service, identifier)))


async def replace_profile(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=False)
    service, identifier = _service_param(request), request.match_info["identifier"]
    await _existing(request, account, service, identifier)
    raw = await _body(request, _ProfileChange)
    body = ProfileBody(
        service=service,
        identifier=identifier,
        name=raw.name,
        description=raw.description,
        settings=raw.settings,
    )
    return web.json_response(_profile_view(await _save(request, account, body)))


class _ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)


async def delete_profile(request: web.Request) -> web.Response:
    account = await _signed_in(request, basic=False)
    service, identifier = _service_param(request), request.match_info["identifier"]
    if not await request.config_dict[USER_ACCOUNTS].store.delete_profile(
        account.name, service, identifier
    ):
        raise ApiError(404, f"no profile {identifier!r} of {service} in this account")
    return web.Response(status=204)


@web.middleware
async def api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response


def api_app() -> web.Application:
    """The API as a sub-application (mounted at ``<base_path>/api``), with its own error
    middleware."""
    api = web.Application(middlewares=[api_errors])
    api.router.add_post("/accounts", create_account)
    api.router.add_post("/tokens", create_token)
    api.router.add_get("/tokens", list_tokens)
    api.router.add_delete("/tokens/{id}", revoke_token)
    api.router.add_get("/account", show_account)
    api.router.add_post("/profiles", create_profile)
    api.router.add_get("/profiles", list_profiles)
    api.router.add_get("/profiles/{identifier}", show_profile)
    api.router.add_put("/profiles/{identifier}", replace_profile)
    api.router.add_delete("/profiles/{identifier}", delete_profile)
    return api
