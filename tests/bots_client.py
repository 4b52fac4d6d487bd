"""A BIM-bots client's steps, with requests (run in a thread from async tests): register,
consent as the user's browser does, exchange the code."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

REDIRECT = "https://client.example/callback"


def register(base_url: str, **body: Any) -> dict[str, Any]:
    answer = requests.post(f"{base_url}/oauth/register", json=body, timeout=10)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def consent(authorize_url: str, decision: str = "allow", **fields: str) -> str:
    """What the user's browser does: open the page, post the form, not follow the redirect."""
    page = requests.get(authorize_url, timeout=10, allow_redirects=False)
    assert page.status_code == 200, page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form = {k: unescape(v) for k, v in hidden.items()}
    form.update(decision=decision, **fields)
    if 'name="service"' in page.text and "service" not in form:
        form["service"] = "ifc-summary"
    action = authorize_url.split("?", 1)[0]
    answer = requests.post(action, data=form, timeout=10, allow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"]


def access_token(
    base_url: str, account: str = "alice", service: str = "ifc-summary", *, create: bool = True
) -> str:
    """A token for ``account`` (created first, unless ``create`` is false), by the code flow."""
    client = register(base_url, redirect_uris=[REDIRECT])
    url = (
        f"{base_url}/oauth/authorize?client_id={client['client_id']}&response_type=code"
        f"&service={service}"
    )
    creating = {"create": "on"} if create else {}
    callback = consent(url, username=account, password="correct horse", **creating)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    answer = requests.post(
        f"{base_url}/oauth/access",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)
