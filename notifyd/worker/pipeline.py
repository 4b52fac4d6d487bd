"""One job's work, whatever brought it: fetch the input, run the service, deliver the output.

The loop (``loop.py``) claims, leases, retries and records outcomes without knowing any of
this. The pipeline knows the service and the process it runs in; where the model comes from
and where the result goes it asks the job's binding: for a BIMserver notification, a revision
to download and a write-back (``bimserver_binding.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import BaseModel, ValidationError

from notifyd.errors import PermanentError, ProtocolError
from notifyd.logs import describe_failure
from notifyd.records import Delivery, Job, JobResult, Notification, Timings
from notifyd.runner import ServicePool, Ticket
from notifyd.services import Registry, ServiceContext, ServiceOutput, ServiceSpec
from notifyd.storage.base import AccountStore
from notifyd.user_accounts import PRIVATE_PREFIX

log = structlog.get_logger("notifyd.worker")

RecordStep = Callable[[str, Any], Awaitable[None]]
"""Records one write-back step in the job under the worker's lease, before the next step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """What the service reads, fetched into the job's work folder."""

    model_path: Path | None
    schema: str | None
    extended_data_path: Path | None
    poid: int | None = None
    roid: int | None = None
    soid: int | None = None


class Source(Protocol):
    """Where a job's model comes from."""

    async def skip_reason(self) -> str | None:
        """Why the service must not run for this job at all, or None."""

    async def fetch(self, work_dir: Path) -> Inputs: ...


class Sink(Protocol):
    """Where a job's result goes."""

    async def deliver(self, output: ServiceOutput, took_ms: int) -> Delivery: ...


class Progress(Protocol):
    """Tells whoever waits for the job how far the service is; never fails the job."""

    async def start(self) -> None: ...

    async def report(self, percent: int, message: str = "") -> None: ...

    async def finish(self, error: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Binding:
    source: Source
    sink: Sink
    progress: Progress


class Bindings(Protocol):
    """Chooses a job's source, sink and progress by what brought it."""

    async def bind(self, job: Job, spec: ServiceSpec, record_step: RecordStep) -> Binding: ...

    def failed(self, job: Job) -> None:
        """The job failed: forget what was learnt about where it came from."""

    async def sweep(self) -> int:
        """Remove what jobs left behind past its retention; how many things."""


class BindingsByOrigin:
    """Each job to the bindings of what brought it: a notification or an upload."""

    def __init__(self, *, notifications: Bindings, uploads: Bindings) -> None:
        self.notifications = notifications
        self.uploads = uploads

    def _of(self, job: Job) -> Bindings:
        return self.notifications if isinstance(job.origin, Notification) else self.uploads

    async def bind(self, job: Job, spec: ServiceSpec, record_step: RecordStep) -> Binding:
        return await self._of(job).bind(job, spec, record_step)

    def failed(self, job: Job) -> None:
        self._of(job).failed(job)

    async def sweep(self) -> int:
        return await self.notifications.sweep() + await self.uploads.sweep()


class Pipeline:
    def __init__(
        self,
        *,
        registry: Registry,
        pool: ServicePool,
        bindings: Bindings,
        work_dir: Path,
        accounts: AccountStore | None = None,
    ) -> None:
        """``accounts``: where a job's private profile is read, at run time (so an edit made
        while the job waited counts)."""
        self.registry = registry
        self.pool = pool
        self.bindings = bindings
        self.work_dir = work_dir
        self.accounts = accounts

    async def sweep(self) -> int:
        """Leftover files of ended jobs; and the charges of jobs that died, refunded (here, on
        the worker's maintenance round, so that a refund survives any crash: it is derived
        from the job's state, not from a moment)."""
        if self.accounts is not None:
            refunded = await self.accounts.refund_dead(time.time())
            if refunded:
                log.info("dead_jobs_refunded", jobs=refunded)
        return await self.bindings.sweep()

    async def _settings(self, job: Job, spec: ServiceSpec) -> BaseModel:
        """A public profile's settings, or the job's account's private profile, validated
        again by the service's settings model."""
        if not job.profile.startswith(PRIVATE_PREFIX):
            return self.registry.profile(job.service, job.profile).settings
        own = job.profile.removeprefix(PRIVATE_PREFIX)
        if self.accounts is None or job.account is None:
            raise PermanentError(f"job {job.id} asks for a private profile without an account")
        found = await self.accounts.private_profile(job.account, job.service, own)
        if found is None:
            raise PermanentError(
                f"the private profile {own!r} of {job.account} for {job.service} was deleted"
            )
        try:
            return spec.settings.model_validate(found.settings)
        except ValidationError as exc:
            raise PermanentError(f"the private profile {own!r} no longer fits: {exc}") from None

    async def run(self, job: Job, cancelled: asyncio.Event, record_step: RecordStep) -> JobResult:
        try:
            return await self._run(job, cancelled, record_step)
        except BaseException:
            self.bindings.failed(job)
            raise

    async def _run(self, job: Job, cancelled: asyncio.Event, record_step: RecordStep) -> JobResult:
        try:
            spec = self.registry.service(job.service)
            settings = await self._settings(job, spec)
        except ProtocolError as exc:
            raise PermanentError(f"{exc.message} (it was declared when the job arrived)") from exc
        if spec.handler_ref is None:
            raise PermanentError(f"service {spec.identifier} is declared without a handler")
        binding = await self.bindings.bind(job, spec, record_step)
        skipped = await binding.source.skip_reason()
        if skipped is not None:
            log.info("job_skipped", reason=skipped)
            return JobResult(skipped=skipped)
        work_dir = self.work_dir / f"job-{job.id}-{job.attempts}"
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        clock = time.monotonic()
        # Progress is opened while the input is fetched: it is a courtesy to the user and must
        # not add its round trips to every job's latency.
        starting = asyncio.create_task(binding.progress.start())
        try:
            inputs = await binding.source.fetch(work_dir)
            fetched = time.monotonic()
            await starting
            context = ServiceContext(
                model_path=inputs.model_path,
                schema=inputs.schema,
                extended_data_path=inputs.extended_data_path,
                work_dir=work_dir,
                poid=inputs.poid,
                roid=inputs.roid,
                soid=inputs.soid,
                job_id=job.id,
                attempt=job.attempts,
                service=spec.identifier,
                profile=job.profile,
                settings=settings,
            )
            output = await self.pool.run(
                Ticket(spec.handler_ref, context),
                timeout=spec.timeout_seconds,
                on_progress=binding.progress.report,
                cancelled=cancelled,
            )
            ran = time.monotonic()
            delivery = await binding.sink.deliver(output, int((ran - fetched) * 1000))
            result = JobResult(
                delivery=delivery,
                timings=Timings(
                    download=round((fetched - clock) * 1000, 2),
                    service=round((ran - fetched) * 1000, 2),
                    write_back=round((time.monotonic() - ran) * 1000, 2),
                ),
            )
        except BaseException as exc:
            await asyncio.gather(starting, return_exceptions=True)
            await binding.progress.finish(error=describe_failure(exc))
            raise
        else:
            await binding.progress.finish()
            return result
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, True)


def with_totals(result: JobResult, *, total_ms: float, since_arrival_ms: float) -> JobResult:
    return replace(
        result, timings=replace(result.timings, total=total_ms, since_arrival=since_arrival_ms)
    )
