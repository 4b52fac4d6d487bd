"""How the emulated BIMserver talks to external services: fetching the descriptor and profiles
when a service is added, and posting notifications.

The channel posts to ``service.url + "/json"`` exactly as stored (``NotificationsManager.
getChannel``; a trailing slash is kept), with [1.5] ``Content-Type: application/json``
(``JsonSocketReflector``, since 1.5.49) and [1.4] HttpCore's ``text/plain; charset=UTF-8``.
Anything but HTTP 200 is "Call unsuccessful, status code N" (``JsonReflector.callMethod``).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from notifyd.emulator.state import RegisteredService, ServerState
from notifyd.records import Dialect


class ServiceCallFailed(RuntimeError):
    """The service did not answer as BIMserver's JsonReflector requires."""


class Notifier:
    def __init__(self, state: ServerState, site_address: str) -> None:
        self.state = state
        self.dialect = state.dialect
        self.site_address = site_address
        self.session: aiohttp.ClientSession | None = None

    @property
    def remote_interface(self) -> str:
        if self.dialect is Dialect.BIMSIE1:
            return "Bimsie1RemoteServiceInterface"
        return "RemoteServiceInterface"

    async def call(self, url: str, method: str, **parameters: Any) -> Any:
        body = {
            "request": {
                "interface": self.remote_interface,
                "method": method,
                "parameters": parameters,
            }
        }
        assert self.session is not None
        content_type = (
            "text/plain; charset=UTF-8" if self.dialect is Dialect.BIMSIE1 else "application/json"
        )
        async with self.session.post(
            url + "/json",
            data=orjson.dumps(body),
            headers={"Content-Type": content_type},
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                raise ServiceCallFailed(f"Call unsuccessful, status code {response.status}")
            answer = await response.json(content_type=None)
        outer = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(outer, dict):
            return None
        if "exception" in outer:
            raise ServiceCallFailed(str(outer["exception"].get("message")))
        return outer.get("result")

    async def add_service(
        self,
        url: str,
        identifier: str,
        profile: str = "default",
        *,
        poid: int | None = None,
        write_poid: int | None = None,
    ) -> RegisteredService:
        """As BIMserver's UI does: getService (``ServiceImpl.getServiceDescriptor``), then the
        public profiles, then the SService stored on the project."""
        descriptor = await self.call(url, "getService", serviceIdentifier=identifier)
        if not descriptor:
            raise ServiceCallFailed(f"No service found with identifier {identifier}")
        profiles = await self.call(url, "getPublicProfiles", serviceIdentifier=identifier)
        if profile not in {p["identifier"] for p in profiles or []}:
            raise ValueError(f"service {identifier} has no public profile {profile}")
        service = RegisteredService(
            soid=self.state.new_id(),
            url=url,
            identifier=identifier,
            profile=profile,
            descriptor=descriptor,
            user_token=descriptor.get("token"),
            poid=poid,
            write_poid=write_poid,
        )
        self.state.services[service.soid] = service
        if poid is not None:
            self.state.projects[poid].services.append(service.soid)
        return service

    def _common(self, service: RegisteredService, token: str) -> dict[str, Any]:
        return {
            "serviceIdentifier": service.identifier,
            "profileIdentifier": service.profile,
            "userToken": service.user_token,
            "token": token,
            "apiUrl": self.site_address,
        }

    async def new_revision(self, service: RegisteredService, roid: int) -> str:
        """NewRevisionNotification.triggerNewRevision (lines 262-333); returns the token."""
        revision = self.state.revisions[roid]
        token = self.state.issue_token(self.state.notification_grant(service, roid))
        await self.call(
            service.url,
            "newRevision",
            poid=revision.poid,
            roid=roid,
            soid=service.soid,
            **self._common(service, token),
        )
        return token

    async def new_extended_data(self, service: RegisteredService, roid: int, edid: int) -> str:
        """NewExtendedDataOnRevisionNotification.java:94-126: newExtendedDataOnRevision with
        the notification's soid (-1), then newRevision, sharing one token."""
        revision = self.state.revisions[roid]
        grant = self.state.notification_grant(service, roid)
        grant.read_roids = {roid} if service.descriptor.get("readRevision") else set()
        token = self.state.issue_token(grant)
        common = self._common(service, token)
        await self.call(
            service.url,
            "newExtendedDataOnRevision",
            poid=revision.poid,
            roid=roid,
            edid=edid,
            soid=-1,
            **common,
        )
        await self.call(
            service.url, "newRevision", poid=revision.poid, roid=roid, soid=service.soid, **common
        )
        return token

    def services_to_notify(
        self, poid: int, trigger: str, *, created_by: int = -1
    ) -> list[RegisteredService]:
        """The project's services with that trigger; [1.5] skips the service that created the
        revision (NewRevisionNotification.java:137-140), [1.4] does not."""
        project = self.state.projects[poid]
        found = []
        for soid in project.services:
            service = self.state.services[soid]
            if service.trigger != trigger:
                continue
            if (
                trigger == "NEW_REVISION"
                and self.dialect is Dialect.BIMSERVER_15
                and soid == created_by
            ):
                continue
            found.append(service)
        return found
