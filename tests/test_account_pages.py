"""The account pages without a browser (tests/test_browser_pages.py drives a real one):
every form needs its CSRF token, a session cookie signs the user in, a token is shown once,
and a profile's bad setting is named next to its field."""

from __future__ import annotations

import re
from typing import Any

import pytest

ACCOUNT = {"name": "dora", "email": "dora@example.com", "password": "correct horse"}


async def csrf_of(client: Any, path: str) -> str:
    page = await client.get(path)
    assert page.status == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match is not None
    return match.group(1)


async def register(client: Any) -> None:
    token = await csrf_of(client, "/account/register")
    answer = await client.post(
        "/account/register",
        data={**ACCOUNT, "csrf_token": token, "next": "/account"},
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/account"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


async def test_register_sign_in_and_see_the_balance(client: Any) -> None:
    await register(client)
    page = await client.get("/account")
    text = await page.text()
    assert 'id="balance">0<' in text
    assert "dora@example.com" in text


async def test_a_form_without_its_csrf_token_is_refused(client: Any) -> None:
    await client.get("/account/register")
    answer = await client.post("/account/register", data=ACCOUNT)
    assert answer.status == 403
    assert "reload the page" in await answer.text()


async def test_a_page_that_needs_an_account_sends_to_sign_in(client: Any) -> None:
    answer = await client.get("/account/tokens", allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == "/account/login?next=/account/tokens"


async def test_a_token_is_shown_once_and_can_be_revoked(client: Any) -> None:
    await register(client)
    token = await csrf_of(client, "/account/tokens")
    created = await client.post("/account/tokens", data={"label": "office", "csrf_token": token})
    text = await created.text()
    secret = re.search(r'id="new-token">(ndu_[^<]+)<', text)
    assert secret is not None
    listed = await (await client.get("/account/tokens")).text()
    assert secret.group(1) not in listed
    assert "office" in listed
    account = await client.get(
        "/api/account", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert (await account.json())["name"] == "dora"


async def test_a_bad_setting_is_named_next_to_its_field(client: Any) -> None:
    await register(client)
    token = await csrf_of(client, "/profiles/new?service=ifc-validation")
    form = {
        "csrf_token": token,
        "service": "ifc-validation",
        "identifier": "strict",
        "name": "Strict",
        "setting.check_unique_guids": "maybe",
    }
    refused = await client.post("/profiles/save", data=form)
    assert refused.status == 400
    text = await refused.text()
    assert 'class="field-error"' in text
    assert "check_unique_guids" in text
    saved = await client.post(
        "/profiles/save",
        data={**form, "setting.check_unique_guids": "false"},
        allow_redirects=False,
    )
    assert saved.status == 303
    listing = await (await client.get("/profiles")).text()
    assert "Strict" in listing
    assert "&#34;check_unique_guids&#34;: false" in listing


async def test_sign_out_ends_the_session(client: Any) -> None:
    await register(client)
    token = await csrf_of(client, "/account")
    answer = await client.post("/account/logout", data={"csrf_token": token}, allow_redirects=False)
    assert answer.status == 303
    after = await client.get("/account", allow_redirects=False)
    assert after.status == 303


async def test_a_wrong_password_is_refused_on_the_page(client: Any) -> None:
    await register(client)
    client.session.cookie_jar.clear_domain("127.0.0.1")
    token = await csrf_of(client, "/account/login")
    answer = await client.post(
        "/account/login",
        data={"email": ACCOUNT["email"], "password": "nope-nope", "csrf_token": token},
    )
    assert answer.status == 401
    assert "wrong e-mail or password" in await answer.text()


@pytest.mark.parametrize(
    "next_page",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "/\t/evil.example/"],
)
async def test_sign_in_never_sends_to_another_site(client: Any, next_page: str) -> None:
    await register(client)
    client.session.cookie_jar.clear_domain("127.0.0.1")
    token = await csrf_of(client, "/account/login")
    answer = await client.post(
        "/account/login",
        data={**ACCOUNT, "csrf_token": token, "next": next_page},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/account"
