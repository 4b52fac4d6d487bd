"""A third-party plugin on notifyd's hooks, for tests: a route, start-up and shutdown, and a
record of every job event; its job_event also raises once, to prove that cannot hurt a job."""

from __future__ import annotations

from aiohttp import web

from notifyd.hooks import JobEvent, hookimpl

SEEN: list[JobEvent] = []
LIFE: list[str] = []
_raised: list[bool] = []


@hookimpl
def register_routes(app: web.Application) -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"hello": "from a plugin"})

    app.router.add_get("/probe/hello", hello)


@hookimpl
async def startup(app: web.Application) -> None:
    LIFE.append("startup")


@hookimpl
def shutdown(app: web.Application) -> None:
    LIFE.append("shutdown")


@hookimpl
def job_event(event: JobEvent) -> None:
    SEEN.append(event)
    if not _raised:
        _raised.append(True)
        raise RuntimeError("a plugin's own bug")
