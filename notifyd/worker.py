"""The worker: claim a job, download the revision, run the service, write the results back.

Claims carry leases that a heartbeat extends while the service runs; a job whose lease runs out
(its worker died or hung) is reclaimed at start-up and periodically, so no job stays
``running``. Outcomes are persisted under ``asyncio.shield`` so a shutdown cannot lose them.
``stop()`` drains: no new claims, running jobs get a grace period, then go back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from notifyd.bimserver import progress, writeback
from notifyd.bimserver.client import BimServerClient, ServerCache
from notifyd.bimserver.download import download_revision
from notifyd.config import Settings
from notifyd.errors import (
    BimServerDown,
    BimServerError,
    BimServerUnavailable,
    JobCancelled,
    JobFailure,
    PermanentError,
    ProtocolError,
    StorageError,
)
from notifyd.logs import scrub_text
from notifyd.protocol.bimserver.catalogue import SCHEMA_NAME_OF_IFC
from notifyd.protocol.descriptors import STrigger
from notifyd.records import Dialect, Job, JobStatus, NotificationKind
from notifyd.retry import RetryPolicy
from notifyd.runner import ServicePool, Ticket
from notifyd.services import (
    ExtendedData,
    Registry,
    Revision,
    ServiceContext,
    ServiceOutput,
    ServiceSpec,
)
from notifyd.storage.base import Storage

log = structlog.get_logger("notifyd.worker")

HOSTNAME = socket.gethostname()


def make_worker_id() -> str:
    """host:pid:random, so a restarted daemon can recognise the leases its dead self held."""
    return f"{HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local_worker(worker_id: str | None) -> bool:
    if not worker_id:
        return False
    host, _, rest = worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOSTNAME or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    concurrency: int = 2
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 1.0
    reclaim_seconds: float = 30.0
    one_job_per_project: bool = True
    drain_seconds: float = 30.0
    work_dir: Path = Path("data/work")
    progress_interval: float = 1.0
    bimserver_timeout: float = 60.0
    download_gzip: bool = True
    outage_patience_seconds: float = 86_400.0
    token_retention_seconds: float = 604_800.0
    min_claim_interval: float = 0.02

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            poll_seconds=settings.poll_seconds,
            reclaim_seconds=settings.reclaim_seconds,
            one_job_per_project=settings.one_job_per_project,
            drain_seconds=settings.drain_seconds,
            work_dir=settings.data_dir / "work",
            bimserver_timeout=settings.bimserver_timeout_seconds,
            download_gzip=settings.download_gzip,
            outage_patience_seconds=settings.outage_patience_seconds,
            token_retention_seconds=settings.token_retention_seconds,
        )


class Worker:
    def __init__(
        self,
        *,
        storage: Storage,
        registry: Registry,
        pool: ServicePool,
        session: aiohttp.ClientSession,
        config: WorkerConfig,
        retry_policy: RetryPolicy | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.pool = pool
        self.session = session
        self.config = config
        self.retry_policy = retry_policy or RetryPolicy(rng=random.Random())
        self.worker_id = worker_id or make_worker_id()
        self.servers = ServerCache()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._down: set[str] = set()  # BIMservers this worker saw down
        self._idle_claim = False  # the last claim found nothing, and no job ended since
        self._loop_failures = 0
        self._loop_error = ""

    def wake(self) -> None:
        """A job was enqueued in this process: claim now instead of at the next poll."""
        self._wakeup.set()

    def problems(self) -> list[str]:
        """Why the worker is not working, for /healthz: it failed three times in a row."""
        if self._loop_failures < 3:
            return []
        return [f"the worker failed {self._loop_failures} times in a row: {self._loop_error}"]

    @property
    def running_jobs(self) -> list[int]:
        return list(self._running)

    async def run(self, *, until_empty: bool = False) -> None:
        """Work until ``stop()``; with ``until_empty``, until nothing is queued or running."""
        log.info("worker_started", worker_id=self.worker_id, concurrency=self.config.concurrency)
        await self.reclaim()
        last_reclaim = time.monotonic()
        while not self._stopping.is_set():
            try:
                claimed = await self._claim_and_start()
                if time.monotonic() - last_reclaim > self.config.reclaim_seconds:
                    await self.reclaim()
                    last_reclaim = time.monotonic()
                if until_empty and not self._running and not claimed:
                    counts = await self.storage.counts()
                    if counts[JobStatus.QUEUED] == 0 and counts[JobStatus.RUNNING] == 0:
                        break
                self._loop_failures = 0
            except Exception as exc:
                # A database that is locked too long or a full disk must not end the worker
                # silently: say so, wait, and try again; /healthz tells when it keeps failing.
                self._loop_failures += 1
                self._loop_error = scrub_text(f"{type(exc).__name__}: {exc}")
                log.exception("worker_loop_failed", failures_in_a_row=self._loop_failures)
                claimed = []
            if claimed and len(self._running) < self.config.concurrency:
                continue  # there may be more due jobs
            await self._sleep()
        await self._drain()

    async def _claim_and_start(self) -> list[Job]:
        free = self.config.concurrency - len(self._running)
        if free <= 0:
            return []
        claimed = await self.storage.claim(
            worker_id=self.worker_id,
            lease_seconds=self.config.lease_seconds,
            limit=free,
            one_per_project=self.config.one_job_per_project,
        )
        self._idle_claim = not claimed
        for job in claimed:
            task = asyncio.create_task(self._process(job), name=f"job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._finished, job.id))
        return claimed

    def _finished(self, job_id: int, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self._idle_claim = False
        self._wakeup.set()

    async def _sleep(self) -> None:
        """Until the poll interval passes, a job ends, or a job arrives. Arrivals that find
        nothing to claim (every due project busy) are taken together, one claim per
        ``min_claim_interval``, not one per notification."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.poll_seconds):
                stop = asyncio.ensure_future(self._stopping.wait())
                wake = asyncio.ensure_future(self._wakeup.wait())
                try:
                    await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    wake.cancel()
                if self._idle_claim and not self._stopping.is_set():
                    await asyncio.sleep(self.config.min_claim_interval)

    async def stop(self) -> None:
        """Stop claiming; ``run`` then drains and returns."""
        self._stopping.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("worker_draining", jobs=list(self._running), grace=self.config.drain_seconds)
        tasks = list(self._running.values())
        _, pending = await asyncio.wait(tasks, timeout=self.config.drain_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def reclaim(self) -> None:
        """Requeue jobs whose lease ran out, and at once those of dead processes on this host;
        erase the tokens dead jobs kept past their retention window."""
        for job in await self.storage.list_jobs(status=JobStatus.RUNNING, limit=1000):
            if _dead_local_worker(job.worker_id) and job.worker_id:
                await self.storage.expire_lease(job.id, worker_id=job.worker_id)
        for job in await self.storage.reclaim_expired():
            log.warning("job_reclaimed", status=str(job.status), **job.log_context())
        erased = await self.storage.erase_tokens(
            finished_before=time.time() - self.config.token_retention_seconds
        )
        if erased:
            log.info("tokens_erased", jobs=erased)

    # -- one job -----------------------------------------------------------------------

    async def _process(self, job: Job) -> None:
        structlog.contextvars.bind_contextvars(**job.log_context())
        started = time.monotonic()
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job, cancelled))
        try:
            log.info("job_started")
            result = await self._execute(job, cancelled)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job))
            raise
        except Exception as exc:
            await asyncio.shield(self._record_failure(job, exc))
        else:
            await asyncio.shield(self._complete(job, result, started))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, job: Job, cancelled: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                beat = await self.storage.heartbeat(
                    job.id, worker_id=self.worker_id, lease_seconds=self.config.lease_seconds
                )
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))
                continue
            if beat is None:
                log.warning("lease_lost")
                cancelled.set()
                return
            if beat.cancel_requested:
                log.info("job_cancel_requested")
                cancelled.set()
                return

    async def _server_answered(self, api_url: str) -> None:
        if api_url in self._down:
            self._down.discard(api_url)
            await self.storage.server_answered(api_url)
            log.info("bimserver_back", api_url=api_url)

    async def _complete(self, job: Job, result: dict[str, Any], started: float) -> None:
        with contextlib.suppress(StorageError):
            await self._server_answered(job.notification.api_url)
        result["timings_ms"]["total"] = round((time.monotonic() - started) * 1000, 2)
        result["timings_ms"]["since_notification"] = round((time.time() - job.created_at) * 1000, 2)
        try:
            await self.storage.complete(job.id, worker_id=self.worker_id, result=result)
        except StorageError as exc:  # InvalidTransition: the lease was lost meanwhile
            _outcome_not_recorded(exc)
            return
        log.info("job_succeeded", **result)

    async def _record_failure(self, job: Job, exc: BaseException) -> None:
        api_url = job.notification.api_url
        self.servers.forget_lookups(api_url)
        message = _failure_message(exc)
        spend_attempt = True
        try:
            if isinstance(exc, BimServerDown):
                # Wait for BIMserver without spending attempts, and pause its other jobs.
                outage = await self.storage.pause_server(
                    api_url, error=message, pause=self.retry_policy.outage_pause
                )
                self._down.add(api_url)
                retry_at: float | None = outage.paused_until
                spend_attempt = (
                    time.time() - outage.down_since > self.config.outage_patience_seconds
                )
            else:
                if not isinstance(exc, BimServerUnavailable):
                    await self._server_answered(api_url)
                delay = (
                    None
                    if isinstance(exc, JobCancelled)
                    else self.retry_policy.delay(exc, job.attempts)
                )
                retry_at = None if delay is None else time.time() + delay
            updated = await self.storage.fail(
                job.id,
                worker_id=self.worker_id,
                error=message,
                retry_at=retry_at,
                spend_attempt=spend_attempt,
            )
        except StorageError as failure:
            _outcome_not_recorded(failure)
            return
        log.warning(
            "job_failed",
            error=message,
            status=str(updated.status),
            attempt_spent=spend_attempt,
            retry_in=(
                None
                if updated.status is not JobStatus.QUEUED or retry_at is None
                else round(max(0.0, retry_at - time.time()), 2)
            ),
        )

    async def _release(self, job: Job) -> None:
        try:
            await self.storage.release(job.id, worker_id=self.worker_id)
        except StorageError as exc:
            _outcome_not_recorded(exc)
            return
        log.info("job_released")

    async def _execute(self, job: Job, cancelled: asyncio.Event) -> dict[str, Any]:
        n = job.notification
        try:
            spec = self.registry.service(n.service)
            profile = self.registry.profile(n.service, n.profile)
        except ProtocolError as exc:
            raise PermanentError(f"{exc.message} (it was declared when the job arrived)") from exc
        if spec.handler_ref is None:
            raise PermanentError(f"service {spec.identifier} is declared without a handler")
        if not n.token:
            raise PermanentError("the job holds no BIMserver token")
        facts = await self.servers.facts_for(self.session, n.api_url, n.dialect)
        client = BimServerClient(
            self.session,
            n.api_url,
            token=n.token,
            dialect=facts.dialect,
            facts=facts,
            call_timeout=self.config.bimserver_timeout,
            download_gzip=self.config.download_gzip,
        )
        skipped = await self._own_echo(client, job, spec)
        if skipped is not None:
            log.info("job_skipped", reason=skipped)
            return {"skipped": skipped, "timings_ms": {}}
        reporter = _ProgressReporter(client, job, spec, self.config.progress_interval)
        work_dir = self.config.work_dir / f"job-{job.id}-{job.attempts}"
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        clock = time.monotonic()
        # The progress topic is opened while the download runs: it is a courtesy to the user
        # and must not add its round trips to every job's latency.
        starting = asyncio.create_task(reporter.start())
        try:
            model_path, schema, extended_path = await self._inputs(client, job, spec, work_dir)
            downloaded = time.monotonic()
            await starting
            context = ServiceContext(
                model_path=model_path,
                schema=schema,
                extended_data_path=extended_path,
                work_dir=work_dir,
                poid=n.poid,
                roid=n.roid,
                soid=n.soid,
                job_id=job.id,
                attempt=job.attempts,
                service=spec.identifier,
                profile=profile.identifier,
                settings=profile.settings,
            )
            ticket = Ticket(spec.handler_ref, context)
            output = await self.pool.run(
                ticket,
                timeout=spec.timeout_seconds,
                on_progress=reporter.report,
                cancelled=cancelled,
            )
            ran = time.monotonic()
            took_ms = int((ran - downloaded) * 1000)
            result = await self._write_back(client, job, spec, output, took_ms)
            result["timings_ms"] = {
                "download": round((downloaded - clock) * 1000, 2),
                "service": round((ran - downloaded) * 1000, 2),
                "write_back": round((time.monotonic() - ran) * 1000, 2),
            }
        except BaseException as exc:
            await asyncio.gather(starting, return_exceptions=True)
            await reporter.finish(error=_failure_message(exc))
            raise
        else:
            await reporter.finish()
            return result
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def _own_echo(self, client: BimServerClient, job: Job, spec: ServiceSpec) -> str | None:
        """Why this notification must not run the service, or None.

        BIMserver notifies NEW_EXTENDED_DATA services of every ``addExtendedDataToRevision``
        with no recursion guard (``AddExtendedDataToRevisionDatabaseAction.java:81-86``), as
        two posts: ``newExtendedDataOnRevision`` then ``newRevision`` with the same token
        (``NewExtendedDataOnRevisionNotification.java:109-118``). Such a service never gets
        ``newRevision`` otherwise (``NewRevisionNotification`` sends only to NEW_REVISION
        services), so that post is the pair's echo; and extended data the service wrote itself
        would trigger it for ever. Likewise a revision a service checked in itself."""
        n = job.notification
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

    async def _inputs(
        self, client: BimServerClient, job: Job, spec: ServiceSpec, work_dir: Path
    ) -> tuple[Path | None, str | None, Path | None]:
        n = job.notification
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
        return model_path, schema, extended_path

    async def _write_back(
        self,
        client: BimServerClient,
        job: Job,
        spec: ServiceSpec,
        output: ServiceOutput,
        took_ms: int,
    ) -> dict[str, Any]:
        n = job.notification
        if isinstance(output, ExtendedData):
            if n.roid is None:
                raise PermanentError("extended data can only be written to a revision")
            return await self._write_extended_data(client, job, spec, output, took_ms)
        if isinstance(output, Revision):
            return await self._checkin(client, job, output)
        raise PermanentError(f"unsupported service output {type(output).__name__}")

    async def _write_extended_data(
        self,
        client: BimServerClient,
        job: Job,
        spec: ServiceSpec,
        output: ExtendedData,
        took_ms: int,
    ) -> dict[str, Any]:
        """Effectively once: the file id is recorded before the extended data is added, and a
        retried job first looks for extended data with that file on the revision."""
        n = job.notification
        assert n.roid is not None
        schema = output.schema or spec.write_extended_data
        if not schema:
            raise PermanentError(f"service {spec.identifier} declares no extended data schema")
        steps = dict(job.steps)
        schema_id = await writeback.extended_data_schema_id(
            client, schema, spec.extended_data_namespace
        )
        file_id = steps.get("file_id")
        if file_id is not None:
            existing = await writeback.extended_data_of_revision(client, n.roid)
            if any(e.get("fileId") == file_id for e in existing):
                log.info("extended_data_already_present", file_id=file_id)
                return {"extended_data_file_id": file_id, "skipped": "already on the revision"}
        else:
            file_id = await writeback.upload_file(
                client, output.data, filename=output.filename, mime=output.mime
            )
            await self._step(job, "file_id", file_id)
        await writeback.add_extended_data(
            client,
            n.roid,
            schema_id=schema_id,
            file_id=file_id,
            title=output.title,
            took_ms=took_ms,
        )
        # No step is recorded here: completing the job is the next write, and a crash before
        # it is caught by the look at the revision above.
        return {"extended_data_file_id": file_id, "schema": schema, "bytes": len(output.data)}

    async def _checkin(self, client: BimServerClient, job: Job, output: Revision) -> dict[str, Any]:
        """Into the service's write project, effectively once: the comment carries the job id,
        and a job that may have checked in before looks for it among that project's newest
        revisions (the token may read them, not list them: see ``writeback``)."""
        if job.steps.get("checked_in"):
            return {"checkin": job.steps["checked_in"], "skipped": "already checked in"}
        marker = f"(notifyd job {job.id})"
        comment = f"{output.comment} {marker}"
        poid = await writeback.write_project(client, job.notification.soid)
        if job.steps.get("checkin_started"):
            roid = await writeback.find_checked_in(client, poid, marker)
            if roid is not None:
                log.info("revision_already_checked_in", roid=roid)
                await self._step(job, "checked_in", {"poid": poid, "roid": roid})
                return {"checkin": {"poid": poid, "roid": roid}, "skipped": "already checked in"}
        else:
            await self._step(job, "checkin_started", True)
        answer = await writeback.checkin(client, poid, output.path, comment=comment)
        summary = {"poid": poid} | {
            k: answer[k] for k in ("roid", "checkinid", "topicId") if k in answer
        }
        await self._step(job, "checked_in", summary)
        return {"checkin": summary, "comment": comment}

    async def _step(self, job: Job, name: str, value: Any) -> None:
        await self.storage.record_step(job.id, worker_id=self.worker_id, name=name, value=value)


