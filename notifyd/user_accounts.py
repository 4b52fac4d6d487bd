"""The people who use a provider's services: registering, user tokens, private profiles, and
what a job costs them.

Everything a page, the JSON API, the intake and the CLI do with accounts goes through here,
so the rules (what a valid e-mail is, how a token looks and is stored, how a profile's
settings are validated, when a job is refused for want of credit) live in one place.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from notifyd.account_records import PrivateProfile, UserToken
from notifyd.bots.accounts import (
    AccountError,
    AccountTaken,
    RegistrationClosed,
    check_name,
    check_password,
    hash_password,
    password_matches,
    unusable_hash,
)
from notifyd.config import Settings
from notifyd.errors import ProtocolError
from notifyd.grants import Account, secret_hash
from notifyd.protocol.descriptors import SProfileDescriptor
from notifyd.services import Registry
from notifyd.signatures import (
    TOLERANCE_SECONDS,
    SignatureError,
    new_secret,
    signed_token,
    verify_request,
)
from notifyd.storage.base import AccountStore, GrantStore

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PROFILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_PREFIX = "ndu_"  # noqa: S105 (a prefix: a notifyd user token is recognisable in a leak)
# What BIMserver gets as a private profile's identifier. BIMserver stores the identifier of
# the profile the user picked on the service (SService.profileIdentifier) and sends it back
# as profileIdentifier in every notification (NewRevisionNotification.java:325 at HEAD, :278
# at 1.4), so the prefix tells the intake to look in the account's own profiles.
PRIVATE_PREFIX = "private:"


class PaymentRequired(ProtocolError):
    """A paid service asked for by an account without enough credit, or by nobody."""


class ProfileError(AccountError):
    """A private profile that cannot be saved; ``fields`` maps a setting to its problem."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


@dataclass(frozen=True, slots=True)
class Charge:
    """What a job will cost, and to whom; nothing when the service is free."""

    account: str | None
    price: int


