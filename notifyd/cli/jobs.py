"""``notifyd jobs``: list, show, retry and cancel jobs in the configured database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from notifyd.cli.common import config_option, with_storage
from notifyd.config import Settings
from notifyd.records import Job, JobStatus, Notification


@click.group()
def jobs() -> None:
    """Inspect and manage jobs: list, show, retry, cancel."""


def _job_dict(job: Job) -> dict[str, Any]:
    origin = job.origin
    described: dict[str, Any] = {
        "id": job.id,
        "status": str(job.status),
        "service": job.service,
        "profile": job.profile,
    }
    if isinstance(origin, Notification):
        described.update(
            method=str(origin.kind),
            dialect=str(origin.dialect),
            poid=origin.poid,
            roid=origin.roid,
            edid=origin.edid,
            soid=origin.soid,
            apiUrl=origin.api_url,
        )
    else:
        described.update(
            method="upload",
            inputType=origin.input_type,
            outputType=origin.output_type,
            bytes=origin.size,
            account=origin.account,
            clientId=origin.client_id,
        )
    return described | {
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "runAfter": _iso(job.run_after),
        "leaseUntil": _iso(job.lease_until),
        "worker": job.worker_id,
        "cancelRequested": job.cancel_requested,
        "createdAt": _iso(job.created_at),
        "finishedAt": _iso(job.finished_at),
        "lastError": job.last_error,
        "result": job.result.to_record() if job.result else None,
        "steps": job.steps,
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@jobs.command("list")
@config_option
@click.option(
    "--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs in this status."
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def jobs_list(config_path: Path | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs first."""

    async def action(storage: Any, _settings: Settings) -> list[Any]:
        return await storage.list_jobs(status=JobStatus(status) if status else None, limit=limit)

    found = with_storage(config_path, action)
    if as_json:
        click.echo(json.dumps([_job_dict(j) for j in found], indent=2))
        return
    if not found:
        click.echo("no jobs")
    for job in found:
        n = job.notification
        error = f"  {job.last_error}" if job.last_error else ""
        click.echo(
            f"{job.id:>6}  {job.status:<9}  {n.service:<20} poid {n.poid} roid {n.roid}  "
            f"attempts {job.attempts}/{job.max_attempts}{error}"
        )


@jobs.command("show")
@config_option
@click.argument("job_id", type=int)
def jobs_show(config_path: Path | None, job_id: int) -> None:
    """One job with its whole attempt history, as JSON."""

    async def action(storage: Any, _settings: Settings) -> dict[str, Any]:
        job = await storage.get(job_id)
        attempts = await storage.attempts(job_id)
        return {
            **_job_dict(job),
            "history": [
                {
                    "attempt": a.number,
                    "worker": a.worker_id,
                    "outcome": str(a.outcome),
                    "startedAt": _iso(a.started_at),
                    "finishedAt": _iso(a.finished_at),
                    "error": a.error,
                }
                for a in attempts
            ],
        }

    click.echo(json.dumps(with_storage(config_path, action), indent=2))


@jobs.command("retry")
@config_option
@click.argument("job_id", type=int, required=False)
@click.option(
    "--dead", "all_dead", is_flag=True, help="Every dead job that still holds its tokens."
)
def jobs_retry(config_path: Path | None, job_id: int | None, all_dead: bool) -> None:
    """Run a waiting job now, or queue a dead or cancelled one again (JOB_ID), or every dead
    job that may be retried (--dead), each with max_attempts more attempts."""
    if (job_id is None) == (not all_dead):
        raise click.UsageError("give either a JOB_ID or --dead")

    async def action(storage: Any, settings: Settings) -> Any:
        if all_dead:
            return await storage.retry_dead(attempts=settings.max_attempts)
        return [await storage.retry(job_id, attempts=settings.max_attempts)]

    retried = with_storage(config_path, action)
    if all_dead:
        click.echo(
            f"{len(retried)} dead job(s) queued again"
            + (f": {', '.join(str(j.id) for j in retried)}" if retried else "")
            + " (dead jobs whose tokens were erased must be triggered again from BIMserver)"
        )
        return
    click.echo(f"job {retried[0].id} is {retried[0].status}")


@jobs.command("cancel")
@config_option
@click.argument("job_id", type=int)
def jobs_cancel(config_path: Path | None, job_id: int) -> None:
    """Cancel a queued job, or stop a running one (its worker kills the service)."""

    async def action(storage: Any, _settings: Settings) -> Any:
        return await storage.cancel(job_id)

    job = with_storage(config_path, action)
    if job.status is JobStatus.RUNNING:
        click.echo(f"job {job.id} is running; its worker will stop it at the next heartbeat")
    else:
        click.echo(f"job {job.id} is {job.status}")
