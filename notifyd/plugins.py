"""Find the plugins, and through them the declared services, and load their profiles into a
Registry.

Plugins come from installed distributions through the entry-point groups
``notifyd.plugins`` and ``notifyd.services`` (the older name, for service packages), and
from Python modules named in the ``service_modules`` and ``plugins`` settings; see
``notifyd.hooks`` for what a plugin may implement. The built-in services arrive the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType, SimpleNamespace

from pydantic import ValidationError

from notifyd.config import Settings, read_profile_file
from notifyd.errors import ConfigError, StartupError
from notifyd.hooks import Hooks, hookimpl
from notifyd.services import Profile, Registry, ServiceSpec

ENTRY_POINT_GROUPS = ("notifyd.plugins", "notifyd.services")


def _as_plugin(target: object, source: str) -> object:
    """A module or object as it is; a bare function (an entry point naming
    ``module:register_services``) as a plugin implementing that one hook."""
    if isinstance(target, ModuleType) or not callable(target):
        return target
    return SimpleNamespace(register_services=hookimpl(specname="register_services")(target))


def load_hooks(
    module_names: Iterable[str], *, use_entry_points: bool = True, hooks: Hooks | None = None
) -> Hooks:
    """Every plugin registered in one manager; each failure names its source."""
    hooks = hooks or Hooks()
    if use_entry_points:
        for group in ENTRY_POINT_GROUPS:
            for point in entry_points(group=group):
                source = f"entry point {point.name!r} ({point.value})"
                try:
                    target = point.load()
                except Exception as exc:
                    raise StartupError(f"{source} could not be loaded: {exc}") from exc
                _register(hooks, _as_plugin(target, source), point.value, source)
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
        _register(hooks, module, name, source)
    return hooks


def _register(hooks: Hooks, plugin: object, name: str, source: str) -> None:
    try:
        hooks.register(plugin, name)
    except Exception as exc:  # pluggy: a hook implementation with arguments no hook has
        raise StartupError(f"{source} is not a usable plugin: {exc}") from exc
    if not hooks.manager.get_hookcallers(plugin) and hooks.manager.is_registered(plugin):
        raise StartupError(
            f"{source} has no register_services() function nor any other notifyd hook"
        )


def services_of(hooks: Hooks) -> list[ServiceSpec]:
    """Every plugin's services, in registration order; a failure names the plugin."""
    specs: list[ServiceSpec] = []
    for plugin_name, register in hooks.service_registrations():
        try:
            specs.extend(register())
        except Exception as exc:
            raise StartupError(
                f"plugin {plugin_name!r} failed in register_services(): {exc}"
            ) from exc
    return specs


def load_services(
    module_names: Iterable[str], *, use_entry_points: bool = True
) -> list[ServiceSpec]:
    return services_of(load_hooks(module_names, use_entry_points=use_entry_points))


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


def plugin_modules(settings: Settings) -> list[str]:
    return [*settings.service_modules, *settings.plugins]


def load_registry(settings: Settings, hooks: Hooks | None = None) -> Registry:
    """The services of ``hooks`` (loaded from the settings when not given) and their
    profiles."""
    hooks = hooks or load_hooks(plugin_modules(settings))
    specs = services_of(hooks)
    by_id = {spec.identifier: spec for spec in specs}
    return Registry.build(specs, load_profiles(settings.profiles_folder, by_id))