@asynccontextmanager
async def open_worker(
    settings: Settings, storage: Storage, registry: Registry, **overrides: Any
) -> AsyncIterator[Worker]:
    """A worker with its HTTP session and service processes, not yet running."""
    async with aiohttp.ClientSession() as session:
        pool = ServicePool(settings.worker_concurrency, memory_limit_mb=settings.memory_limit_mb)
        await pool.start()
        try:
            yield Worker(
                storage=storage,
                registry=registry,
                pool=pool,
                session=session,
                config=WorkerConfig.from_settings(settings),
                retry_policy=RetryPolicy(
                    base_seconds=settings.retry_base_seconds,
                    cap_seconds=settings.retry_cap_seconds,
                    outage_cap_seconds=settings.outage_probe_cap_seconds,
                ),
                **overrides,
            )
        finally:
            await pool.close()


@asynccontextmanager
async def running_worker(
    settings: Settings, storage: Storage, registry: Registry, **overrides: Any
) -> AsyncIterator[Worker]:
    """A worker working until the block ends; leaving the block drains it."""
    async with open_worker(settings, storage, registry, **overrides) as worker:
        task = asyncio.create_task(worker.run(), name="notifyd-worker")
        try:
            yield worker
        finally:
            await worker.stop()
            await task


class _ProgressReporter:
    """Shows the BIMserver user what the service does, on a RUNNING_SERVICE topic.

    Progress is a courtesy: a BIMserver that refuses it never fails the job."""

    def __init__(
        self, client: BimServerClient, job: Job, spec: ServiceSpec, interval: float
    ) -> None:
        self.client = client
        self.job = job
        self.spec = spec
        self.interval = interval
        self.topic: int | None = None
        self.started_ms = int(time.time() * 1000)
        self._last = time.monotonic()

    async def start(self) -> None:
        n = self.job.notification
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


def _outcome_not_recorded(exc: StorageError) -> None:
    """The job stays as the database has it; if this worker still holds it, its lease runs
    out and the job is reclaimed and run again, so nothing is lost."""
    log.warning("job_outcome_not_recorded", error=exc.message)


def _failure_message(exc: BaseException) -> str:
    """What the job's history, the log and BIMserver's progress topic say; never a secret."""
    if isinstance(exc, JobFailure | JobCancelled):
        return scrub_text(exc.message)
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return scrub_text(f"{type(exc).__name__}: {exc}")
