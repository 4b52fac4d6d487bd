"""The emulated BIMserver as one object: its state, JSON API, servlets, faults and notifier,
served on a port, with helpers for tests and ``notifyd dev``."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from notifyd.emulator import methods  # noqa: F401 - registers the API methods
from notifyd.emulator.api import JsonApi
from notifyd.emulator.faults import Fault, FaultKind, FaultPlan
from notifyd.emulator.notifier import Notifier
from notifyd.emulator.servlets import CallLog, Servlets
from notifyd.emulator.state import (
    EmulatedProject,
    EmulatedRevision,
    Grant,
    LongAction,
    ProgressTopic,
    RegisteredService,
    ServerState,
)
from notifyd.records import Dialect

log = structlog.get_logger("notifyd.emulator")


class BimServerEmulator:
    def __init__(
        self,
        dialect: Dialect = Dialect.BIMSERVER_15,
        *,
        host: str = "127.0.0.1",
        username: str = "admin@bimserver.test",
        password: str = "admin",  # noqa: S107 - the emulator's test login
        data_dir: Path | None = None,
        prepare_seconds: float = 0.0,
        auto_notify: bool = True,
    ) -> None:
        self.dialect = dialect
        self.host = host
        self.username = username
        self.password = password
        self.data_dir = data_dir
        self.auto_notify = auto_notify
        self.port = 0
        self.state = ServerState(dialect, prepare_seconds=prepare_seconds)
        self.faults = FaultPlan()
        self.calls: CallLog = []
        self.checkins: list[dict[str, Any]] = []
        self.notifier = Notifier(self.state, "")
        self.api = JsonApi(
            self.state,
            username=username,
            password=password,
            on_extended_data=self._extended_data_added,
        )
        self.servlets = Servlets(
            self.state,
            self.api,
            self.faults,
            self.calls,
            data_dir=self._data_dir,
            on_checkin=self._checked_in,
        )
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._own_dir: Path | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=1024**3)
        self.servlets.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self._listen(port)
        self.notifier.site_address = self.url
        self.notifier.session = aiohttp.ClientSession()
        if self.data_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="notifyd-emulator-"))
            self.data_dir = self._own_dir
        return self.url

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def go_down(self) -> None:
        """Stop listening, as a BIMserver being restarted or upgraded: connections are
        refused until ``come_back``; the server's state (tokens, projects) is kept."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def come_back(self) -> None:
        """Listen again on the same port."""
        if self._site is None:
            await self._listen(self.port)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.notifier.session is not None:
            await self.notifier.session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    async def __aenter__(self) -> BimServerEmulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _data_dir(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir

    # -- state, for tests and dev ------------------------------------------------------------

    @property
    def revisions(self) -> dict[int, EmulatedRevision]:
        return self.state.revisions

    @property
    def projects(self) -> dict[int, EmulatedProject]:
        return self.state.projects

    @property
    def topics(self) -> dict[int, ProgressTopic]:
        return self.state.topics

    @property
    def long_actions(self) -> dict[int, LongAction]:
        return self.state.long_actions

    @property
    def services(self) -> dict[int, RegisteredService]:
        return self.state.services

    def add_project(self, name: str = "Project", schema: str | None = None) -> int:
        return self.state.add_project(name, schema).poid

    def add_revision(
        self, poid: int, path: Path, comment: str = "", *, schema: str | None = None
    ) -> int:
        """Store ``path`` as a revision; ``schema`` (default: the file's header) is what
        BIMserver would have recorded for it."""
        return self.state.add_revision(poid, path, comment, schema=schema).roid

    def inject(self, kind: FaultKind | str, target: str = "*", **kw: Any) -> Fault:
        return self.faults.add(Fault(kind=FaultKind(kind), target=target, **kw))

    def issue_token(self, grant: Grant) -> str:
        return self.state.issue_token(grant)

    def expire_token(self, token: str) -> None:
        self.state.tokens[token].expires_at = 0.0

    def extended_data_of(self, roid: int) -> list[dict[str, Any]]:
        """What services wrote to the revision: each with its schema name and file bytes."""
        out = []
        for edid in self.state.revisions[roid].extended_data:
            entry = dict(self.state.extended_data[edid])
            schema = self.state.schemas.get(entry["schemaId"])
            entry["schema"] = schema.name if schema else None
            entry["data"] = self.state.files[entry["fileId"]].data
            out.append(entry)
        return out

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for _, m, params in self.calls if m == method]

    # -- services and notifications ------------------------------------------------------------

    async def add_service(
        self,
        service_url: str,
        identifier: str,
        profile: str = "default",
        *,
        poid: int | None = None,
        write_poid: int | None = None,
    ) -> RegisteredService:
        return await self.notifier.add_service(
            service_url, identifier, profile, poid=poid, write_poid=write_poid
        )

    async def notify_new_revision(self, service: RegisteredService, roid: int) -> str:
        return await self.notifier.new_revision(service, roid)

    async def notify_new_extended_data(
        self, service: RegisteredService, roid: int, edid: int
    ) -> str:
        return await self.notifier.new_extended_data(service, roid, edid)

    async def settle(self) -> None:
        """Wait until every notification the emulator sent on its own has been answered."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        """BIMserver notifies on its executor after the commit; a failure is only logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._notified)

    def _notified(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("emulator_notification_failed", error=str(task.exception()))

    def _extended_data_added(self, roid: int, edid: int) -> None:
        if not self.auto_notify:
            return
        poid = self.state.revisions[roid].poid
        for service in self.notifier.services_to_notify(poid, "NEW_EXTENDED_DATA"):
            self._spawn(self.notifier.new_extended_data(service, roid, edid))

    async def _checked_in(
        self, revision: EmulatedRevision, fields: dict[str, str], size: int
    ) -> None:
        self.checkins.append(
            {
                "poid": revision.poid,
                "roid": revision.roid,
                "comment": fields.get("comment"),
                "fields": dict(fields),
                "bytes": size,
            }
        )
        if not self.auto_notify:
            return
        for service in self.notifier.services_to_notify(
            revision.poid, "NEW_REVISION", created_by=revision.service_id
        ):
            self._spawn(self.notifier.new_revision(service, revision.roid))
