"""The account pages: register, sign in and out, the account with its balance and ledger,
user tokens, and private profiles (``newProfileUrl`` is ``/profiles/new?service=...``).

Server-rendered, working without JavaScript; every form is CSRF-protected (``sessions``), and
every page is refused to frames and kept out of shared caches. The same rules as the JSON
API, through ``UserAccounts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from notifyd.bots.accounts import AccountError
from notifyd.errors import UnknownService
from notifyd.grants import Account
from notifyd.services import ServiceSpec
from notifyd.user_accounts import ProfileError
from notifyd.web.forwarded import public_settings
from notifyd.web.keys import SESSIONS, SETTINGS, USER_ACCOUNTS
from notifyd.web.sessions import csrf_ok, csrf_token, set_csrf_cookie

PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


def base_path(request: web.Request) -> str:
    """The public path prefix of the pages (behind a proxy, its prefix too)."""
    return urlsplit(public_settings(request).public_base_url).path.rstrip("/")


async def signed_in(request: web.Request) -> Account | None:
    name = request.app[SESSIONS].account(request)
    return await request.app[USER_ACCOUNTS].grants.account(name) if name else None


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    full = {
        "provider": request.app[SETTINGS].provider_name,
        "base": base_path(request),
        "account": await signed_in(request),
        "csrf": csrf_token(request),
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    response.headers.update(PAGE_HEADERS)
    set_csrf_cookie(request, response, secure=is_https(request))
    return response


async def form_of(request: web.Request) -> dict[str, str]:
    """The posted form; a missing or wrong CSRF token ends the request with 403."""
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not csrf_ok(request, form):
        raise web.HTTPForbidden(
            text="this form is stale or was sent from another site: reload the page and retry",
        )
    return form


def is_https(request: web.Request) -> bool:
    return public_settings(request).public_base_url.startswith("https:")


def redirect_to(request: web.Request, path: str) -> web.HTTPSeeOther:
    """303 to a page of this site, under its public prefix."""
    return web.HTTPSeeOther(f"{base_path(request)}{path}", headers=PAGE_HEADERS)


def _safe_next(value: str) -> str:
    """Only a path on this site, never another host (an open redirect): browsers read
    ``/\\host`` as ``//host``, and drop tabs and newlines from a URL."""
    on_site = value.startswith("/") and value[1:2] not in ("/", "\\")
    if not on_site or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "/account"
    return value


async def require(request: web.Request) -> Account:
    account = await signed_in(request)
    if account is None:
        target = request.path_qs.removeprefix(base_path(request)) or "/account"
        raise redirect_to(request, f"/account/login?next={quote(target)}")
    return account


# -- register, sign in, sign out ---------------------------------------------------------


async def register_page(request: web.Request) -> web.Response:
    context = {"form": {}, "next": request.query.get("next", "/account")}
    return await render(request, "register.html", context)


