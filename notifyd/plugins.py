"""Find the declared services and load their profiles into a Registry.

Services come from Python modules named in ``service_modules`` (each exposes
``register_services() -> Iterable[ServiceSpec]``); built-ins arrive the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from notifyd.config import Settings, read_profile_file
from notifyd.errors import ConfigError, StartupError
from notifyd.services import Profile, Registry, ServiceSpec


def load_services(module_names: Iterable[str]) -> list[ServiceSpec]:
    specs: list[ServiceSpec] = []
    for name in module_names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise StartupError(f"service module {name!r} could not be imported: {exc}") from exc
        register = getattr(module, "register_services", None)
        if not callable(register):
            raise StartupError(f"service module {name!r} has no register_services() function")
        specs.extend(register())
    return specs


def load_profiles(profiles_dir: Path, services: dict[str, ServiceSpec]) -> list[Profile]:
    """Read ``<profiles_dir>/<service>/<profile>.toml``; every error names its file."""
    if not profiles_dir.is_dir():
        return []
    profiles = []
    for path in sorted(profiles_dir.glob("*/*.toml")):
        service = services.get(path.parent.name)
        if service is None:
            raise StartupError(
                f"profile {path} is in a folder named after no declared service "
                f"(declared: {', '.join(sorted(services))})"
            )
        try:
            data = read_profile_file(path)
            settings = service.settings.model_validate(data.settings)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise StartupError(f"profile {path}: invalid settings: {problems}") from exc
        profiles.append(
            Profile(
                service=service.identifier,
                identifier=data.identifier,
                name=data.name,
                description=data.description,
                settings=settings,
                public=data.public,
            )
        )
    return profiles


def load_registry(settings: Settings) -> Registry:
    specs = load_services(settings.service_modules)
    by_id = {spec.identifier: spec for spec in specs}
    return Registry.build(specs, load_profiles(settings.profiles_dir, by_id))
