"""What every ``notifyd`` command shares: the --config option and settings that exit with
the reason instead of a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from notifyd.config import Settings, load_settings
from notifyd.errors import NotifydError
from notifyd.plugins import load_registry
from notifyd.services import Registry

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NOTIFYD_CONFIG",
    help="TOML config file (env NOTIFYD_CONFIG).",
)


def settings_or_exit(config_path: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_path, overrides)
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc


def registry_or_exit(settings: Settings) -> Registry:
    try:
        return load_registry(settings)
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc
