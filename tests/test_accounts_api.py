"""The accounts JSON API without a browser: register, a user token shown once, the account
with its balance, private profiles validated against the service's settings, and every
refusal named."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

ALICE = {"email": "alice@example.com", "password": "correct horse", "name": "alice"}


def basic(email: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register_and_token(client: Any, who: dict[str, str] = ALICE) -> str:
    assert (await client.post("/api/accounts", json=who)).status == 201
    answer = await client.post(
        "/api/tokens", json={"label": "laptop"}, headers=basic(who["email"], who["password"])
    )
    assert answer.status == 201
    return str((await answer.json())["token"])


async def test_register_get_a_token_and_read_the_account(client: Any) -> None:
    answer = await client.post("/api/accounts", json=ALICE)
    assert answer.status == 201
    assert await answer.json() == {"name": "alice", "email": "alice@example.com"}
    issued = await client.post(
        "/api/tokens", json={"label": "laptop"}, headers=basic(ALICE["email"], ALICE["password"])
    )
    assert issued.status == 201
    body = await issued.json()
    assert set(body) == {"id", "token", "label", "created_at", "revoked"}
    assert body["token"].startswith("ndu_")
    account = await client.get("/api/account", headers=bearer(body["token"]))
    assert await account.json() == {
        "name": "alice",
        "email": "alice@example.com",
        "balance": 0,
        "is_admin": False,
    }
    listed = await (await client.get("/api/tokens", headers=bearer(body["token"]))).json()
    assert listed == [{k: v for k, v in body.items() if k != "token"}]  # never shown again


async def test_a_revoked_token_opens_nothing(client: Any) -> None:
    token = await register_and_token(client)
    [listed] = await (await client.get("/api/tokens", headers=bearer(token))).json()
    assert (await client.delete(f"/api/tokens/{listed['id']}", headers=bearer(token))).status == 204
    refused = await client.get("/api/account", headers=bearer(token))
    assert refused.status == 401
    assert "unknown or revoked" in (await refused.json())["error"]
    again = await client.delete(
        f"/api/tokens/{listed['id']}", headers=basic(ALICE["email"], ALICE["password"])
    )
    assert again.status == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({**ALICE, "email": "not-an-email"}, 400, "is not an e-mail address"),
        ({**ALICE, "password": "short"}, 400, "at least 8 characters"),
        ({**ALICE, "name": "bad name!"}, 400, "an account name is"),
        ({"email": "a@example.com"}, 400, "password: Field required"),
        ({**ALICE, "extra": 1}, 400, "extra: Extra inputs are not permitted"),
    ],
)
async def test_a_bad_registration_is_named(
    client: Any, body: dict[str, Any], status: int, says: str
) -> None:
    answer = await client.post("/api/accounts", json=body)
    assert answer.status == status
    assert says in (await answer.json())["error"]


async def test_an_email_or_name_taken_is_a_conflict(client: Any) -> None:
    assert (await client.post("/api/accounts", json=ALICE)).status == 201
    same_email = await client.post("/api/accounts", json={**ALICE, "name": "alice2"})
    assert same_email.status == 409
    assert "e-mail alice@example.com exists" in (await same_email.json())["error"]
    same_name = await client.post("/api/accounts", json={**ALICE, "email": "b@example.com"})
    assert same_name.status == 409
    assert "taken" in (await same_name.json())["error"]


async def test_signing_in_wrongly_is_refused_with_a_challenge(client: Any) -> None:
    await client.post("/api/accounts", json=ALICE)
    wrong = await client.post("/api/tokens", headers=basic(ALICE["email"], "wrong password"))
    assert wrong.status == 401
    assert "wrong e-mail or password" in (await wrong.json())["error"]
    assert "Basic" in wrong.headers["WWW-Authenticate"]
    nothing = await client.get("/api/account")
    assert nothing.status == 401
    assert "Authorization" in (await nothing.json())["error"]


async def test_private_profiles_are_validated_and_kept_per_account(client: Any) -> None:
    token = await register_and_token(client)
    profile = {
        "service": "ifc-summary",
        "identifier": "storeys-only",
        "name": "Storeys only",
        "description": "no quantities",
        "settings": {"include_quantities": False},
    }
    created = await client.post("/api/profiles", json=profile, headers=bearer(token))
    assert created.status == 201
    saved = await created.json()
    assert saved["settings"] == {"include_quantities": False, "group_by_storey": True}
    duplicate = await client.post("/api/profiles", json=profile, headers=bearer(token))
    assert duplicate.status == 409
    bad = await client.post(
        "/api/profiles",
        json={**profile, "identifier": "bad", "settings": {"include_quantities": "often"}},
        headers=bearer(token),
    )
    assert bad.status == 400
    problem = await bad.json()
    assert "include_quantities" in problem["fields"]
    unknown = await client.post(
        "/api/profiles", json={**profile, "service": "nope"}, headers=bearer(token)
    )
    assert unknown.status == 404
    url = "/api/profiles/storeys-only?service=ifc-summary"
    changed = await client.put(url, json={"name": "Renamed", "settings": {}}, headers=bearer(token))
    assert (await changed.json())["name"] == "Renamed"
    assert (await (await client.get(url, headers=bearer(token))).json())["name"] == "Renamed"
    other = await register_and_token(
        client, {"email": "bob@example.com", "password": "correct horse", "name": "bob"}
    )
    assert (await client.get(url, headers=bearer(other))).status == 404
    assert (await client.delete(url, headers=bearer(token))).status == 204
    assert (await client.get(url, headers=bearer(token))).status == 404
    missing_service = await client.get("/api/profiles/x", headers=bearer(token))
    assert "?service=" in (await missing_service.json())["error"]


async def test_a_body_that_is_not_utf_8_is_named(client: Any) -> None:
    answer = await client.post("/api/accounts", data=b'{"email": "\xff"}')
    assert answer.status == 400
    assert "not JSON in UTF-8" in (await answer.json())["error"]


async def test_closed_registration_refuses_every_way_but_the_provider(
    make_client: Any, make_settings: Any
) -> None:
    """``open_registration = false``: the API (403), the register page and the consent page
    refuse to make an account, each saying why; nothing is created."""
    client = await make_client(make_settings(open_registration=False))
    refused = await client.post("/api/accounts", json=ALICE)
    assert refused.status == 403
    assert "created by the provider" in (await refused.json())["error"]

    page = await client.get("/account/register")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert csrf is not None
    form = await client.post(
        "/account/register", data={**ALICE, "csrf_token": csrf.group(1), "next": "/account"}
    )
    assert form.status == 400
    assert "created by the provider" in await form.text()

    registration = {"redirect_uris": ["https://app.example/cb"], "client_name": "app"}
    client_id = (await (await client.post("/oauth/register", json=registration)).json())[
        "client_id"
    ]
    consent = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "https://app.example/cb",
    }
    shown = await client.get("/oauth/authorize", params=consent)
    assert 'name="create"' not in await shown.text()  # the page does not offer it
    posted = await client.post(
        "/oauth/authorize",
        data={
            **consent,
            "decision": "allow",
            "create": "on",
            "username": "alice",
            "password": "correct horse",
            "service": "ifc-summary",
        },
        allow_redirects=False,
    )
    assert posted.status == 401
    assert "created by the provider" in await posted.text()

    signed_in = await client.post(
        "/api/tokens", json={}, headers=basic(ALICE["email"], ALICE["password"])
    )
    assert signed_in.status == 401  # no account was made on the way
