"""The Dockerfile and compose.yaml, read for what a careful operator checks (no Docker engine
runs on the build machines): a multi-stage build, a non-root user, the data folder on a
volume, a HEALTHCHECK on /readyz, and notifyd reachable only through the proxy, which it
trusts by a fixed address."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from pathlib import Path

import yaml

from notifyd.config import load_settings
from tests.conftest import PROJECT_ROOT


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


DOCKERFILE = instructions(PROJECT_ROOT / "Dockerfile")
FINAL_STAGE = DOCKERFILE[max(i for i, (keyword, _) in enumerate(DOCKERFILE) if keyword == "FROM") :]
IMAGE_SETTINGS = load_settings(PROJECT_ROOT / "config" / "docker.toml", environ={})


def _args(keyword: str) -> list[str]:
    return [rest for k, rest in FINAL_STAGE if k == keyword]


def test_the_image_is_built_in_one_stage_and_run_from_another() -> None:
    stages = [rest for keyword, rest in DOCKERFILE if keyword == "FROM"]
    assert len(stages) >= 2
    assert any("--from=build" in rest for keyword, rest in FINAL_STAGE if keyword == "COPY")
    # The runtime stage gets the built environment, not the sources or a compiler.
    assert not any(rest.startswith("notifyd ") for rest in _args("COPY"))


def test_the_daemon_runs_as_an_unprivileged_user() -> None:
    [user] = _args("USER")
    name = user.split(":")[0]
    assert name not in ("root", "0")
    assert any("useradd --system" in rest and name in rest for rest in _args("RUN"))


def test_the_database_lives_on_a_volume_owned_by_that_user() -> None:
    [volume] = _args("VOLUME")
    assert json.loads(volume) == [str(IMAGE_SETTINGS.data_dir)]
    assert any(
        f"-o notifyd -g notifyd -m 0700 {IMAGE_SETTINGS.data_dir}" in r for r in _args("RUN")
    )


def test_the_healthcheck_asks_readyz_on_the_port_the_config_listens_on() -> None:
    [check] = _args("HEALTHCHECK")
    assert f"http://127.0.0.1:{IMAGE_SETTINGS.port}/readyz" in check
    assert "--interval=" in check
    assert f"{IMAGE_SETTINGS.port}" in _args("EXPOSE")[0]
    assert IMAGE_SETTINGS.host == "0.0.0.0"  # noqa: S104 (inside the container)


def test_the_command_serves_with_the_image_config() -> None:
    [command] = _args("CMD")
    argv = json.loads(command)
    assert argv == ["notifyd", "serve", "--config", "/etc/notifyd/notifyd.toml"]
    assert any(
        shlex.split(rest) == ["config/docker.toml", "/etc/notifyd/notifyd.toml"]
        for rest in _args("COPY")
    )
    assert _args("STOPSIGNAL") == ["SIGTERM"]


def test_compose_puts_notifyd_behind_the_proxy_it_trusts() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    notifyd, proxy = compose["services"]["notifyd"], compose["services"]["proxy"]
    assert "ports" not in notifyd  # reachable only through the proxy
    assert notifyd["volumes"] == ["notifyd-data:/var/lib/notifyd"]
    trusted = ipaddress.ip_network(notifyd["environment"]["NOTIFYD_TRUSTED_PROXIES"])
    proxy_address = ipaddress.ip_address(proxy["networks"]["notifyd"]["ipv4_address"])
    assert proxy_address in trusted
    subnet = ipaddress.ip_network(compose["networks"]["notifyd"]["ipam"]["config"][0]["subnet"])
    assert proxy_address in subnet
    assert proxy["depends_on"]["notifyd"]["condition"] == "service_healthy"
    mounted = {volume.split(":")[0] for volume in proxy["volumes"]}
    assert mounted == {"./config/nginx/upstream.compose.conf", "./config/nginx/notifyd.conf"}
    for source in mounted:
        assert (PROJECT_ROOT / source).is_file()
    upstream = (PROJECT_ROOT / "config/nginx/upstream.compose.conf").read_text()
    assert f"server notifyd:{IMAGE_SETTINGS.port};" in upstream
    assert notifyd["stop_grace_period"] == "60s"


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data"} <= set(ignored)
