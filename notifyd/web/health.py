"""``/healthz`` and ``/readyz``: what a supervisor, a load balancer and an admin ask.

``/healthz`` answers while the process can answer at all, and says "failing" with the
problems when notifyd cannot do its work (a database that cannot be written or read, a full
disk, a worker that keeps failing). ``/readyz`` says whether to send it work now: the
database takes writes, the worker's loop turns, and the daemon is not draining; Docker's
HEALTHCHECK and a load balancer use it. Both answer JSON with every reason.
"""

from __future__ import annotations

from aiohttp import web

from notifyd.web.keys import LIFECYCLE, STORAGE, WORKER


async def handle_health(request: web.Request) -> web.Response:
    """200 "ok", or 503 "failing" with the problems."""
    storage = request.app[STORAGE]
    problems = await storage.problems()
    worker = request.app.get(WORKER)
    if worker is not None:
        problems.extend(worker.problems())
    body: dict[str, object] = {"status": "failing" if problems else "ok"}
    try:
        counts = await storage.counts()
        body["jobs"] = {str(status): n for status, n in counts.items()}
    except Exception as exc:
        problems.append(f"the job database cannot be read: {exc}")
        body["status"] = "failing"
    if problems:
        body["problems"] = problems
    return web.json_response(body, status=503 if problems else 200)


async def handle_ready(request: web.Request) -> web.Response:
    """200 "ready", or 503 "not ready" with the reasons."""
    reasons = await request.app[STORAGE].problems()
    worker = request.app.get(WORKER)
    if worker is not None:
        reasons.extend(worker.problems())
        stale = worker.stale_for()
        if stale is not None:
            reasons.append(f"the worker's loop has not turned for {stale:.0f} s")
    if request.app[LIFECYCLE].draining:
        reasons.append("draining: notifyd is stopping")
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application, base_path: str) -> None:
    app.router.add_get(f"{base_path}/healthz", handle_health)
    app.router.add_get(f"{base_path}/readyz", handle_ready)
