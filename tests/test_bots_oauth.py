"""The OAuth 2.0 provider, driven by clients nobody here wrote (Authlib's OAuth2Session over
requests) and by the exact requests BIMserver sends (OAuthServiceImpl.java at HEAD)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from notifyd.config import Settings
from tests.bots_client import REDIRECT, consent, register, run


@pytest.fixture
async def base_url(make_client: Callable[..., Any], make_settings: Callable[..., Settings]) -> str:
    client = await make_client(make_settings(public_url="https://bots.example.com"))
    return str(client.make_url("")).rstrip("/")


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_completes_the_code_flow_with_pkce_and_refreshes(
    base_url: str, auth_method: str
) -> None:
    registered = await run(
        register,
        base_url,
        client_name="Authlib script",
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method=auth_method,
    )
    session = OAuth2Session(
        registered["client_id"],
        registered["client_secret"],
        redirect_uri=REDIRECT,
        token_endpoint_auth_method=auth_method,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        f"{base_url}/oauth/authorize", code_verifier=verifier, service="ifc-summary"
    )
    callback = await run(consent, url, username="alice", password="correct horse", create="on")
    assert callback.startswith(REDIRECT)
    token = await run(
        session.fetch_token,
        f"{base_url}/oauth/access",
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
    )
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["resource_url"] == "https://bots.example.com/services/ifc-summary"
    refreshed = await run(
        session.refresh_token, f"{base_url}/oauth/access", refresh_token=token["refresh_token"]
    )
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    # The old refresh token was spent: using it again is a replay, and revokes the grant.
    with pytest.raises(Exception, match="invalid_grant"):
        await run(
            session.refresh_token,
            f"{base_url}/oauth/access",
            refresh_token=token["refresh_token"],
        )
    with pytest.raises(Exception, match="invalid_grant"):
        await run(
            session.refresh_token,
            f"{base_url}/oauth/access",
            refresh_token=refreshed["refresh_token"],
        )


async def test_bimserver_registers_authorizes_and_exchanges_as_its_source_does(
    base_url: str,
) -> None:
    # OAuthServiceImpl.registerApplication: Oltu's JSON, Content-Type application/json.
    answer = await run(
        requests.post,
        f"{base_url}/oauth/register",
        data=json.dumps(
            {
                "type": "push",
                "client_name": "My BIMserver",
                "client_url": "http://bimserver.local:8080/apps/bimviews/",
                "client_description": "A BIMserver",
                "client_icon": "http://169.254.169.254/latest/meta-data/",
                "redirect_url": "http://bimserver.local:8080/apps/bimviews/",
            }
        ),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200
    registration = answer.json()
    assert int(registration["issued_at"]) > 10**12  # milliseconds: Long.parseLong(issued_at)
    assert int(registration["expires_in"]) > 0
    # The UI's redirect: a JSON state, auth_type=service, another page of the same origin.
    state = json.dumps({"_poid": 1, "_soid": 2, "_serverId": 3, "_serviceName": "IFC summary"})
    url = (
        f"{base_url}/oauth/authorize?client_id={registration['client_id']}&response_type=code"
        f"&state={requests.utils.quote(state)}&auth_type=service"
        "&redirect_uri=http%3A%2F%2Fbimserver.local%3A8080%2Fapps%2Fbimviews%2F%3Fpage%3DOAuth"
    )
    callback = await run(consent, url, username="bob", password="12345678", create="on")
    query = parse_qs(urlsplit(callback).query)
    assert callback.startswith("http://bimserver.local:8080/apps/bimviews/?page=OAuth&")
    assert query["state"] == [state]  # unchanged
    # getRemoteToken: form-encoded, client_secret_post, the literal redirect_uri=crap.
    token = await run(
        requests.post,
        f"{base_url}/oauth/access",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "client_id": registration["client_id"],
            "client_secret": registration["client_secret"],
            "redirect_uri": "crap",
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["access_token"]
    assert body["resource_url"].endswith("/services/ifc-summary")
    assert token.headers["Cache-Control"] == "no-store"


async def test_registering_the_same_redirect_again_keeps_the_client_and_both_secrets_work(
    base_url: str,
) -> None:
    first = await run(register, base_url, redirect_url="http://bim.local/")
    second = await run(register, base_url, redirect_url="http://bim.local/")
    assert first["client_id"] == second["client_id"]
    assert first["client_secret"] != second["client_secret"]
    other = await run(register, base_url, redirect_url="http://other.local/")
    assert other["client_id"] != first["client_id"]


async def test_a_denial_redirects_with_access_denied_and_the_state(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    url = (
        f"{base_url}/oauth/authorize?client_id={registered['client_id']}&response_type=code"
        "&state=xyz&service=ifc-summary"
    )
    callback = await run(consent, url, decision="deny")
    query = parse_qs(urlsplit(callback).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["xyz"]
    assert "code" not in query


async def test_a_wrong_password_shows_the_page_again_and_issues_no_code(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    url = (
        f"{base_url}/oauth/authorize?client_id={registered['client_id']}&response_type=code"
        "&service=ifc-summary"
    )
    await run(consent, url, username="carol", password="longenough", create="on")
    page = await run(requests.get, url, timeout=10)
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form.update(decision="allow", username="carol", password="wrong-password")
    answer = await run(
        requests.post, f"{base_url}/oauth/authorize", data=form, timeout=10, allow_redirects=False
    )
    assert answer.status_code == 401
    assert "wrong account name or password" in answer.text


async def test_an_unknown_client_or_redirect_is_shown_never_redirected(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    for query in (
        "client_id=nobody&response_type=code",
        f"client_id={registered['client_id']}&response_type=code"
        "&redirect_uri=https%3A%2F%2Fevil.example%2F",
    ):
        page = await run(
            requests.get, f"{base_url}/oauth/authorize?{query}", timeout=10, allow_redirects=False
        )
        assert page.status_code == 400
        assert "Location" not in page.headers


async def test_a_bad_request_after_the_redirect_is_known_goes_back_with_its_error(
    base_url: str,
) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    for query, error in (
        ("response_type=token", "unsupported_response_type"),
        ("response_type=code&code_challenge=abc&code_challenge_method=plain", "invalid_request"),
    ):
        answer = await run(
            requests.get,
            f"{base_url}/oauth/authorize?client_id={registered['client_id']}&{query}&state=s1",
            timeout=10,
            allow_redirects=False,
        )
        assert answer.status_code == 302
        sent = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert sent["error"] == [error]
        assert sent["state"] == ["s1"]


async def test_token_errors_follow_rfc_6749(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    cid, secret = registered["client_id"], registered["client_secret"]
    basic = base64.b64encode(f"{cid}:wrong".encode()).decode()
    cases = [
        ({"grant_type": "authorization_code", "code": "x"}, {}, 401, "invalid_client"),
        (
            {"grant_type": "authorization_code", "code": "x"},
            {"Authorization": f"Basic {basic}"},
            401,
            "invalid_client",
        ),
        (
            {
                "grant_type": "authorization_code",
                "code": "nope",
                "client_id": cid,
                "client_secret": secret,
            },
            {},
            400,
            "invalid_grant",
        ),
        (
            {"grant_type": "password", "client_id": cid, "client_secret": secret},
            {},
            400,
            "unsupported_grant_type",
        ),
    ]
    for form, headers, status, error in cases:
        answer = await run(
            requests.post, f"{base_url}/oauth/access", data=form, headers=headers, timeout=10
        )
        assert answer.status_code == status, (form, answer.text)
        assert answer.json()["error"] == error
        if "Authorization" in headers:
            assert answer.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_code_is_single_use_and_a_replay_revokes_what_it_gave(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    url = (
        f"{base_url}/oauth/authorize?client_id={registered['client_id']}&response_type=code"
        "&service=ifc-summary"
    )
    callback = await run(consent, url, username="dave", password="12345678", create="on")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": registered["client_id"],
        "client_secret": registered["client_secret"],
    }
    first = await run(requests.post, f"{base_url}/oauth/access", data=form, timeout=10)
    again = await run(requests.post, f"{base_url}/oauth/access", data=form, timeout=10)
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first.json()["refresh_token"],
        "client_id": registered["client_id"],
        "client_secret": registered["client_secret"],
    }
    revoked = await run(requests.post, f"{base_url}/oauth/access", data=refresh, timeout=10)
    assert revoked.json()["error"] == "invalid_grant"


async def test_a_pkce_code_needs_its_verifier(base_url: str) -> None:
    registered = await run(register, base_url, redirect_uris=[REDIRECT])
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    url = (
        f"{base_url}/oauth/authorize?client_id={registered['client_id']}&response_type=code"
        f"&service=ifc-summary&code_challenge={challenge}&code_challenge_method=S256"
    )
    callback = await run(consent, url, username="erin", password="12345678", create="on")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": registered["client_id"],
        "client_secret": registered["client_secret"],
        "code_verifier": secrets.token_urlsafe(48),
    }
    answer = await run(requests.post, f"{base_url}/oauth/access", data=form, timeout=10)
    assert answer.status_code == 400
    assert "code_verifier" in answer.json()["error_description"]


async def test_a_registration_names_what_is_wrong(base_url: str) -> None:
    for body, expected in (
        ({"client_name": "x"}, "redirect"),
        ({"redirect_uris": ["myapp://cb"]}, "http(s)"),
        ({"redirect_uris": ["https://a.example/#frag"]}, "fragment"),
        ({"redirect_uris": "https://a.example/"}, "redirect_uris"),
    ):
        answer = await run(requests.post, f"{base_url}/oauth/register", json=body, timeout=10)
        assert answer.status_code == 400, body
        assert expected in answer.json()["error_description"], answer.text
