"""What every ``notifyd`` command shares: the --config option and settings that exit with
the reason instead of a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from notifyd.config import Settings, load_settings
from notifyd.errors import NotifydError
from notifyd.hooks import Hooks
from notifyd.plugins import load_hooks, load_registry, plugin_modules
from notifyd.services import Registry
from notifyd.storage import Storage

T = TypeVar("T")

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
    return plugins_or_exit(settings)[1]


def plugins_or_exit(settings: Settings) -> tuple[Hooks, Registry]:
    """The plugins of the settings and the registry of their services."""
    try:
        hooks = load_hooks(plugin_modules(settings))
        return hooks, load_registry(settings, hooks)
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc


def with_storage(
    config_path: Path | None, action: Callable[[Storage, Settings], Awaitable[T]]
) -> T:
    """Run ``action`` on the configured database; its errors end the command with a reason."""
    from notifyd.storage import open_storage

    settings = settings_or_exit(config_path)

    async def run() -> T:
        async with open_storage(settings) as storage:
            return await action(storage, settings)

    try:
        return asyncio.run(run())
    except NotifydError as exc:
        raise click.ClickException(exc.message) from exc
