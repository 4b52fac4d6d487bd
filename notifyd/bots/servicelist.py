"""``GET /servicelist``: every service a BIM-bots client can post a model to.

BIMserver reads it in ``NewServicesImpl.listAllServiceDescriptors`` (HEAD,
``BimServer/src/org/bimserver/webservices/impl/NewServicesImpl.java:104-126``): ``id``
(``asLong``), ``description``, ``name``, ``provider``, ``resourceUrl``, ``inputs`` and
``outputs`` unchecked, and when ``oauth`` is present its ``registerUrl``, ``tokenUrl`` and
``authorizationUrl``. A missing one throws inside an executor that swallows it, and the
provider's services silently vanish from BIMserver's list, so every one is always written.
``capabilities`` stays empty: notifyd does not offer BIMserver's ``WEBSOCKET`` flow.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from notifyd.config import Settings
from notifyd.services import OAuthEndpoints, Registry, ServiceSpec


class OAuthUrls(BaseModel):
    authorizationUrl: str
    registerUrl: str
    tokenUrl: str


class ServiceEntry(BaseModel):
    id: int
    name: str
    description: str
    provider: str
    providerIcon: str
    inputs: list[str]
    outputs: list[str]
    oauth: OAuthUrls
    resourceUrl: str


class ServiceList(BaseModel):
    capabilities: list[str]
    services: list[ServiceEntry]


def bot_id(identifier: str) -> int:
    """A number for the service that stays the same across restarts and hosts (BIMserver
    stores it as the descriptor's oid): 48 bits of the identifier's SHA-256, exact in a Java
    long and in a JavaScript number."""
    return int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:6], "big")


def serves_bots(spec: ServiceSpec) -> bool:
    """A service reads a model and says what it returns: it can take a posted model."""
    return spec.read_revision and bool(spec.inputs) and bool(spec.outputs)


def resource_url(spec: ServiceSpec, base_url: str) -> str:
    return f"{base_url}/services/{spec.identifier}"


def service_list(registry: Registry, settings: Settings) -> ServiceList:
    endpoints = OAuthEndpoints.of(settings)
    oauth = OAuthUrls(
        authorizationUrl=endpoints.authorize,
        registerUrl=endpoints.register,
        tokenUrl=endpoints.token,
    )
    return ServiceList(
        capabilities=[],
        services=[
            ServiceEntry(
                id=bot_id(spec.identifier),
                name=spec.name,
                description=spec.description,
                provider=spec.provider_name or settings.provider_name,
                providerIcon=settings.provider_icon_url,
                inputs=list(spec.inputs),
                outputs=list(spec.outputs),
                oauth=oauth,
                resourceUrl=resource_url(spec, settings.public_base_url),
            )
            for spec in registry.services.values()
            if serves_bots(spec)
        ],
    )
