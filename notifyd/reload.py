"""What SIGHUP can change without a restart, and what it cannot.

A reload reads the config again (the same file, environment and command-line options the
daemon started with), rebuilds the services and profiles, and keeps every setting that only
matters at start-up (the address, the database, the worker's shape) as it was: those are
named in the log as needing a restart. A reload that fails (a broken profile, a service
module that no longer imports) changes nothing and says why.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from notifyd.config import Settings
from notifyd.errors import StartupError
from notifyd.plugins import load_registry
from notifyd.services import Registry

# Settings read where they are used, on every request or job: a reload takes effect at once.
RELOADABLE = frozenset(
    {
        "log_level",
        "allowed_api_urls",
        "max_attempts",
        "service_modules",
        "profiles_dir",
        "oauth_code_seconds",
        "oauth_access_token_seconds",
        "oauth_refresh_token_seconds",
        "open_registration",
    }
)


@dataclass(frozen=True, slots=True)
class Reload:
    """The settings to run with from now on (the running ones with the reloadable changes),
    the rebuilt services and profiles, and what changed in the config, by kind."""

    settings: Settings
    registry: Registry
    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]


def prepare_reload(running: Settings, loaded: Settings) -> Reload:
    """Raises StartupError (naming the file or module) when the new services or profiles
    cannot be used; nothing has changed then."""
    changed = sorted(
        name for name in Settings.model_fields if getattr(running, name) != getattr(loaded, name)
    )
    applied = tuple(name for name in changed if name in RELOADABLE)
    needs_restart = tuple(name for name in changed if name not in RELOADABLE)
    settings = running.model_copy(update={name: getattr(loaded, name) for name in applied})
    _reimport(settings.service_modules)
    return Reload(
        settings=settings,
        registry=load_registry(settings),
        applied=applied,
        needs_restart=needs_restart,
    )


def _reimport(module_names: list[str]) -> None:
    """Service modules already imported are read again, so that an edited declaration is
    seen; modules new to the config are imported by the registry as at start-up."""
    for name in module_names:
        module = sys.modules.get(name)
        if module is None:
            continue
        try:
            importlib.reload(module)
        except Exception as exc:
            raise StartupError(
                f"service module {name!r} could not be read again: {type(exc).__name__}: {exc}"
            ) from exc
