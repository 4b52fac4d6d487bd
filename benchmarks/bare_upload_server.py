"""The baseline for uploads: an aiohttp handler that streams the body to a file and fsyncs it,
as notifyd does, and stores nothing else. Run as ``python benchmarks/bare_upload_server.py
PORT FOLDER``."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    path = Path(sys.argv[2]) / uuid.uuid4().hex
    size = 0
    with path.open("wb") as file:
        while chunk := await request.content.readany():
            file.write(chunk)
            size += len(chunk)
        file.flush()
        os.fsync(file.fileno())
    path.unlink()
    return web.json_response({"bytes": size})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/upload", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
