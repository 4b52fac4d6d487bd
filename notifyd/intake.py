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
from notifyd.protocol import rpc
from notifyd.records import Dialect, Notification, NotificationKind
from notifyd.services import Registry
from notifyd.storage.base import Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A job stored (or found already stored: ``duplicate``) before the caller is answered."""

    job_id: int
    duplicate: bool
    notification: Notification


class Intake:
    def __init__(self, *, storage: Storage, registry: Registry, settings: Settings) -> None:
        self.storage = storage
        self.registry = registry
        self.settings = settings
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
    ) -> Accepted:
        """Raises ProtocolError (unknown service or profile, an apiUrl not allowed) or
        StorageError (not stored: the caller must not acknowledge it)."""
        profile = self.registry.profile(params.serviceIdentifier, params.profileIdentifier)
        api_url = normalise_api_url(params.apiUrl)
        check_api_url(api_url, self.settings.allowed_api_urls)
        notification = Notification(
            kind=kind,
            dialect=dialect,
            poid=params.poid,
            roid=vars(params).get("roid"),
            edid=vars(params).get("edid"),
            soid=params.soid,
            service=params.serviceIdentifier,
            profile=profile.identifier,
            api_url=api_url,
            token=params.token,
            user_token=params.userToken,
        )
        stored = await self.storage.enqueue(notification, max_attempts=self.settings.max_attempts)
        if stored.created and self._wake is not None:
            self._wake()
        return Accepted(
            job_id=stored.job_id, duplicate=not stored.created, notification=notification
        )
