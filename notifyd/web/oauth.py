"""The OAuth 2.0 provider's endpoints: ``/oauth/register``, ``/oauth/authorize`` (the
consent page, aiohttp-jinja2) and ``/oauth/access``. The rules are in ``bots.oauth``; this
module turns requests into its calls and its errors into RFC 6749 answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp_jinja2
import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from notifyd.access import basic_credentials
from notifyd.bots.accounts import (
    AccountError,
)
from notifyd.bots.oauth import (
    AuthorizationRequest,
    InvalidRedirect,
    OAuthError,
    RedirectedError,
    redirect_with,
)
from notifyd.bots.oauth_wire import ClientRegistration, ErrorAnswer
from notifyd.web.body import BodyError, read_body
from notifyd.web.forwarded import public_settings
from notifyd.web.keys import BODY_BUDGET, BODY_LIMITS, OAUTH, SETTINGS, USER_ACCOUNTS

log = structlog.get_logger("notifyd.oauth")

# The consent page must not be framed by another site (clickjacking the Allow button), nor
# kept by a shared cache.
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; style-src 'self' "
    "'unsafe-inline'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
_TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(exc: OAuthError, headers: dict[str, str] | None = None) -> web.Response:
    body = ErrorAnswer(error=exc.error, error_description=exc.message)
    return web.json_response(
        text=body.model_dump_json(),
        status=exc.status,
        headers={**_TOKEN_HEADERS, **(headers or {})},
    )


async def handle_register(request: web.Request) -> web.Response:
    try:
        body = await read_body(request, request.app[BODY_LIMITS], request.app[BODY_BUDGET])
        document = orjson.loads(body)
        registration = ClientRegistration.model_validate(document)
    except BodyError as exc:
        return error_response(OAuthError("invalid_request", exc.message, exc.status or 400))
    except orjson.JSONDecodeError:
        return error_response(
            OAuthError("invalid_client_metadata", "the registration must be a JSON object")
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        return error_response(OAuthError("invalid_client_metadata", f"{where}: {first['msg']}"))
    try:
        answer = await request.app[OAUTH].register(registration)
    except OAuthError as exc:
        return error_response(exc)
    log.info("oauth_client_registered", client_id=answer.client_id, name=answer.client_name)
    # RFC 7591 answers 201; a client registering BIMserver's way gets the 200 BIMserver's own
    # registration endpoint answers (OAuthRegistrationServlet.java:97, SC_OK).
    status = 201 if registration.redirect_uris is not None else 200
    return web.json_response(text=answer.model_dump_json(), status=status, headers=_TOKEN_HEADERS)


async def handle_authorize_page(request: web.Request) -> web.StreamResponse:
    params = dict(request.query)
    try:
        checked = await request.app[OAUTH].check_authorization(params)
    except InvalidRedirect as exc:
        return _problem_page(request, exc)
    except RedirectedError as exc:
        raise web.HTTPFound(exc.location()) from None
    return _consent_page(request, checked)


async def handle_authorize_answer(request: web.Request) -> web.StreamResponse:
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        checked = await request.app[OAUTH].check_authorization(form)
    except InvalidRedirect as exc:
        return _problem_page(request, exc)
    except RedirectedError as exc:
        raise web.HTTPSeeOther(exc.location()) from None
    if form.get("decision") != "allow":
        log.info("oauth_denied", client_id=checked.client.client_id)
        location = redirect_with(
            checked.redirect_uri,
            error="access_denied",
            error_description="the user denied the request",
            state=checked.state,
        )
        raise web.HTTPSeeOther(location)
    name, password = form.get("username", "").strip(), form.get("password", "")
    service = form.get("service", "") or (checked.service.identifier if checked.service else "")
    try:
        accounts = request.app[USER_ACCOUNTS]
        if form.get("create") == "on":
            account = (await accounts.create(name=name, password=password)).name
            log.info("account_created", account=account)
        else:
            account = (await accounts.sign_in(password, name=name)).name
    except AccountError as exc:
        return _consent_page(request, checked, error=exc.message, status=401)
    try:
        location = await request.app[OAUTH].approve(checked, account, service)
    except OAuthError as exc:
        return _consent_page(request, checked, error=exc.message, status=400)
    log.info("oauth_approved", client_id=checked.client.client_id, account=account)
    raise web.HTTPSeeOther(location)


async def handle_access(request: web.Request) -> web.Response:
    """The token endpoint: form-encoded (BIMserver, and RFC 6749) or JSON; client secret in
    the body or in Authorization: Basic."""
    basic_used = request.headers.get("Authorization", "").lower().startswith("basic ")
    try:
        form = await _token_form(request)
        basic = _basic_credentials(request.headers.get("Authorization"))
        answer = await request.app[OAUTH].token(
            form, basic, public_base_url=public_settings(request).public_base_url
        )
    except OAuthError as exc:
        challenge = (
            {"WWW-Authenticate": 'Basic realm="notifyd"'}
            if exc.status == 401 and basic_used
            else None
        )
        log.info("oauth_token_refused", error=exc.error, reason=exc.message)
        return error_response(exc, challenge)
    log.info("oauth_token_issued", service=answer.service, grant=form.get("grant_type"))
    return web.json_response(text=answer.model_dump_json(), headers=_TOKEN_HEADERS)


async def _token_form(request: web.Request) -> dict[str, str]:
    kind = request.content_type
    if kind == "application/json":
        try:
            body = await read_body(request, request.app[BODY_LIMITS], request.app[BODY_BUDGET])
            document: Any = orjson.loads(body)
        except (BodyError, orjson.JSONDecodeError) as exc:
            raise OAuthError("invalid_request", f"the body is not a JSON object: {exc}") from None
        if not isinstance(document, dict):
            raise OAuthError("invalid_request", "the body must be a JSON object")
        return {k: v for k, v in document.items() if isinstance(v, str)}
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    raise OAuthError(
        "invalid_request",
        f"send the token request as application/x-www-form-urlencoded, not {kind or 'nothing'}",
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 section 2.3.1: the id and secret are form-urlencoded inside Basic."""
    try:
        pair = basic_credentials(header)
    except ValueError as exc:
        raise OAuthError("invalid_client", str(exc), 401) from None
    if pair is None:
        return None
    client_id, secret = pair
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _consent_page(
    request: web.Request,
    checked: AuthorizationRequest,
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    settings = request.app[SETTINGS]
    public_path = urlsplit(public_settings(request).public_base_url).path.rstrip("/")
    response = aiohttp_jinja2.render_template(
        "authorize.html",
        request,
        {
            "client": checked.client,
            "params": checked.query(),
            "service": checked.service,
            "choices": checked.choices,
            "provider": settings.provider_name,
            "open_registration": request.app[USER_ACCOUNTS].settings.open_registration,
            "action": f"{public_path}/oauth/authorize",
            "error": error,
        },
        status=status,
    )
    response.headers.update(_PAGE_HEADERS)
    return response


def _problem_page(request: web.Request, exc: OAuthError) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "oauth_problem.html", request, {"message": exc.message}, status=400
    )
    response.headers.update(_PAGE_HEADERS)
    return response


def add_routes(app: web.Application, base_path: str) -> None:
    app.router.add_post(f"{base_path}/oauth/register", handle_register)
    app.router.add_get(f"{base_path}/oauth/authorize", handle_authorize_page)
    app.router.add_post(f"{base_path}/oauth/authorize", handle_authorize_answer)
    app.router.add_post(f"{base_path}/oauth/access", handle_access)
