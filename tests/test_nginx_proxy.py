"""The shipped nginx config, run for real in front of ``notifyd serve``: BIMserver's calls,
the bots service list, OAuth and an upload go through it, and every URL notifyd hands out
is the public one; the same headers from a client that is not the proxy change nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from notifyd.records import Dialect
from tests.bots_client import access_token, run
from tests.conftest import PROJECT_ROOT, require_program
from tests.daemon import Daemon, free_port
from tests.factories import make_envelope
from tests.ifc_factory import build_model

pytestmark = pytest.mark.slow


@dataclass
class Proxied:
    daemon: Daemon
    public: str  # what a user types: nginx's address and the /notifyd prefix


def render_config(listen: int, upstream: int, temp: Path) -> str:
    """The shipped upstream and server blocks with the lines they say to adapt changed,
    inside the smallest top-level config that runs nginx in the foreground."""
    folder = PROJECT_ROOT / "config" / "nginx"
    upstream_block = (folder / "upstream.conf").read_text()
    server = (folder / "notifyd.conf").read_text()
    upstream_block = upstream_block.replace(
        "server 127.0.0.1:8089;", f"server 127.0.0.1:{upstream};"
    )
    server = server.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    assert f"listen 127.0.0.1:{listen};" in server
    assert f"server 127.0.0.1:{upstream};" in upstream_block
    temps = "\n".join(
        f"    {name}_temp_path {temp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\npid {temp / 'nginx.pid'};\nerror_log {temp / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {temp / 'access.log'};\n{temps}\n{upstream_block}\n{server}\n}}\n"
    )


def _wait_until_answered(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not answer {url}")
        time.sleep(0.05)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    nginx = require_program("nginx", "nginx")
    daemon = Daemon(
        tmp_path / "data",
        env={"NOTIFYD_TRUSTED_PROXIES": "127.0.0.1/32", "NOTIFYD_RUN_WORKER": "true"},
    )
    daemon.spawn()
    assert daemon.process is not None
    listen = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(render_config(listen, daemon.port, tmp_path))
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    public = f"http://127.0.0.1:{listen}/notifyd"
    try:
        _wait_until_answered(f"{daemon.url}/healthz", daemon.process, "notifyd")
        _wait_until_answered(f"{public}/healthz", process, "nginx")
        yield Proxied(daemon=daemon, public=public)
    finally:
        process.terminate()
        process.wait(10)
        daemon.stop()


async def _json(url: str, body: Any, **session_options: Any) -> Any:
    async with (
        aiohttp.ClientSession(**session_options) as session,
        session.post(f"{url}/json", json=body) as response,
    ):
        assert response.status == 200
        return await response.json()


async def test_get_service_through_nginx_gives_the_public_urls(proxied: Proxied) -> None:
    body = make_envelope("getService", parameters={"serviceIdentifier": "ifc-summary"})
    descriptor = (await _json(proxied.public, body))["response"]["result"]
    assert descriptor["url"] == proxied.public
    for key in ("tokenUrl", "registerUrl", "authorizeUrl", "newProfileUrl"):
        assert descriptor[key].startswith(f"{proxied.public}/"), (key, descriptor[key])
    listing = (await run(requests.get, f"{proxied.public}/servicelist", timeout=10)).json()
    for entry in listing["services"]:
        assert entry["resourceUrl"].startswith(f"{proxied.public}/services/")
        assert entry["oauth"]["tokenUrl"] == f"{proxied.public}/oauth/access"


async def test_a_notification_through_nginx_is_stored_and_run(proxied: Proxied) -> None:
    body = make_envelope("newRevision", Dialect.BIMSERVER_15, poid=7, roid=70)
    assert (await _json(proxied.public, body)) == {"response": {"result": {}}}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxied.daemon.url}/healthz") as response,
    ):
        jobs = (await response.json())["jobs"]
    assert sum(jobs.values()) == 1


async def test_forwarded_headers_straight_to_notifyd_change_nothing(proxied: Proxied) -> None:
    """A client on another address (127.0.0.3: not nginx's) sends the proxy's headers."""
    body = make_envelope("getService", parameters={"serviceIdentifier": "ifc-summary"})
    forged = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Prefix": "/phish",
        "Forwarded": "proto=https;host=evil.example",
    }
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
    descriptor = (await _json(proxied.daemon.url, body, connector=connector, headers=forged))[
        "response"
    ]["result"]
    assert "evil.example" not in str(descriptor)
    # Through nginx, a client's own Forwarded header is dropped by the proxy.
    through = await _json(proxied.public, body, headers={"Forwarded": "host=evil.example"})
    assert through["response"]["result"]["url"] == proxied.public


async def test_a_model_posted_through_nginx_comes_back_with_a_public_location(
    proxied: Proxied, tmp_path: Path
) -> None:
    token = await run(access_token, proxied.public)
    model = build_model(tmp_path / "model.ifc").read_bytes()
    answer = await run(
        requests.post,
        f"{proxied.public}/services/ifc-summary",
        data=model,
        headers={
            "Authorization": f"Bearer {token}",
            "Input-Type": "IFC_STEP_4",
            "Output-Type": "IFC_ANALYTICS_JSON_1_0",
            "Accept-Flow": "ASYNC",
        },
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    location = answer.headers["Location"]
    assert location.startswith(f"{proxied.public}/bots/jobs/")
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(300):
        state = (await run(requests.get, location, headers=auth, timeout=10)).json()
        if state["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert state["resultUrl"] == f"{location}/result"
    result = await run(requests.get, state["resultUrl"], headers=auth, timeout=10)
    assert result.json()["elementCounts"]["IfcWall"] == 3