async def register(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    accounts = request.app[USER_ACCOUNTS]
    try:
        account = await accounts.create(
            name=form.get("name", "").strip(),
            email=form.get("email", ""),
            password=form.get("password", ""),
        )
    except AccountError as exc:
        context = {"form": form, "next": form.get("next", ""), "error": exc.message}
        return await render(request, "register.html", context, status=400)
    response = redirect_to(request, _safe_next(form.get("next", "")))
    request.app[SESSIONS].start(response, account.name, secure=is_https(request))
    raise response


async def login_page(request: web.Request) -> web.Response:
    context = {"form": {}, "next": request.query.get("next", "/account")}
    return await render(request, "login.html", context)


async def login(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    try:
        account = await request.app[USER_ACCOUNTS].sign_in(
            form.get("password", ""), email=form.get("email", "")
        )
    except AccountError as exc:
        context = {"form": {"email": form.get("email", "")}, "next": form.get("next", "")}
        return await render(request, "login.html", {**context, "error": exc.message}, 401)
    response = redirect_to(request, _safe_next(form.get("next", "")))
    request.app[SESSIONS].start(response, account.name, secure=is_https(request))
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await form_of(request)
    response = redirect_to(request, "/account/login")
    request.app[SESSIONS].end(response)
    raise response


# -- the account --------------------------------------------------------------------------


def when(epoch: float | None) -> str:
    """A time as the pages show it (UTC); empty for none."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def account_page(request: web.Request) -> web.Response:
    account = await require(request)
    store = request.app[USER_ACCOUNTS].store
    ledger = [
        {"when": when(e.created_at), "note": e.note, "amount": e.amount}
        for e in reversed(await store.ledger(account.name))
    ]
    prices = sorted(request.app[SETTINGS].prices.items())
    context = {"balance": await store.balance(account.name), "ledger": ledger, "prices": prices}
    return await render(request, "account.html", context)


async def tokens_page(request: web.Request, new_token: str | None = None) -> web.Response:
    account = await require(request)
    tokens = [
        {
            "id": t.id,
            "label": t.label,
            "created": when(t.created_at),
            "revoked": t.revoked_at is not None,
        }
        for t in await request.app[USER_ACCOUNTS].store.user_tokens(account.name)
    ]
    return await render(request, "tokens.html", {"tokens": tokens, "new_token": new_token})


async def create_token(request: web.Request) -> web.Response:
    account = await require(request)
    form = await form_of(request)
    _token, secret = await request.app[USER_ACCOUNTS].issue_token(
        account.name, form.get("label", "")
    )
    return await tokens_page(request, new_token=secret)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    account = await require(request)
    await form_of(request)
    accounts = request.app[USER_ACCOUNTS]
    await accounts.store.revoke_user_token(account.name, request.match_info["id"], accounts.clock())
    raise redirect_to(request, "/account/tokens")


# -- private profiles ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingField:
    name: str
    title: str
    kind: str
    value: str
    help: str


def _setting_fields(spec: ServiceSpec, values: dict[str, Any]) -> list[SettingField]:
    schema = spec.settings.model_json_schema()
    fields = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "string")
        value = values.get(name, prop.get("default", ""))
        if kind == "boolean":
            shown = "true" if value else "false"
        elif kind == "array":
            shown = ", ".join(str(v) for v in value or [])
        else:
            shown = "" if value is None else str(value)
        help_text = prop.get("description", "")
        if kind == "array":
            help_text = (help_text + " " if help_text else "") + "(comma separated)"
        fields.append(SettingField(name, prop.get("title", name), kind, shown, help_text))
    return fields


def _settings_from_form(spec: ServiceSpec, form: dict[str, str]) -> dict[str, Any]:
    """The form's ``setting.<name>`` fields as the model's types expect them; what cannot be
    read is passed as typed, so that validation names it next to its field."""
    properties = spec.settings.model_json_schema().get("properties", {})
    settings: dict[str, Any] = {}
    for name, prop in properties.items():
        raw = form.get(f"setting.{name}")
        if raw is None:
            continue
        kind = prop.get("type", "string")
        if kind == "boolean":
            settings[name] = {"true": True, "false": False}.get(raw, raw)
        elif kind == "array":
            settings[name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif kind in ("integer", "number"):
            try:
                settings[name] = json.loads(raw)
            except ValueError:
                settings[name] = raw
        else:
            settings[name] = raw
    return settings


async def profiles_page(request: web.Request) -> web.Response:
    account = await require(request)
    accounts = request.app[USER_ACCOUNTS]
    profiles = [
        {
            "service": p.service,
            "identifier": p.identifier,
            "name": p.name,
            "settings_text": json.dumps(p.settings, sort_keys=True),
        }
        for p in await accounts.store.private_profiles(account.name, None)
    ]
    services = list(accounts.registry.services.values())
    return await render(request, "profiles.html", {"profiles": profiles, "services": services})


def _service(request: web.Request, identifier: str) -> ServiceSpec:
    try:
        return request.app[USER_ACCOUNTS].registry.service(identifier)
    except UnknownService as exc:
        raise web.HTTPNotFound(text=exc.message) from None


async def new_profile_page(request: web.Request) -> web.Response:
    await require(request)
    spec = _service(request, request.query.get("service", ""))
    context = {
        "service": spec,
        "form": {},
        "fields": {},
        "editing": False,
        "settings_fields": _setting_fields(spec, {}),
    }
    return await render(request, "profile_form.html", context)


async def edit_profile_page(request: web.Request) -> web.Response:
    account = await require(request)
    spec = _service(request, request.query.get("service", ""))
    found = await request.app[USER_ACCOUNTS].store.private_profile(
        account.name, spec.identifier, request.query.get("identifier", "")
    )
    if found is None:
        raise web.HTTPNotFound(text="no such profile in your account")
    context = {
        "service": spec,
        "form": {
            "identifier": found.identifier,
            "name": found.name,
            "description": found.description,
        },
        "fields": {},
        "editing": True,
        "settings_fields": _setting_fields(spec, found.settings),
    }
    return await render(request, "profile_form.html", context)


async def save_profile(request: web.Request) -> web.StreamResponse:
    account = await require(request)
    form = await form_of(request)
    spec = _service(request, form.get("service", ""))
    settings = _settings_from_form(spec, form)
    try:
        await request.app[USER_ACCOUNTS].save_profile(
            account.name,
            service=spec.identifier,
            identifier=form.get("identifier", "").strip(),
            name=form.get("name", ""),
            description=form.get("description", ""),
            settings=settings,
        )
    except ProfileError as exc:
        context = {
            "service": spec,
            "form": form,
            "fields": exc.fields,
            "editing": form.get("editing") == "1",
            "settings_fields": _setting_fields(spec, {**settings}),
            "error": exc.message,
        }
        return await render(request, "profile_form.html", context, status=400)
    raise redirect_to(request, "/profiles")


async def delete_profile(request: web.Request) -> web.StreamResponse:
    account = await require(request)
    form = await form_of(request)
    await request.app[USER_ACCOUNTS].store.delete_profile(
        account.name, form.get("service", ""), form.get("identifier", "")
    )
    raise redirect_to(request, "/profiles")


def add_routes(app: web.Application, base: str) -> None:
    app.router.add_get(f"{base}/account/register", register_page)
    app.router.add_post(f"{base}/account/register", register)
    app.router.add_get(f"{base}/account/login", login_page)
    app.router.add_post(f"{base}/account/login", login)
    app.router.add_post(f"{base}/account/logout", logout)
    app.router.add_get(f"{base}/account", account_page)
    app.router.add_get(f"{base}/account/tokens", tokens_page)
    app.router.add_post(f"{base}/account/tokens", create_token)
    app.router.add_post(f"{base}/account/tokens/{{id}}/revoke", revoke_token)
    app.router.add_get(f"{base}/profiles", profiles_page)
    app.router.add_get(f"{base}/profiles/new", new_profile_page)
    app.router.add_get(f"{base}/profiles/edit", edit_profile_page)
    app.router.add_post(f"{base}/profiles/save", save_profile)
    app.router.add_post(f"{base}/profiles/delete", delete_profile)
