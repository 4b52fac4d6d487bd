"""Behind a reverse proxy every URL notifyd hands out carries the public scheme, host and
path prefix, taken from the proxy's headers only when the proxy is trusted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import make_envelope

PROXIED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "bim.example.com",
    "X-Forwarded-Prefix": "/notifyd",
}
PUBLIC = "https://bim.example.com/notifyd"


async def _urls(client: Any, headers: dict[str, str]) -> dict[str, str]:
    """The URLs of getService and of /servicelist for a request with these headers."""
    body = make_envelope("getService", parameters={"serviceIdentifier": "ifc-summary"})
    async with client.post("/json", json=body, headers=headers) as response:
        descriptor = (await response.json())["response"]["result"]
    async with client.get("/servicelist", headers=headers) as response:
        [entry, *_] = (await response.json())["services"]
    return {
        "url": descriptor["url"],
        "tokenUrl": descriptor["tokenUrl"],
        "resourceUrl": entry["resourceUrl"],
        "authorizationUrl": entry["oauth"]["authorizationUrl"],
    }


async def test_a_trusted_proxy_sets_the_public_address(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(trusted_proxies=["127.0.0.0/8"]))
    urls = await _urls(client, PROXIED)
    assert urls["url"] == PUBLIC
    assert urls["tokenUrl"] == f"{PUBLIC}/oauth/access"
    assert urls["resourceUrl"].startswith(f"{PUBLIC}/services/")
    assert urls["authorizationUrl"] == f"{PUBLIC}/oauth/authorize"


@pytest.mark.parametrize(
    "forwarded",
    [
        "for=10.0.0.1;proto=https;host=bim.example.com",
        'proto=http;host=x, proto=https;host="bim.example.com"',
    ],
)
async def test_rfc_7239_forwarded_counts_its_last_element(
    make_client: Any, make_settings: Any, forwarded: str
) -> None:
    client = await make_client(make_settings(trusted_proxies=["127.0.0.1/32"]))
    urls = await _urls(client, {"Forwarded": forwarded, "X-Forwarded-Prefix": "/notifyd"})
    assert urls["url"] == PUBLIC


async def test_headers_from_a_client_that_is_not_a_trusted_proxy_change_nothing(
    make_client: Any, make_settings: Any
) -> None:
    plain = await _urls(await make_client(make_settings()), {})
    for trusted in ([], ["10.0.0.0/8"]):
        client = await make_client(make_settings(trusted_proxies=trusted))
        assert await _urls(client, PROXIED) == plain
    assert plain["url"].startswith("http://127.0.0.1:") or plain["url"].startswith(
        "http://localhost:"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example/path"},
        {"X-Forwarded-Host": "evil.example@x"},
        {"X-Forwarded-Host": "a b"},
        {"X-Forwarded-Host": ""},
    ],
)
async def test_a_host_that_is_not_a_host_is_never_copied_into_a_url(
    make_client: Any, make_settings: Any, headers: dict[str, str]
) -> None:
    plain = await _urls(await make_client(make_settings()), {})
    client = await make_client(make_settings(trusted_proxies=["127.0.0.0/8"]))
    assert await _urls(client, headers) == plain


async def test_a_bad_prefix_or_scheme_is_dropped_and_the_rest_used(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(trusted_proxies=["127.0.0.0/8"]))
    headers = {
        "X-Forwarded-Proto": "javascript",
        "X-Forwarded-Host": "bim.example.com:8443",
        "X-Forwarded-Prefix": '/x"><script>',
    }
    urls = await _urls(client, headers)
    assert urls["url"] == "http://bim.example.com:8443"


async def test_a_configured_public_url_wins_over_the_proxy(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(
        make_settings(trusted_proxies=["127.0.0.0/8"], public_url="https://configured.example")
    )
    assert (await _urls(client, PROXIED))["url"] == "https://configured.example"


async def test_the_consent_form_posts_under_the_public_prefix(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(trusted_proxies=["127.0.0.0/8"]))
    registration = {"redirect_uris": ["https://app.example/cb"], "client_name": "app"}
    async with client.post("/oauth/register", json=registration) as response:
        client_id = (await response.json())["client_id"]
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "https://app.example/cb",
    }
    async with client.get("/oauth/authorize", params=query, headers=PROXIED) as response:
        page = await response.text()
    assert 'action="/notifyd/oauth/authorize"' in page


async def test_a_payment_required_message_names_the_public_pages(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(
        make_settings(trusted_proxies=["127.0.0.0/8"], prices={"ifc-summary": 3})
    )
    async with client.post("/json", json=make_envelope(), headers=PROXIED) as response:
        message = (await response.json())["response"]["exception"]["message"]
    assert f"register at {PUBLIC}/account/register" in message
    assert f"POST {PUBLIC}/api/tokens" in message
