"""Where every job enters, whatever endpoint it arrived at: checked against the declared
services and the allowed servers, deduplicated and stored, and the worker woken.

The JSON endpoint calls it for BIMserver's notifications; the BIM-bots resource endpoint
and the accounts' balance check belong here too, so that every kind of job is accepted by
the same rules. It knows nothing of HTTP: callers turn its errors into their answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from notifyd.access import check_api_url, normalise_api_url
from notifyd.config import Settings
from notifyd.errors import ProtocolError, StorageError, UnsupportedType
from notifyd.grants import Account
from notifyd.hooks import Hooks, JobEvent, JobEventKind
from notifyd.protocol import rpc
from notifyd.records import Dialect, EnqueueResult, Notification, NotificationKind, Origin, Upload
from notifyd.services import Registry, ServiceSpec
from notifyd.storage.base import Storage
from notifyd.user_accounts import PRIVATE_PREFIX, UserAccounts


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A job stored (or found already stored: ``duplicate``) before the caller is answered."""

    job_id: int
    duplicate: bool
    notification: Notification


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadRequest:
    """What a BIM-bots client asked for, once its model is on disk."""

    upload_id: str
    service: str
    input_type: str
    output_type: str
    model_path: str
    size: int
    account: str
    client_id: str
    context_id: str | None


class Intake:
    def __init__(
        self,
        *,
        storage: Storage,
        registry: Registry,
        settings: Settings,
        hooks: Hooks | None = None,
        accounts: UserAccounts | None = None,
    ) -> None:
        """``accounts``: resolves user tokens, private profiles and prices; without it every
        service is free and only public profiles exist."""
        self.storage = storage
        self.registry = registry
        self.settings = settings
        self.hooks = hooks
        self.accounts = accounts
        self._wake: Callable[[], None] | None = None

    def wake_with(self, wake: Callable[[], None] | None) -> None:
        """Call ``wake`` whenever a new job is stored (the worker in this process claims at
        once instead of at its next poll); None when the worker stops."""
        self._wake = wake

    async def notification(
        self,
        kind: NotificationKind,
        dialect: Dialect,
        params: rpc.NotificationParameters,
        public_url: str | None = None,
    ) -> Accepted:
        """Raises ProtocolError (unknown service or profile, an apiUrl not allowed) or
        StorageError (not stored: the caller must not acknowledge it)."""
        service = params.serviceIdentifier
        # userToken is the token the user gave BIMserver for this service (SService.token:
        # NewRevisionNotification.java:325 passes service.getToken() there, and the
        # notification's own token as ``token``). It is looked up only when it matters (a
        # price, a private profile): a free service's acknowledgement costs no extra read.
        private = (params.profileIdentifier or "").startswith(PRIVATE_PREFIX)
        needs_account = private or (
            self.accounts is not None and self.accounts.price_of(service) > 0
        )
        account = await self._account_of(params.userToken) if needs_account else None
        profile = await self._profile(service, params.profileIdentifier, account, public_url)
        api_url = normalise_api_url(params.apiUrl)
        check_api_url(api_url, self.settings.allowed_api_urls)
        notification = Notification(
            kind=kind,
            dialect=dialect,
            poid=params.poid,
            roid=vars(params).get("roid"),
            edid=vars(params).get("edid"),
            soid=params.soid,
            service=service,
            profile=profile,
            api_url=api_url,
            token=params.token,
            user_token=None,  # never stored: the account it names is
            account=account.name if account else None,
        )
        stored = await self._charged_enqueue(notification, account, public_url)
        if stored.created:
            self._stored(stored.job_id, notification.service, str(kind))
        return Accepted(
            job_id=stored.job_id, duplicate=not stored.created, notification=notification
        )

    def check_upload(self, service: str, input_type: str, output_type: str) -> ServiceSpec:
        """The service a model may be posted to with these types, before its body is read.
        Raises UnknownService or UnsupportedType."""
        spec = self.registry.service(service)
        if not spec.read_revision or input_type not in spec.inputs:
            raise UnsupportedType(
                f"Input-Type {input_type!r} is not taken by {spec.identifier}; "
                f"it takes {', '.join(spec.inputs) if spec.read_revision else 'no model'}"
            )
        if output_type not in spec.outputs:
            raise UnsupportedType(
                f"Output-Type {output_type!r} is not given by {spec.identifier}; "
                f"it gives {', '.join(spec.outputs)}"
            )
        return spec

    async def upload(self, request: UploadRequest, public_url: str | None = None) -> int:
        """The job id of a model posted to a service's resource URL. Raises ProtocolError
        (the service or the types are not offered) or StorageError (not stored)."""
        spec = self.check_upload(request.service, request.input_type, request.output_type)
        upload = Upload(
            upload_id=request.upload_id,
            service=spec.identifier,
            profile=self.registry.profile(spec.identifier, None).identifier,
            input_type=request.input_type,
            output_type=request.output_type,
            model_path=request.model_path,
            size=request.size,
            account=request.account,
            client_id=request.client_id,
            context_id=request.context_id,
        )
        stored = await self._charged_enqueue(upload, request.account, public_url)
        if stored.created:
            self._stored(stored.job_id, upload.service, "upload")
        return stored.job_id

    async def _account_of(self, user_token: str | None) -> Account | None:
        if self.accounts is None or not user_token:
            return None
        return await self.accounts.account_of_token(user_token)

    async def _profile(
        self,
        service: str,
        identifier: str | None,
        account: Account | None,
        public_url: str | None,
    ) -> str:
        """A public profile's identifier, or ``private:<identifier>`` of the account's own
        (which needs the user token that names the account)."""
        if identifier and identifier.startswith(PRIVATE_PREFIX) and self.accounts is not None:
            self.registry.service(service)
            own = identifier.removeprefix(PRIVATE_PREFIX)
            found = (
                await self.accounts.store.private_profile(account.name, service, own)
                if account
                else None
            )
            if found is None:
                raise ProtocolError(
                    f"profile {identifier!r} of {service} is private to an account: give the "
                    "user token of the account that owns it in BIMserver's settings for this "
                    "service (tokens are made at "
                    f"{self.accounts.base_url(public_url)}/account/tokens)"
                )
            return identifier
        return self.registry.profile(service, identifier).identifier

    async def _charged_enqueue(
        self, origin: Origin, account: Account | str | None, public_url: str | None
    ) -> EnqueueResult:
        """Store the job, charging its price first (once per job key) when the service has
        one; a job that could not be stored is not paid for."""
        if self.accounts is None or self.accounts.price_of(origin.service) <= 0:
            return await self.storage.enqueue(origin, max_attempts=self.settings.max_attempts)
        if isinstance(account, str):
            account = await self.accounts.grants.account(account)
        charge = await self.accounts.admit(origin.service, account, public_url)
        await self.accounts.charge(charge, origin.dedup_key, origin.service, public_url)
        try:
            return await self.storage.enqueue(origin, max_attempts=self.settings.max_attempts)
        except StorageError:
            await self.accounts.give_back(charge, origin.dedup_key, "refund: not stored")
            raise

    def _stored(self, job_id: int, service: str, origin: str) -> None:
        if self._wake is not None:
            self._wake()
        if self.hooks is not None:
            self.hooks.job_event(
                JobEvent(kind=JobEventKind.RECEIVED, job_id=job_id, service=service, origin=origin)
            )
