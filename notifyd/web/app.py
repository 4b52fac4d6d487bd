"""The application factory: routes and owned resources, no I/O until the app starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp_jinja2
import jinja2
from aiohttp import web

from notifyd.bots.oauth import OAuthProvider
from notifyd.config import Settings
from notifyd.hooks import Hooks
from notifyd.intake import Intake
from notifyd.job_events import JobEvents
from notifyd.services import Registry
from notifyd.storage import accounts_of, grants_of, open_storage
from notifyd.user_accounts import UserAccounts
from notifyd.web import bots, health, oauth, resources, rpc
from notifyd.web.account_plugin import AccountPlugin
from notifyd.web.body import BodyBudget, BodyLimits, expect_handler
from notifyd.web.keys import (
    BODY_BUDGET,
    BODY_LIMITS,
    GRANTS,
    HOOKS,
    INTAKE,
    JOB_EVENTS,
    LIFECYCLE,
    OAUTH,
    REGISTRY,
    SESSIONS,
    SETTINGS,
    STORAGE,
    USER_ACCOUNTS,
    WORKER,
)
from notifyd.web.lifecycle import Lifecycle
from notifyd.web.metrics import PrometheusMetrics
from notifyd.web.middlewares import request_middleware
from notifyd.web.sessions import Sessions, load_secret
from notifyd.worker import running_worker


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_storage(app[SETTINGS]) as storage:
        app[STORAGE] = storage
        app[GRANTS] = grants_of(storage)
        app[USER_ACCOUNTS] = UserAccounts(
            grants=app[GRANTS],
            store=accounts_of(storage),
            registry=app[REGISTRY],
            settings=app[SETTINGS],
        )
        app[INTAKE] = Intake(
            storage=storage,
            registry=app[REGISTRY],
            settings=app[SETTINGS],
            hooks=app[HOOKS],
            accounts=app[USER_ACCOUNTS],
        )
        app[SESSIONS] = Sessions(await asyncio.to_thread(load_secret, app[SETTINGS].data_dir))
        app[OAUTH] = OAuthProvider(
            store=app[GRANTS], registry=app[REGISTRY], settings=app[SETTINGS]
        )
        yield


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    async with running_worker(
        app[SETTINGS], app[STORAGE], app[REGISTRY], app[HOOKS], events=app[JOB_EVENTS]
    ) as worker:
        app[WORKER] = worker
        app[INTAKE].wake_with(worker.wake)
        try:
            yield
        finally:
            app[INTAKE].wake_with(None)


async def _plugins_started(app: web.Application) -> None:
    await app[HOOKS].startup(app)


async def _plugins_stopped(app: web.Application) -> None:
    await app[HOOKS].shutdown(app)


def create_app(
    settings: Settings, registry: Registry, hooks: Hooks | None = None
) -> web.Application:
    """``hooks``: the plugins loaded with the registry; none given, only notifyd's own (the
    metrics, unless disabled) take part."""
    # aiohttp's own limit stays above ours so that our handler can answer oversized
    # bodies with BIMserver's JSON error instead of aiohttp's plain 413 (see web.body).
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=settings.max_body_bytes * 2,
    )
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    hooks = hooks or Hooks()
    if settings.metrics_enabled:
        hooks.register(PrometheusMetrics(), "notifyd.metrics")
    hooks.register(AccountPlugin(), "notifyd.accounts")
    app[HOOKS] = hooks
    app[JOB_EVENTS] = JobEvents()
    app.cleanup_ctx.append(storage_ctx)
    if settings.run_worker:
        app.cleanup_ctx.append(worker_ctx)
    app[BODY_LIMITS] = BodyLimits(
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        idle_seconds=settings.body_idle_seconds,
    )
    app[BODY_BUDGET] = BodyBudget(settings.body_budget_bytes)
    expect = expect_handler(settings.max_body_bytes)
    app.router.add_post(f"{settings.endpoint_prefix}/json", rpc.handle_json, expect_handler=expect)
    # BIMserver posts to the service URL as the user typed it + "/json": a URL typed with a
    # trailing slash arrives as ".../" + "/json" (NotificationsManager.getChannel).
    app.router.add_post(f"{settings.endpoint_prefix}//json", rpc.handle_json, expect_handler=expect)
    app[LIFECYCLE] = Lifecycle()
    health.add_routes(app, settings.base_path)
    bots.add_routes(app, settings.base_path)
    oauth.add_routes(app, settings.base_path)
    resources.add_routes(app, settings.base_path, settings.bots_max_upload_bytes)
    app.router.add_post(
        f"{settings.base_path}/platforms/{{platform}}/json",
        rpc.handle_platform_json,
        expect_handler=expect,
    )
    hooks.register_routes(app)
    # After the database and the worker started (cleanup contexts run first), and after the
    # worker drained.
    app.on_startup.append(_plugins_started)
    app.on_cleanup.append(_plugins_stopped)
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("notifyd.web", "templates"), autoescape=True
    )
    return app
