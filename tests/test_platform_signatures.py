"""A platform with a shared secret: the tokens notifyd issues for it are JWTs a real JOSE
library (Authlib) verifies with the secret, and the requests it signs with the official
Standard Webhooks library are believed once, while fresh, and only with the right secret."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import OctKey
from standardwebhooks.webhooks import Webhook

from notifyd.signatures import secret_bytes
from notifyd.web.keys import STORAGE, USER_ACCOUNTS
from tests.factories import make_envelope
from tests.test_accounts_api import ALICE, basic


async def _platform(client: Any) -> str:
    return str(await client.app[USER_ACCOUNTS].add_platform("acme"))


def _signed(secret: str, body: bytes, *, msg_id: str, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


async def test_a_token_for_a_platform_is_a_jwt_it_can_verify(client: Any) -> None:
    secret = await _platform(client)
    await client.post("/api/accounts", json=ALICE)
    answer = await client.post(
        "/api/tokens",
        json={"label": "acme", "platform": "acme"},
        headers=basic(ALICE["email"], ALICE["password"]),
    )
    assert answer.status == 201
    token = (await answer.json())["token"]
    decoded = jwt.decode(token, OctKey.import_key(secret_bytes(secret)), algorithms=["HS256"])
    assert decoded.header == {"alg": "HS256", "typ": "JWT"}
    claims = decoded.claims
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("alice", "acme", "notifyd")
    with pytest.raises(BadSignatureError):
        jwt.decode(token, OctKey.import_key(b"another secret of 32 bytes, long"))
    # The token also opens the account, like any user token.
    account = await client.get("/api/account", headers={"Authorization": f"Bearer {token}"})
    assert (await account.json())["name"] == "alice"
    unknown = await client.post(
        "/api/tokens", json={"platform": "nope"}, headers=basic(ALICE["email"], ALICE["password"])
    )
    assert unknown.status == 404


async def test_a_signed_request_is_believed_once(client: Any) -> None:
    secret = await _platform(client)
    body = json.dumps(make_envelope()).encode()
    headers = _signed(secret, body, msg_id="msg_1", at=datetime.now(UTC))
    answer = await client.post("/platforms/acme/json", data=body, headers=headers)
    assert answer.status == 200
    assert await answer.json() == {"response": {"result": {}}}
    assert len(await client.app[STORAGE].list_jobs()) == 1
    replay = await client.post("/platforms/acme/json", data=body, headers=headers)
    assert replay.status == 401
    assert "seen before" in (await replay.json())["response"]["exception"]["message"]
    # The sender's retry of a delivery: the same id, a new timestamp and signature.
    retry = _signed(secret, body, msg_id="msg_1", at=datetime.now(UTC) + timedelta(seconds=30))
    answer = await client.post("/platforms/acme/json", data=body, headers=retry)
    assert answer.status == 200
    assert len(await client.app[STORAGE].list_jobs()) == 1  # still one job


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("stale", "s off this server's clock"),
        ("future", "s off this server's clock"),
        ("wrong secret", "does not match"),
        ("tampered body", "does not match"),
        ("unsigned", "webhook-signature missing"),
        ("huge timestamp", "is not Unix seconds"),
        ("unknown platform", "no platform 'other'"),
    ],
)
async def test_a_bad_signature_is_refused_and_nothing_queued(
    client: Any, change: str, says: str
) -> None:
    secret = await _platform(client)
    body = json.dumps(make_envelope()).encode()
    at = datetime.now(UTC)
    if change == "stale":
        at -= timedelta(minutes=6)
    if change == "future":
        at += timedelta(minutes=6)
    signing_secret = secret
    if change == "wrong secret":
        signing_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    headers = _signed(signing_secret, body, msg_id=f"msg_{change}", at=at)
    sent = body
    if change == "tampered body":
        sent = body.replace(b"131073", b"131074")
    if change == "unsigned":
        del headers["webhook-signature"]
    if change == "huge timestamp":
        headers["webhook-timestamp"] = "9" * 5000
    path = "/platforms/other/json" if change == "unknown platform" else "/platforms/acme/json"
    answer = await client.post(path, data=sent, headers=headers)
    assert answer.status == 401
    assert says in (await answer.json())["response"]["exception"]["message"]
    assert await client.app[STORAGE].list_jobs() == []
