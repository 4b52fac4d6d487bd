"""The worker loop: claim jobs, hold their leases, record how each ended, drain on stop.

It runs jobs without knowing what they do (``pipeline.py`` does the work). Claims carry
leases that a heartbeat extends while the job runs; a job whose lease runs out (its worker
died or hung) is reclaimed at start-up and periodically, so no job stays ``running``.
Outcomes are persisted under ``asyncio.shield`` so a shutdown cannot lose them. ``stop()``
drains: no new claims, running jobs get a grace period, then go back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from notifyd.config import Settings
from notifyd.errors import BimServerDown, BimServerUnavailable, JobCancelled, StorageError
from notifyd.hooks import Hooks, JobEventKind, job_event
from notifyd.job_events import JobEvents
from notifyd.logs import describe_failure, scrub_text
from notifyd.records import Job, JobResult, JobStatus
from notifyd.retry import RetryPolicy
from notifyd.storage.base import Storage
from notifyd.worker.pipeline import Pipeline, with_totals

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
            outage_patience_seconds=settings.outage_patience_seconds,
            token_retention_seconds=settings.token_retention_seconds,
        )


class Worker:
    def __init__(
        self,
        *,
        storage: Storage,
        pipeline: Pipeline,
        config: WorkerConfig,
        retry_policy: RetryPolicy | None = None,
        worker_id: str | None = None,
        events: JobEvents | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.storage = storage
        self.hooks = hooks
        self.pipeline = pipeline
        self.config = config
        self.retry_policy = retry_policy or RetryPolicy(rng=random.Random())
        self.events = events or JobEvents()
        self.worker_id = worker_id or make_worker_id()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._down: set[str] = set()  # BIMservers this worker saw down
        self._idle_claim = False  # the last claim found nothing, and no job ended since
        self._loop_failures = 0
        self._loop_error = ""
        self._last_turn = time.monotonic()

    def wake(self) -> None:
        """A job was enqueued in this process: claim now instead of at the next poll."""
        self._wakeup.set()

    def problems(self) -> list[str]:
        """Why the worker is not working, for /healthz: it failed three times in a row."""
        if self._loop_failures < 3:
            return []
        return [f"the worker failed {self._loop_failures} times in a row: {self._loop_error}"]

    def stale_for(self) -> float | None:
        """Seconds since the loop last turned, when that is far longer than it waits between
        turns (the loop is stuck, e.g. on a database call that never returns); else None."""
        age = time.monotonic() - self._last_turn
        return age if age > max(10.0, 5 * self.config.poll_seconds) else None

    @property
    def running_jobs(self) -> list[int]:
        return list(self._running)

    async def run(self, *, until_empty: bool = False) -> None:
        """Work until ``stop()``; with ``until_empty``, until nothing is queued or running."""
        log.info("worker_started", worker_id=self.worker_id, concurrency=self.config.concurrency)
        await self.reclaim()
        last_reclaim = time.monotonic()
        while not self._stopping.is_set():
            self._last_turn = time.monotonic()
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
        now = time.time()
        for job in claimed:
            self._announce(JobEventKind.CLAIMED, job, waited_seconds=max(0.0, now - job.run_after))
            task = asyncio.create_task(self._process(job), name=f"job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._finished, job.id))
        return claimed

    def _finished(self, job_id: int, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self.events.ended(job_id)
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
        swept = await self.pipeline.sweep()
        if swept:
            log.info("job_files_swept", removed=swept)

    # -- one job -----------------------------------------------------------------------

    async def _process(self, job: Job) -> None:
        structlog.contextvars.bind_contextvars(**job.log_context())
        started = time.monotonic()
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job, cancelled))
        try:
            log.info("job_started")
            result = await self.pipeline.run(job, cancelled, functools.partial(self._step, job))
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job))
            raise
        except Exception as exc:
            await asyncio.shield(self._record_failure(job, exc, started))
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

    async def _complete(self, job: Job, result: JobResult, started: float) -> None:
        if job.server is not None:
            with contextlib.suppress(StorageError):
                await self._server_answered(job.server)
        result = with_totals(
            result,
            total_ms=round((time.monotonic() - started) * 1000, 2),
            since_arrival_ms=round((time.time() - job.created_at) * 1000, 2),
        )
        try:
            await self.storage.complete(job.id, worker_id=self.worker_id, result=result)
        except StorageError as exc:  # InvalidTransition: the lease was lost meanwhile
            _outcome_not_recorded(exc)
            return
        log.info("job_succeeded", **result.to_record())
        self._announce(JobEventKind.SUCCEEDED, job, took_seconds=time.monotonic() - started)

    async def _record_failure(self, job: Job, exc: BaseException, started: float) -> None:
        server = job.server
        message = describe_failure(exc)
        spend_attempt = True
        try:
            if isinstance(exc, BimServerDown) and server is not None:
                # Wait for BIMserver without spending attempts, and pause its other jobs.
                outage = await self.storage.pause_server(
                    server, error=message, pause=self.retry_policy.outage_pause
                )
                self._down.add(server)
                retry_at: float | None = outage.paused_until
                spend_attempt = (
                    time.time() - outage.down_since > self.config.outage_patience_seconds
                )
            else:
                if server is not None and not isinstance(exc, BimServerUnavailable):
                    await self._server_answered(server)
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
        self._announce(
            _ENDED_AS.get(updated.status, JobEventKind.FAILED),
            job,
            took_seconds=time.monotonic() - started,
            error=message,
        )
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

    def _announce(self, kind: JobEventKind, job: Job, **fields: Any) -> None:
        if self.hooks is not None:
            self.hooks.job_event(job_event(kind, job, **fields))

    async def _release(self, job: Job) -> None:
        try:
            await self.storage.release(job.id, worker_id=self.worker_id)
        except StorageError as exc:
            _outcome_not_recorded(exc)
            return
        log.info("job_released")

    async def _step(self, job: Job, name: str, value: Any) -> None:
        await self.storage.record_step(job.id, worker_id=self.worker_id, name=name, value=value)


_ENDED_AS = {JobStatus.DEAD: JobEventKind.DEAD, JobStatus.CANCELLED: JobEventKind.CANCELLED}


def _outcome_not_recorded(exc: StorageError) -> None:
    """The job stays as the database has it; if this worker still holds it, its lease runs
    out and the job is reclaimed and run again, so nothing is lost."""
    log.warning("job_outcome_not_recorded", error=exc.message)
