"""What OAuth clients send to and get from the provider's endpoints, at the edge.

Registration takes both shapes a client may send: BIMserver's (Apache Oltu's
``OAuthClientRegistrationRequest.buildJSONMessage``: ``type``, ``client_name``,
``client_url``, ``client_description``, ``client_icon``, ``redirect_url``;
``OAuthServiceImpl.java:106-113`` at HEAD) and RFC 7591's (``redirect_uris``, ...).
Unknown metadata is ignored, as RFC 7591 section 2 asks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClientRegistration(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str | None = None
    client_name: str | None = None
    client_url: str | None = None
    client_uri: str | None = None
    client_description: str | None = None
    client_icon: str | None = None
    logo_uri: str | None = None
    redirect_url: str | None = None
    redirect_uris: list[str] | None = None
    token_endpoint_auth_method: str | None = None


class RegistrationAnswer(BaseModel):
    """Both shapes at once. ``issued_at`` and ``expires_in`` are milliseconds: BIMserver does
    ``Long.parseLong(issued_at)`` and adds ``expires_in`` to now in milliseconds
    (``OAuthServiceImpl.java:122-126``), and Oltu requires ``expires_in`` beside
    ``issued_at``. RFC 7591's own ``client_id_issued_at`` is in seconds."""

    client_id: str
    client_secret: str
    issued_at: int
    expires_in: int
    client_id_issued_at: int
    client_secret_expires_at: int
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    response_types: list[str]


class TokenAnswer(BaseModel):
    """``resource_url`` is required by BIMserver, which stores it as the service's URL
    (``OAuthServiceImpl.getRemoteToken``, ``OAuthServiceImpl.java:386-394``)."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    resource_url: str
    service: str


class ErrorAnswer(BaseModel):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str
