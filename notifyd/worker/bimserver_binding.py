"""A notification's source and sink: the revision on BIMserver, and the write-back to it.

Everything here talks to the BIMserver that sent the notification, with the token it sent;
the rules it follows cite BIMserver's source. Write-back steps are recorded in the job before
the next one, so a retried job never writes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from notifyd.bimserver import progress, writeback
from notifyd.bimserver.client import BimServerClient, CallObserver, ServerCache
from notifyd.bimserver.download import download_revision
from notifyd.errors import (
    BimServerError,
    BimServerUnavailable,
    JobFailure,
    PermanentError,
)
from notifyd.protocol.bimserver.catalogue import SCHEMA_NAME_OF_IFC
from notifyd.protocol.descriptors import STrigger
from notifyd.records import (
    Delivery,
    Dialect,
    ExtendedDataWritten,
    Job,
    Notification,
    NotificationKind,
    RevisionCheckedIn,
)
from notifyd.services import ExtendedData, Revision, ServiceOutput, ServiceSpec
from notifyd.storage.base import Storage
from notifyd.worker.pipeline import Binding, Inputs, RecordStep

log = structlog.get_logger("notifyd.worker")


@dataclass(frozen=True, slots=True, kw_only=True)
class BimServerOptions:
    call_timeout: float = 60.0
    download_gzip: bool = True
    progress_interval: float = 1.0
    observer: CallObserver | None = None  # told of every exchange with a BIMserver


class BimServerBindings:
    """Binds notification jobs to the BIMserver that sent them, one client per job; what
    each server answered about itself (dialect, serializers) is remembered across jobs."""

    def __init__(
        self, *, session: aiohttp.ClientSession, storage: Storage, options: BimServerOptions
    ) -> None:
        self.session = session
        self.storage = storage
        self.options = options
        self.servers = ServerCache()

    async def bind(self, job: Job, spec: ServiceSpec, record_step: RecordStep) -> Binding:
        if not isinstance(job.origin, Notification):
            raise PermanentError(f"job {job.id} was not brought by a BIMserver notification")
        n = job.origin
        if not n.token:
            raise PermanentError("the job holds no BIMserver token")
        facts = await self.servers.facts_for(self.session, n.api_url, n.dialect)
        client = BimServerClient(
            self.session,
            n.api_url,
            token=n.token,
            dialect=facts.dialect,
            facts=facts,
            call_timeout=self.options.call_timeout,
            download_gzip=self.options.download_gzip,
            observer=self.options.observer,
        )
        return Binding(
            source=RevisionSource(client, job, spec, self.storage),
            sink=WriteBack(client, job, spec, record_step),
            progress=ProgressReporter(client, n, spec, self.options.progress_interval),
        )

    def failed(self, job: Job) -> None:
        if job.server is not None:
            self.servers.forget_lookups(job.server)

    async def sweep(self) -> int:
        """A notification leaves nothing behind (its work folder goes with the attempt)."""
        return 0


class RevisionSource:
    """The revision (and extended data) a notification names, downloaded with its token."""

    def __init__(
        self, client: BimServerClient, job: Job, spec: ServiceSpec, storage: Storage
    ) -> None:
        self.client = client
        self.job = job
        self.notification = job.notification
        self.spec = spec
        self.storage = storage

    async def skip_reason(self) -> str | None:
        """Why this notification must not run the service, or None.

        BIMserver notifies NEW_EXTENDED_DATA services of every ``addExtendedDataToRevision``
        with no recursion guard (``AddExtendedDataToRevisionDatabaseAction.java:81-86``), as
        two posts: ``newExtendedDataOnRevision`` then ``newRevision`` with the same token
        (``NewExtendedDataOnRevisionNotification.java:109-118``). Such a service never gets
        ``newRevision`` otherwise (``NewRevisionNotification`` sends only to NEW_REVISION
        services), so that post is the pair's echo; and extended data the service wrote itself
        would trigger it for ever. Likewise a revision a service checked in itself."""
        n, spec, client = self.notification, self.spec, self.client
        if (
            spec.write_revision
            and client.dialect is Dialect.BIMSIE1
            and n.kind is NotificationKind.NEW_REVISION
            and n.roid is not None
        ):
            # [1.4] notifies the service of the revision it checked in itself; [1.5] skips it
            # (NewRevisionNotification.java:137-140), so only 1.4 costs this call. The revision
            # names its creator (CheckinDatabaseAction.java:157).
            try:
                revision = await client.call("getRevision", roid=n.roid)
            except BimServerError as exc:
                if not exc.refuses_access:
                    raise
                revision = None  # not readable: the download will say what is wrong
            if (revision or {}).get("serviceId") == n.soid:
                return f"revision {n.roid} was checked in by this service"
        if spec.trigger is not STrigger.NEW_EXTENDED_DATA:
            return None
        if n.kind is NotificationKind.NEW_REVISION:
            return "newRevision paired with newExtendedDataOnRevision (NEW_EXTENDED_DATA)"
        if n.kind is not NotificationKind.NEW_EXTENDED_DATA_ON_REVISION or n.roid is None:
            return None
        extended = await writeback.extended_data_of_revision(client, n.roid)
        file_id = next((e.get("fileId") for e in extended if e.get("oid") == n.edid), None)
        if file_id is not None and await self.storage.wrote_extended_data(
            api_url=n.api_url, service=spec.identifier, file_id=int(file_id)
        ):
            return f"extended data {n.edid} was written by {spec.identifier} itself"
        return None

    async def fetch(self, work_dir: Path) -> Inputs:
        n, spec, client = self.notification, self.spec, self.client
        model_path = schema = extended_path = None
        if n.edid is not None and spec.read_extended_data:
            extended_path = await writeback.extended_data_file(
                client, n.edid, work_dir / "extended-data"
            )
        if n.roid is not None and spec.read_revision:
            accepted = {ifc for ifc, name in SCHEMA_NAME_OF_IFC.items() if name in spec.inputs}
            model = await download_revision(
                client,
                n.roid,
                work_dir / f"revision-{n.roid}.ifc",
                poid=n.poid,
                accepted_schemas=accepted,
            )
            # A known IFC schema the service does not take is refused here; a file with no or
            # an unknown schema goes to the service, whose checks say what is wrong with it.
            if model.schema in SCHEMA_NAME_OF_IFC and model.schema not in accepted:
                raise PermanentError(
                    f"revision {n.roid} is {model.schema or 'not IFC'}; service "
                    f"{spec.identifier} accepts {', '.join(sorted(accepted))}"
                )
            model_path, schema = model.path, model.schema
            log.info("revision_downloaded", bytes=model.size, schema=schema)
        if model_path is None and extended_path is None:
            raise PermanentError(
                f"a {n.kind} notification gives service {spec.identifier} nothing to read"
            )
        return Inputs(
            model_path=model_path,
            schema=schema,
            extended_data_path=extended_path,
            poid=n.poid,
            roid=n.roid,
            soid=n.soid,
        )


class WriteBack:
    """The service's output written back to BIMserver: extended data on the revision, or a
    new revision of the service's write project."""

    def __init__(
        self, client: BimServerClient, job: Job, spec: ServiceSpec, record_step: RecordStep
    ) -> None:
        self.client = client
        self.job = job
        self.notification = job.notification
        self.spec = spec
        self.record_step = record_step

    async def deliver(self, output: ServiceOutput, took_ms: int) -> Delivery:
        if isinstance(output, ExtendedData):
            if self.notification.roid is None:
                raise PermanentError("extended data can only be written to a revision")
            return await self._write_extended_data(output, took_ms)
        if isinstance(output, Revision):
            return await self._checkin(output)
        raise PermanentError(f"unsupported service output {type(output).__name__}")

    async def _write_extended_data(self, output: ExtendedData, took_ms: int) -> Delivery:
        """Effectively once: the file id is recorded before the extended data is added, and a
        retried job first looks for extended data with that file on the revision."""
        roid = self.notification.roid
        assert roid is not None
        client, spec = self.client, self.spec
        schema = output.schema or spec.write_extended_data
        if not schema:
            raise PermanentError(f"service {spec.identifier} declares no extended data schema")
        schema_id = await writeback.extended_data_schema_id(
            client, schema, spec.extended_data_namespace
        )
        file_id = self.job.steps.get("file_id")
        if file_id is not None:
            existing = await writeback.extended_data_of_revision(client, roid)
            if any(e.get("fileId") == file_id for e in existing):
                log.info("extended_data_already_present", file_id=file_id)
                return ExtendedDataWritten(file_id=file_id, schema=schema, already_present=True)
        else:
            file_id = await writeback.upload_file(
                client, output.data, filename=output.filename, mime=output.mime
            )
            await self.record_step("file_id", file_id)
        await writeback.add_extended_data(
            client, roid, schema_id=schema_id, file_id=file_id, title=output.title, took_ms=took_ms
        )
        # No step is recorded here: completing the job is the next write, and a crash before
        # it is caught by the look at the revision above.
        return ExtendedDataWritten(file_id=file_id, schema=schema, bytes=len(output.data))

    async def _checkin(self, output: Revision) -> Delivery:
        """Into the service's write project, effectively once: the comment carries the job id,
        and a job that may have checked in before looks for it among that project's newest
        revisions (the token may read them, not list them: see ``writeback``)."""
        steps, client = self.job.steps, self.client
        if steps.get("checked_in"):
            return _checked_in(steps["checked_in"], already=True)
        marker = f"(notifyd job {self.job.id})"
        comment = f"{output.comment} {marker}"
        poid = await writeback.write_project(client, self.notification.soid)
        if steps.get("checkin_started"):
            roid = await writeback.find_checked_in(client, poid, marker)
            if roid is not None:
                log.info("revision_already_checked_in", roid=roid)
                await self.record_step("checked_in", {"poid": poid, "roid": roid})
                return RevisionCheckedIn(poid=poid, roid=roid, already_checked_in=True)
        else:
            await self.record_step("checkin_started", True)
        answer = await writeback.checkin(client, poid, output.path, comment=comment)
        summary = {"poid": poid} | {
            k: answer[k] for k in ("roid", "checkinid", "topicId") if k in answer
        }
        await self.record_step("checked_in", summary)
        return _checked_in(summary, comment=comment)


