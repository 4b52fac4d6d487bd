"""The ``notifyd`` command: ``notifyd <noun> [<verb>]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import structlog

from notifyd.config import Settings, load_settings
from notifyd.errors import NotifydError
from notifyd.logs import configure_logging
from notifyd.plugins import load_registry
from notifyd.services import Registry, service_descriptor, settings_schema

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NOTIFYD_CONFIG",
    help="TOML config file (env NOTIFYD_CONFIG).",
)


def _settings(config_path: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_path, overrides)
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc


def _registry(settings: Settings) -> Registry:
    try:
        return load_registry(settings)
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc


@click.group()
@click.version_option(package_name="notifyd")
def main() -> None:
    """notifyd: BIMserver service notifications, durably queued and processed."""


@main.command()
@config_option
@click.option("--host", help="Address to listen on.")
@click.option("--port", type=int, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the SQLite database.",
)
@click.option("--log-format", type=click.Choice(["json", "console"]))
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    log_format: str | None,
) -> None:
    """Receive notifications and serve the JSON endpoint."""
    from aiohttp import web

    from notifyd.web.app import create_app
    from notifyd.web.middlewares import make_access_logger

    settings = _settings(
        config_path, host=host, port=port, data_dir=data_dir, log_format=log_format
    )
    configure_logging(settings.log_format, settings.log_level)
    registry = _registry(settings)
    log = structlog.get_logger("notifyd")
    log.info(
        "notifyd_starting",
        host=settings.host,
        port=settings.port,
        database=str(settings.database_path),
        services=sorted(registry.services),
        endpoint=settings.base_path + ("/[redacted]" if settings.secret_path else "") + "/json",
    )
    web.run_app(
        create_app(settings, registry),
        host=settings.host,
        port=settings.port,
        access_log_class=make_access_logger(settings.secret_path),
        print=None,
    )


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate a config and its services and profiles; say exactly what is wrong."""
    settings = _settings(config_path)
    registry = _registry(settings)
    profiles = sum(len(p) for p in registry.profiles.values())
    click.echo(
        f"config OK: {len(registry.services)} services, {profiles} profiles, "
        f"database {settings.database_path}"
    )
    if not settings.allowed_api_urls:
        click.echo(
            "warning: allowed_api_urls is empty, so every notification will be refused",
            err=True,
        )


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def services(config_path: Path | None, as_json: bool) -> None:
    """List the declared services with their public profiles, as BIMserver will see them."""
    settings = _settings(config_path)
    registry = _registry(settings)
    entries = []
    for spec in registry.services.values():
        entries.append(
            {
                "identifier": spec.identifier,
                "descriptor": service_descriptor(spec, settings).to_wire(),
                "rights": {
                    "readRevision": spec.read_revision,
                    "readExtendedData": spec.read_extended_data,
                    "writeRevision": spec.write_revision,
                    "writeExtendedData": spec.write_extended_data,
                },
                "inputs": list(spec.inputs),
                "outputs": list(spec.outputs),
                "settingsSchema": settings_schema(spec),
                "profiles": [
                    {
                        "identifier": p.identifier,
                        "name": p.name,
                        "description": p.description,
                        "public": p.public,
                        "settings": p.settings.model_dump(mode="json"),
                    }
                    for p in registry.profiles[spec.identifier]
                ],
            }
        )
    if as_json:
        json.dump({"services": entries}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for entry in entries:
        d = entry["descriptor"]
        click.echo(f"{entry['identifier']}: {d['name']}")
        click.echo(f"  {d['description']}")
        click.echo(
            f"  trigger {d['trigger']}; reads {', '.join(entry['inputs'])}; writes "
            + (d["writeExtendedData"] or "")
            + (" a new revision" if d["writeRevision"] else "")
        )
        for p in entry["profiles"]:
            click.echo(f"  profile {p['identifier']}: {p['name']}: {p['description']}")
