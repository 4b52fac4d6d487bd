"""The baseline: an aiohttp handler that parses the same JSON and answers the same reply,
storing nothing. Run as ``python benchmarks/bare_server.py PORT``."""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    assert "request" in body
    return web.json_response({"response": {"result": {}}})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/json", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
