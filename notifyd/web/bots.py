"""The BIM-bots routes: the service list, the OAuth 2.0 provider and the resource URLs."""

from __future__ import annotations

from aiohttp import web

from notifyd.bots.servicelist import service_list
from notifyd.web.forwarded import public_settings
from notifyd.web.keys import REGISTRY


async def handle_servicelist(request: web.Request) -> web.Response:
    listing = service_list(request.app[REGISTRY], public_settings(request))
    return web.json_response(text=listing.model_dump_json())


def add_routes(app: web.Application, base_path: str) -> None:
    app.router.add_get(f"{base_path}/servicelist", handle_servicelist)