def _checked_in(
    summary: dict[str, int], *, comment: str | None = None, already: bool = False
) -> RevisionCheckedIn:
    return RevisionCheckedIn(
        poid=summary["poid"],
        roid=summary.get("roid"),
        checkin_id=summary.get("checkinid"),
        topic_id=summary.get("topicId"),
        comment=comment,
        already_checked_in=already,
    )


class ProgressReporter:
    """Shows the BIMserver user what the service does, on a RUNNING_SERVICE topic.

    Progress is a courtesy: a BIMserver that refuses it never fails the job."""

    def __init__(
        self,
        client: BimServerClient,
        notification: Notification,
        spec: ServiceSpec,
        interval: float,
    ) -> None:
        self.client = client
        self.notification = notification
        self.spec = spec
        self.interval = interval
        self.topic: int | None = None
        self.started_ms = int(time.time() * 1000)
        self._last = time.monotonic()

    async def start(self) -> None:
        n = self.notification
        if n.roid is None or n.kind is NotificationKind.NEW_EXTENDED_DATA_ON_PROJECT:
            return
        try:
            self.topic = await progress.register_progress(
                self.client, n.poid, n.roid, self.spec.name
            )
            await self._send("STARTED", -1)
        except (JobFailure, BimServerUnavailable) as exc:
            log.warning("progress_unavailable", error=str(exc))
            self.topic = None

    async def report(self, percent: int, message: str = "") -> None:
        now = time.monotonic()
        if self.topic is None or now - self._last < self.interval:
            return
        self._last = now
        with contextlib.suppress(JobFailure):
            await self._send("STARTED", percent, message)

    async def finish(self, error: str | None = None) -> None:
        if self.topic is None:
            return
        with contextlib.suppress(JobFailure):
            await asyncio.shield(
                self._send(
                    "AS_ERROR" if error else "FINISHED",
                    100 if not error else -1,
                    error=error,
                    ended=True,
                )
            )
        with contextlib.suppress(JobFailure):
            await asyncio.shield(progress.unregister_progress(self.client, self.topic))

    async def _send(
        self,
        state: str,
        percent: int,
        message: str = "",
        *,
        error: str | None = None,
        ended: bool = False,
    ) -> None:
        assert self.topic is not None
        title = f"{self.spec.name}: {message}" if message else self.spec.name
        await progress.update_progress(
            self.client,
            self.topic,
            state=state,
            title=title,
            started_ms=self.started_ms,
            progress=percent,
            errors=[error] if error else None,
            ended=ended,
        )
