"""The admin dashboard (``/admin``, for accounts made admins with ``notifyd accounts
add-admin``): the queue at a glance, jobs with filters, a job's attempts, progress, result and
log lines, retry, cancel and replay of dead jobs, services and profiles, accounts and their
balance. The same operations as ``notifyd jobs``, through the same storage calls."""

from __future__ import annotations

import json

from aiohttp import web

from notifyd.errors import NotifydError
from notifyd.grants import Account
from notifyd.logs import JOB_LINES
from notifyd.records import Job, JobMatch, JobStatus, Notification
from notifyd.web.keys import SETTINGS, STORAGE, USER_ACCOUNTS
from notifyd.web.pages import form_of, redirect_to, render, require, when

_LISTED = 200  # jobs read for the dashboard's table, newest first
_SHOWN_FIELDS = ("event", "level", "timestamp", "job_id", "request_id")


async def require_admin(request: web.Request) -> Account:
    account = await require(request)
    if not account.is_admin:
        raise web.HTTPForbidden(
            text="this page is for administrators (notifyd accounts add-admin EMAIL)"
        )
    return account


def _project(job: Job) -> str:
    return str(job.origin.poid) if isinstance(job.origin, Notification) else "upload"


def _match(filters: dict[str, str]) -> JobMatch | None:
    """The page's filters as the storage's; None when a project is neither a number nor
    "upload" (no job matches it)."""
    project = filters["project"]
    if project and project != "upload" and not project.isdigit():
        return None
    return JobMatch(
        service=filters["service"] or None,
        account=filters["account"] or None,
        poid=int(project) if project.isdigit() else None,
        uploads=project == "upload",
    )


async def dashboard(request: web.Request) -> web.Response:
    await require_admin(request)
    storage = request.app[STORAGE]
    accounts = request.app[USER_ACCOUNTS]
    filters = {
        k: request.query.get(k, "").strip() for k in ("state", "service", "project", "account")
    }
    try:
        status = JobStatus(filters["state"]) if filters["state"] else None
    except ValueError:
        status = None
    match = _match(filters)
    jobs = (
        await storage.list_jobs(status=status, limit=_LISTED, match=match)
        if match is not None
        else []
    )
    counts = await storage.counts()
    queued = counts[JobStatus.QUEUED]
    # Newest first: the oldest waiting job is the last one, however long the queue.
    last = (
        await storage.list_jobs(status=JobStatus.QUEUED, limit=1, offset=queued - 1)
        if queued
        else []
    )
    oldest = last[0].created_at if last else None
    registry = accounts.registry
    prices = request.app[SETTINGS].prices
    context = {
        "counts": [(str(state), counts[state]) for state in JobStatus],
        "oldest": when(oldest),
        "filters": filters,
        "services": sorted(registry.services),
        "jobs": [
            {
                "id": j.id,
                "status": str(j.status),
                "service": j.service,
                "project": _project(j),
                "account": j.account,
                "attempts": j.attempts,
                "max_attempts": j.max_attempts,
                "arrived": when(j.created_at),
                "last_error": (j.last_error or "")[:160],
            }
            for j in jobs
        ],
        "dead": counts[JobStatus.DEAD],
        "listed": _LISTED,
        "service_rows": [
            {
                "identifier": spec.identifier,
                "name": spec.name,
                "profiles": ", ".join(
                    p.identifier for p in registry.public_profiles(spec.identifier)
                ),
                "price": prices.get(spec.identifier, 0) or "free",
            }
            for spec in registry.services.values()
        ],
        "accounts": [
            {
                "name": a.name,
                "email": a.email,
                "role": "admin" if a.is_admin else "user",
                "balance": balance,
            }
            for a, balance in await accounts.store.accounts()
        ],
    }
    return await render(request, "admin.html", context)


async def job_page(request: web.Request) -> web.Response:
    await require_admin(request)
    storage = request.app[STORAGE]
    job = await _job(request)
    attempts = [
        {
            "number": a.number,
            "worker": a.worker_id,
            "outcome": str(a.outcome),
            "started": when(a.started_at),
            "took": f"{(a.finished_at - a.started_at):.2f} s" if a.finished_at else "running",
            "error": a.error,
        }
        for a in await storage.attempts(job.id)
    ]
    facts = [
        ("service", job.service),
        ("profile", job.profile),
        ("project", _project(job)),
        ("account", job.account or ""),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("arrived", when(job.created_at)),
        ("finished", when(job.finished_at)),
        ("last error", job.last_error or ""),
    ]
    lines = [
        {
            "timestamp": line.get("timestamp", ""),
            "level": line.get("level", ""),
            "event": line.get("event", ""),
            "details": json.dumps(
                {k: v for k, v in line.items() if k not in _SHOWN_FIELDS}, default=str
            )[:300],
        }
        for line in JOB_LINES.of(job.id)
    ]
    context = {
        "job": {"id": job.id, "status": str(job.status)},
        "facts": facts,
        "attempts": attempts,
        "steps": json.dumps(job.steps, indent=2, default=str),
        "result": json.dumps(job.result.to_record(), indent=2) if job.result else "",
        "lines": lines,
        "per_job": JOB_LINES.per_job,
        "can_retry": job.status in (JobStatus.QUEUED, JobStatus.DEAD, JobStatus.CANCELLED),
        "can_cancel": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
    }
    return await render(request, "admin_job.html", context)


async def _job(request: web.Request) -> Job:
    try:
        return await request.app[STORAGE].get(int(request.match_info["id"]))
    except (ValueError, NotifydError):
        raise web.HTTPNotFound(text=f"no job {request.match_info['id']}") from None


async def job_action(request: web.Request) -> web.StreamResponse:
    """POST /admin/jobs/{id}/retry or /cancel: the same storage calls as ``notifyd jobs``."""
    await require_admin(request)
    await form_of(request)
    job = await _job(request)
    storage = request.app[STORAGE]
    act = storage.retry if request.match_info["action"] == "retry" else storage.cancel
    try:
        await act(job.id)
    except NotifydError as exc:
        raise web.HTTPConflict(text=exc.message) from None
    raise redirect_to(request, f"/admin/jobs/{job.id}")


async def replay_dead(request: web.Request) -> web.StreamResponse:
    await require_admin(request)
    await form_of(request)
    await request.app[STORAGE].retry_dead()
    raise redirect_to(request, "/admin")


def add_routes(app: web.Application, base: str) -> None:
    app.router.add_get(f"{base}/admin", dashboard)
    app.router.add_get(f"{base}/admin/jobs/{{id}}", job_page)
    app.router.add_post(f"{base}/admin/jobs/{{id}}/{{action:retry|cancel}}", job_action)
    app.router.add_post(f"{base}/admin/dead/retry", replay_dead)
