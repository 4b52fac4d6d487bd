"""``GET /servicelist`` as BIMserver's NewServicesImpl reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notifyd.bots.servicelist import bot_id
from notifyd.config import Settings

# What NewServicesImpl.java:104-126 (HEAD) reads of each service, unchecked: one missing and
# the provider's services vanish from BIMserver's list.
READ_BY_BIMSERVER = ("id", "description", "name", "provider", "resourceUrl", "inputs", "outputs")


async def test_every_service_that_takes_a_model_is_listed_with_every_field_bimserver_reads(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        public_url="https://bots.example.com/nd", provider_icon_url="https://x.example/i.png"
    )
    client = await make_client(settings)
    response = await client.get("/servicelist")
    assert response.status == 200
    assert response.content_type == "application/json"
    listing = await response.json()
    assert listing["capabilities"] == []
    by_name = {s["resourceUrl"].rsplit("/", 1)[1]: s for s in listing["services"]}
    assert "ifc-summary" in by_name
    for identifier, service in by_name.items():
        for key in READ_BY_BIMSERVER:
            assert service[key] not in (None, ""), (identifier, key)
        assert service["id"] == bot_id(identifier)
        assert service["resourceUrl"] == f"https://bots.example.com/nd/services/{identifier}"
        assert service["providerIcon"] == "https://x.example/i.png"
        assert service["oauth"] == {
            "authorizationUrl": "https://bots.example.com/nd/oauth/authorize",
            "registerUrl": "https://bots.example.com/nd/oauth/register",
            "tokenUrl": "https://bots.example.com/nd/oauth/access",
        }
        assert service["inputs"]
        assert service["outputs"]


def test_a_service_keeps_its_number_across_restarts_and_within_a_java_long() -> None:
    assert bot_id("ifc-summary") == bot_id("ifc-summary")
    assert bot_id("ifc-summary") != bot_id("ifc-validation")
    assert 0 <= bot_id("ifc-summary") < 2**53
