"""The accounts' web side (the JSON API, the account pages, the admin dashboard and their
stylesheet) as a plugin on notifyd's hooks, shipped and registered by default like the
metrics: the receiver and the worker know nothing of pages.

Charging is not a hook: a job must be refused before it is acknowledged when its account
cannot pay, and a hook only hears of what happened; the price is taken in the intake, the
one path every job enters through (``UserAccounts.admit`` and ``charge``)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from notifyd.hooks import hookimpl
from notifyd.web import admin, api, pages
from notifyd.web.keys import SETTINGS

STATIC = Path(__file__).parent / "static"


class AccountPlugin:
    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        base = app[SETTINGS].base_path
        app.add_subapp(f"{base}/api", api.api_app())
        pages.add_routes(app, base)
        admin.add_routes(app, base)
        app.router.add_static(f"{base}/static", STATIC)