class UserAccounts:
    def __init__(
        self,
        *,
        grants: GrantStore,
        store: AccountStore,
        registry: Registry,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grants = grants
        self.store = store
        self.registry = registry
        self.settings = settings
        self.clock = clock

    # -- accounts --------------------------------------------------------------------

    async def create(
        self, *, name: str, password: str, email: str | None = None, by_provider: bool = False
    ) -> Account:
        """The one way an account is made: on the consent page (no e-mail), on the register
        page and by the API (with one), unless ``open_registration`` is off; and by the
        provider's CLI (``by_provider``) always."""
        if not by_provider and not self.settings.open_registration:
            raise RegistrationClosed("accounts are created by the provider here, not on this page")
        checked_email = check_email(email) if email is not None else None
        taken_email = f"an account with the e-mail {checked_email} exists; sign in instead"
        # Before scrypt: a taken e-mail costs no hashing (the answer names it anyway).
        if checked_email and await self.store.account_by_email(checked_email) is not None:
            raise AccountTaken(taken_email)
        account = Account(
            name=check_name(name),
            email=checked_email,
            password_hash=await asyncio.to_thread(hash_password, check_password(password)),
            created_at=self.clock(),
        )
        if not await self.grants.add_account(account):
            raise AccountTaken(f"the name {name!r} is taken; choose another")
        if checked_email and not await self.store.set_email(account.name, checked_email):
            raise AccountTaken(taken_email)
        return account

    async def sign_in(
        self, password: str, *, email: str | None = None, name: str | None = None
    ) -> Account:
        """The account whose e-mail (the pages, the API) or name (the consent page) and
        password match, or AccountError; as slow for an unknown account as for a wrong
        password, so timing tells nothing. scrypt runs in a thread, never on the loop."""
        if email is not None:
            found = await self.store.account_by_email(email.strip().lower())
        else:
            found = await self.grants.account(name) if name else None
        stored = found.password_hash if found else await asyncio.to_thread(unusable_hash)
        matches = await asyncio.to_thread(password_matches, password, stored)
        if found is None or not matches:
            what = "e-mail" if email is not None else "account name"
            raise AccountError(f"wrong {what} or password")
        return found

    # -- user tokens -------------------------------------------------------------------

    async def issue_token(
        self, account: str, label: str, platform: str | None = None
    ) -> tuple[UserToken, str]:
        """A new user token: the record (its hash) and the token itself, shown only now. For
        a ``platform``, the token is a JWT signed with the platform's secret."""
        token_id = secrets.token_hex(6)
        if platform is None:
            secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        else:
            shared = await self.store.platform_secret(platform)
            if shared is None:
                raise AccountError(f"no platform {platform!r} is registered with this provider")
            secret = signed_token(
                shared,
                {
                    "iss": self.settings.provider_name,
                    "aud": platform,
                    "sub": account,
                    "jti": token_id,
                    "iat": int(self.clock()),
                },
            )
        token = UserToken(
            id=token_id,
            token_hash=secret_hash(secret),
            account=account,
            label=(label.strip() or "token")[:80],
            created_at=self.clock(),
        )
        await self.store.add_user_token(token)
        return token, secret

    async def account_of_token(self, token: str | None) -> Account | None:
        if not token:
            return None
        return await self.store.account_of_token(secret_hash(token))

    async def account_of_caller(
        self, token: str | None, public_url: str | None = None
    ) -> Account | None:
        """The account behind what BIMserver sends as ``token`` in getPrivateProfiles: the
        user token its UI passes through (1.4: ``getAllPrivateProfiles(notificationsUrl,
        serviceIdentifier, token)``, ServiceImpl.java:1208 at 1.4.0-FINAL-2015-11-04) or the
        OAuth authorization code BIMserver 1.5 kept for the user (ServiceImpl.java:2445 at
        HEAD). Raises ProtocolError, saying where to get a token, for one that names nobody."""
        if not token:
            return None
        account = await self.account_of_token(token)
        if account is None:
            name = await self.grants.code_account(secret_hash(token))
            account = await self.grants.account(name) if name else None
        if account is None:
            base = self.base_url(public_url)
            raise ProtocolError(
                "the token names no account of this provider: create a user token at "
                f"{base}/account/tokens (or register at {base}/account/register) and give it "
                "to BIMserver"
            )
        return account

    async def bimserver_profiles(
        self, service: str, token: str | None, public_url: str | None = None
    ) -> list[PrivateProfile]:
        """getPrivateProfiles: the profiles of the account ``token`` names, for ``service``."""
        self.registry.service(service)
        account = await self.account_of_caller(token, public_url)
        if account is None:
            return []
        return await self.store.private_profiles(account.name, service)

    # -- platforms with a shared secret ---------------------------------------------------

    async def add_platform(self, name: str) -> str:
        """Register a platform; its new secret, shown only now."""
        check_name(name)
        secret = new_secret()
        if not await self.store.add_platform(name, secret, self.clock()):
            raise AccountTaken(f"a platform named {name!r} exists")
        return secret

    async def verify_platform_request(
        self, platform: str, headers: dict[str, str], body: bytes
    ) -> None:
        """SignatureError unless the platform signed this body now, and never sent its id."""
        secret = await self.store.platform_secret(platform)
        if secret is None:
            raise SignatureError(f"no platform {platform!r} is registered with this provider")
        now = self.clock()
        signed = verify_request(secret, headers, body, now)
        keep = 2 * TOLERANCE_SECONDS  # past that, the timestamp check refuses a replay anyway
        # A sender retries a failed delivery with the same webhook-id but a new timestamp and
        # signature (Standard Webhooks): that retry must get through (the job's dedup key
        # makes it one job); only the very message seen before, a replay, is refused.
        message = f"{signed.webhook_id}.{signed.timestamp}"
        if not await self.store.first_sight(platform, message, now, keep):
            raise SignatureError(
                f"webhook-id {signed.webhook_id!r} with this timestamp was seen before: "
                "a replayed request"
            )

    # -- private profiles ----------------------------------------------------------------

    async def save_profile(
        self,
        account: str,
        *,
        service: str,
        identifier: str,
        name: str,
        description: str,
        settings: Mapping[str, Any],
    ) -> tuple[PrivateProfile, bool]:
        """The saved profile and whether it is new. Raises ProfileError naming each setting
        that the service's settings model refuses."""
        spec = self.registry.service(service)
        if not _PROFILE_ID.match(identifier):
            raise ProfileError(
                "a profile identifier is 1 to 64 letters, digits, '.', '_' or '-'",
                {"identifier": "letters, digits, '.', '_' or '-'"},
            )
        if not name.strip():
            raise ProfileError("a profile needs a name", {"name": "required"})
        try:
            validated = spec.settings.model_validate(dict(settings))
        except ValidationError as exc:
            fields = {
                ".".join(map(str, error["loc"])) or "settings": error["msg"]
                for error in exc.errors()
            }
            problems = "; ".join(f"{k}: {v}" for k, v in fields.items())
            raise ProfileError(f"the settings do not fit {service}: {problems}", fields) from None
        profile = PrivateProfile(
            account=account,
            service=spec.identifier,
            identifier=identifier,
            name=name.strip(),
            description=description.strip(),
            settings=validated.model_dump(mode="json"),
            updated_at=self.clock(),
        )
        return profile, await self.store.save_profile(profile)

    # -- what a job costs ------------------------------------------------------------------

    def price_of(self, service: str) -> int:
        return self.settings.prices.get(service, 0)

    def base_url(self, public_url: str | None) -> str:
        """Where the messages send people: the request's public address (behind a proxy,
        the proxy's), else the configured one."""
        return public_url or self.settings.public_base_url

    async def admit(
        self, service: str, account: Account | None, public_url: str | None = None
    ) -> Charge:
        """Whether a job for ``service`` may be taken for ``account``: PaymentRequired, with
        the price and where to register or top up, when it may not."""
        price = self.price_of(service)
        if price <= 0:
            return Charge(account.name if account else None, 0)
        base = self.base_url(public_url)
        if account is None:
            raise PaymentRequired(
                f"payment required: {service} costs {price} credits per job and needs an "
                f"account; register at {base}/account/register (or POST {base}/api/accounts), "
                f"then create a user token at {base}/account/tokens (or POST "
                f"{base}/api/tokens) and give it to BIMserver as this service's token"
            )
        balance = await self.store.balance(account.name)
        if balance < price:
            raise PaymentRequired(
                f"payment required: {service} costs {price} credits per job and the account "
                f"{account.name} holds {balance}; top up at {base}/account"
            )
        return Charge(account.name, price)

    async def charge(
        self, charge: Charge, job_key: str, service: str, public_url: str | None = None
    ) -> None:
        """Take the price, once for this job key; PaymentRequired if the credit went meanwhile
        (another job of the same account took it)."""
        if charge.price <= 0 or charge.account is None:
            return
        taken = await self.store.charge(
            charge.account, job_key, charge.price, f"job for {service}", self.clock()
        )
        if not taken:
            raise PaymentRequired(
                f"payment required: {service} costs {charge.price} credits per job and the "
                f"account {charge.account} no longer holds them; top up at "
                f"{self.base_url(public_url)}/account"
            )

    async def give_back(self, charge: Charge, job_key: str, why: str) -> None:
        if charge.price > 0:
            await self.store.refund(job_key, why, self.clock())


def private_profile_descriptor(profile: PrivateProfile) -> SProfileDescriptor:
    """As BIMserver lists it; the identifier it sends back in notifications is prefixed, so
    that the intake knows to look in the account's own profiles."""
    return SProfileDescriptor(
        identifier=PRIVATE_PREFIX + profile.identifier,
        name=profile.name,
        description=profile.description,
        publicProfile=False,
    )


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AccountError(f"{email!r} is not an e-mail address")
    return email
