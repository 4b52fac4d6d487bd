"""The job state rules: what a success, a failure, a release on shutdown, an expired lease, a
retry or a cancel does to a job, decided once for every storage backend.

Each rule reads the job as stored and returns a ``Transition``; a backend applies it inside
its own transaction, with the attempt's outcome, and knows nothing of why.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifyd.errors import InvalidTransition
from notifyd.records import AttemptOutcome, Job, JobResult, JobStatus, Notification

RELEASED = "released on shutdown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    status: JobStatus
    outcome: AttemptOutcome | None = None  # how the running attempt ended, if one did
    attempt_error: str | None = None  # what that attempt's record says
    last_error: str | None = None  # the job's last error; None leaves it as it is
    run_after: float | None = None  # when a queued job is due; None leaves it
    max_attempts: int | None = None  # a new limit; None leaves it
    result: JobResult | None = None
    drops_worker: bool = False  # back to the queue: no lease, no worker
    ended: bool = False  # finished now: no lease
    erases_tokens: bool = False  # the BIMserver credentials go with the end
    reopened: bool = False  # an ended job queued again: not finished, no cancel request
    cancel_requested: bool = False  # a running job is asked to stop; it stays running


def check_held(job: Job, worker_id: str) -> Job:
    """A worker may end only a job it still holds (its lease may have run out meanwhile)."""
    if job.status is not JobStatus.RUNNING or job.worker_id != worker_id:
        raise InvalidTransition(
            f"worker {worker_id} no longer holds job {job.id} (it is {job.status}"
            f"{', held by ' + job.worker_id if job.worker_id else ''})"
        )
    return job


def _ended(
    status: JobStatus, outcome: AttemptOutcome, error: str, *, erases_tokens: bool
) -> Transition:
    """An attempt that ends the job (cancelled or dead), its error recorded on both."""
    return Transition(
        status=status,
        outcome=outcome,
        attempt_error=error,
        last_error=error,
        ended=True,
        erases_tokens=erases_tokens,
    )


def succeeded(result: JobResult | None) -> Transition:
    return Transition(
        status=JobStatus.SUCCEEDED,
        outcome=AttemptOutcome.SUCCEEDED,
        result=result,
        ended=True,
        erases_tokens=True,
    )


def failed(job: Job, error: str, *, retry_at: float | None, spend_attempt: bool) -> Transition:
    """``retry_at`` None: the failure is permanent. An attempt not spent (BIMserver was down)
    raises the job's limit by one instead."""
    if job.cancel_requested:
        return _ended(JobStatus.CANCELLED, AttemptOutcome.CANCELLED, error, erases_tokens=True)
    max_attempts = job.max_attempts if spend_attempt else job.max_attempts + 1
    if retry_at is None or job.attempts >= max_attempts:
        # A job out of attempts, each of which could have succeeded, keeps its tokens for the
        # retention window so that `notifyd jobs retry` can run it again.
        return _ended(JobStatus.DEAD, AttemptOutcome.DEAD, error, erases_tokens=retry_at is None)
    return Transition(
        status=JobStatus.QUEUED,
        outcome=AttemptOutcome.FAILED,
        attempt_error=error,
        last_error=error,
        max_attempts=max_attempts,
        run_after=retry_at,
        drops_worker=True,
    )


def released(job: Job, now: float) -> Transition:
    """Handed back on shutdown: not the job's fault, so the attempt is given back."""
    return Transition(
        status=JobStatus.QUEUED,
        outcome=AttemptOutcome.RELEASED,
        attempt_error=RELEASED,
        max_attempts=job.max_attempts + 1,
        run_after=now,
        drops_worker=True,
    )


def lease_expired(job: Job, now: float) -> Transition:
    error = f"lease expired: worker {job.worker_id} stopped answering"
    if job.cancel_requested:
        return _ended(JobStatus.CANCELLED, AttemptOutcome.LEASE_EXPIRED, error, erases_tokens=True)
    if job.attempts >= job.max_attempts:
        return _ended(JobStatus.DEAD, AttemptOutcome.LEASE_EXPIRED, error, erases_tokens=False)
    return Transition(
        status=JobStatus.QUEUED,
        outcome=AttemptOutcome.LEASE_EXPIRED,
        attempt_error=error,
        last_error=error,
        run_after=now,
        drops_worker=True,
    )


def retried(job: Job, now: float, attempts: int) -> Transition:
    """``notifyd jobs retry``: a queued job is due now; a dead or cancelled one gets
    ``attempts`` more, if it still holds what it needs to run."""
    if job.status is JobStatus.QUEUED:
        return Transition(status=JobStatus.QUEUED, run_after=now)
    if job.status not in (JobStatus.DEAD, JobStatus.CANCELLED):
        raise InvalidTransition(
            f"job {job.id} is {job.status}; only queued, dead or cancelled jobs can be retried"
        )
    if isinstance(job.origin, Notification) and job.origin.token is None:
        raise InvalidTransition(
            f"job {job.id} no longer holds a BIMserver token (tokens are erased when a "
            "job succeeds, fails for good or is cancelled, and token_retention_seconds "
            "after it runs out of attempts); trigger the service again from BIMserver"
        )
    return Transition(
        status=JobStatus.QUEUED,
        max_attempts=job.attempts + attempts,
        run_after=now,
        reopened=True,
    )


def cancelled(job: Job) -> Transition:
    """A queued job ends at once; a running one is asked to stop at its next heartbeat."""
    if job.status is JobStatus.QUEUED:
        return Transition(
            status=JobStatus.CANCELLED, last_error="cancelled", ended=True, erases_tokens=True
        )
    if job.status is JobStatus.RUNNING:
        return Transition(status=JobStatus.RUNNING, cancel_requested=True)
    raise InvalidTransition(f"job {job.id} is already {job.status}")
