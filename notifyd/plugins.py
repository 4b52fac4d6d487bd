"""Find the declared services and load their profiles into a Registry.

Services come from installed distributions through the entry-point group ``notifyd.services``
and from Python modules named in ``service_modules``; each entry point or module gives
``register_services() -> Iterable[ServiceSpec]``. Built-ins arrive the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError

from notifyd.config import Settings, read_profile_file
from notifyd.errors import ConfigError, StartupError
from notifyd.services import Profile, Registry, ServiceSpec

ENTRY_POINT_GROUP = "notifyd.services"


def _register_function(
    target: ModuleType | Callable[[], Iterable[ServiceSpec]], source: str
) -> Callable[[], Iterable[ServiceSpec]]:
    register = getattr(target, "register_services", target)
    if not callable(register):
        raise StartupError(f"{source} has no register_services() function")
    return register


def load_services(
    module_names: Iterable[str], *, use_entry_points: bool = True
) -> list[ServiceSpec]:
    registers: list[tuple[str, Callable[[], Iterable[ServiceSpec]]]] = []
    if use_entry_points:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {point.name!r} ({point.value})"
            try:
                target = point.load()
            except Exception as exc:
                raise StartupError(f"{source} could not be loaded: {exc}") from exc
            registers.append((source, _register_function(target, source)))
    for name in module_names:
        source = f"service module {name!r}"
        try:
            module = importlib.import_module(name)
        except SyntaxError as exc:
            raise StartupError(
                f"{source} has a syntax error: {describe_syntax_error(exc)}"
            ) from exc
        except ImportError as exc:
            raise StartupError(f"{source} could not be imported: {exc}") from exc
        except Exception as exc:
            raise StartupError(
                f"{source} failed while importing: {type(exc).__name__}: {exc}"
            ) from exc
        registers.append((source, _register_function(module, source)))
    specs: list[ServiceSpec] = []
    for source, register in registers:
        try:
            specs.extend(register())
        except Exception as exc:
            raise StartupError(f"{source} failed in register_services(): {exc}") from exc
    return specs


def describe_syntax_error(exc: SyntaxError) -> str:
    return f"{exc.filename}:{exc.lineno}: {exc.msg}"


def load_profiles(profiles_dir: Path, services: dict[str, ServiceSpec]) -> list[Profile]:
    """Read ``<profiles_dir>/<service>/<profile>.toml``; every error names its file."""
    if not profiles_dir.is_dir():
        raise StartupError(
            f"profiles_dir {profiles_dir} is not a folder; create it or point the setting "
            "profiles_dir (NOTIFYD_PROFILES_DIR) at the folder of public profiles"
        )
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
    return Registry.build(specs, load_profiles(settings.profiles_folder, by_id))
