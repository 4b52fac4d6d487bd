"""Services and profiles: what a provider offers, declared once.

A ``ServiceSpec`` is served as BIMserver's SServiceDescriptor over the JSON protocol and, in a
later release, as a BIM bots service. Its ``settings`` model validates every profile.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from notifyd.config import Settings
from notifyd.errors import StartupError, UnknownProfile, UnknownService
from notifyd.protocol.descriptors import (
    SCHEMA_NAMES,
    SProfileDescriptor,
    SServiceDescriptor,
    STrigger,
)


class NoSettings(BaseModel):
    """For a service that takes no settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendedData:
    """A result to attach to the revision as extended data."""

    data: bytes
    mime: str
    filename: str
    title: str
    schema: str | None = None  # default: the service's write_extended_data


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """A new IFC file to check in as a new revision of the project."""

    path: Path
    comment: str


ServiceOutput = ExtendedData | Revision


class ServiceLog(Protocol):
    def info(self, event: str, **fields: Any) -> None: ...
    def warning(self, event: str, **fields: Any) -> None: ...
    def error(self, event: str, **fields: Any) -> None: ...


class _NullLog:
    """Where a context's log lines go until a worker process connects them to the daemon."""

    def info(self, event: str, **fields: Any) -> None:
        pass

    warning = error = info


def _no_progress(percent: int, message: str = "") -> None:
    """Where progress goes until a worker process connects it to the daemon."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceContext:
    """Everything a service function gets: the model on disk, the ids, the profile's settings,
    a logger and a progress callback. It runs in a worker process, off the event loop."""

    model_path: Path | None  # the downloaded revision (None for extended data on a project)
    schema: str | None  # IFC schema of the model: "IFC2X3", "IFC4", ...
    extended_data_path: Path | None  # the extended data that triggered the job, if any
    work_dir: Path  # a private folder for output files, removed after the job
    poid: int | None  # the BIMserver ids of a notification; None for an uploaded model
    roid: int | None
    soid: int | None
    job_id: int
    attempt: int
    service: str
    profile: str
    settings: Any  # the profile's settings, an instance of the service's settings model
    log: ServiceLog = field(default_factory=_NullLog)
    progress: Callable[[int, str], None] = _no_progress  # percent 0-100 (-1: unknown), message


ServiceHandler = Callable[[ServiceContext], ServiceOutput]


def handler_reference(handler: ServiceHandler | str | None) -> str | None:
    """A service function as ``module:qualname``, so a worker process can import it."""
    if handler is None or isinstance(handler, str):
        return handler
    return f"{handler.__module__}:{handler.__qualname__}"


def import_handler(reference: str) -> ServiceHandler:
    module_name, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{reference} is not callable")
    return target


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    identifier: str
    name: str
    description: str
    trigger: STrigger = STrigger.NEW_REVISION
    read_revision: bool = True
    read_extended_data: str | None = None
    write_revision: bool = False
    write_extended_data: str | None = None
    inputs: tuple[str, ...] = ("IFC_STEP_2X3TC1", "IFC_STEP_4")
    outputs: tuple[str, ...] = ()
    settings: type[BaseModel] = NoSettings
    provider_name: str | None = None  # overrides the daemon's provider_name
    handler: ServiceHandler | str | None = None  # the function that does the work
    timeout_seconds: float = 600.0
    extended_data_namespace: str | None = None  # BIMserver 1.4 looks schemas up by namespace

    def problems(self) -> list[str]:
        """What is wrong with the declaration; empty when it can be served."""
        found = []
        if not self.identifier or not self.identifier.replace("-", "").replace("_", "").isalnum():
            found.append(f"identifier {self.identifier!r} must be letters, digits, '-' or '_'")
        if self.trigger is STrigger.NEW_PROJECT:
            found.append("trigger NEW_PROJECT is never sent to JSON services")
        for label, names in (("input", self.inputs), ("output", self.outputs)):
            found += [f"unknown {label} schema {n!r}" for n in names if n not in SCHEMA_NAMES]
        for label, name in (
            ("readExtendedData", self.read_extended_data),
            ("writeExtendedData", self.write_extended_data),
        ):
            if name is not None and name not in SCHEMA_NAMES:
                found.append(f"unknown {label} schema {name!r}")
        if self.write_extended_data and self.write_extended_data not in self.outputs:
            found.append(f"writeExtendedData {self.write_extended_data!r} is not in outputs")
        if not (self.write_revision or self.write_extended_data):
            found.append("the service writes nothing back (neither a revision nor extended data)")
        if self.timeout_seconds <= 0:
            found.append("timeout_seconds must be positive")
        if isinstance(self.handler, str):
            try:
                import_handler(self.handler)
            except (ImportError, AttributeError, TypeError, ValueError) as exc:
                found.append(f"handler {self.handler!r} cannot be imported: {exc}")
        elif self.handler is not None and "<" in handler_reference(self.handler):  # type: ignore[operator]
            found.append("handler must be a module-level function (a worker process imports it)")
        return found

    @property
    def handler_ref(self) -> str | None:
        return handler_reference(self.handler)


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    service: str
    identifier: str
    name: str
    description: str
    settings: BaseModel
    public: bool = True


@dataclass(slots=True)
class Registry:
    """The declared services and their profiles. Everything that serves or runs a service
    holds this one object, so a reload (SIGHUP) replaces its contents in place."""

    services: MappingProxyType[str, ServiceSpec] = field(
        default_factory=lambda: MappingProxyType({})
    )
    profiles: MappingProxyType[str, tuple[Profile, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(cls, services: Iterable[ServiceSpec], profiles: Iterable[Profile]) -> Registry:
        by_id: dict[str, ServiceSpec] = {}
        for spec in services:
            if spec.identifier in by_id:
                raise StartupError(f"service {spec.identifier!r} is declared twice")
            problems = spec.problems()
            if problems:
                raise StartupError(f"service {spec.identifier!r}: " + "; ".join(problems))
            by_id[spec.identifier] = spec
        grouped: dict[str, list[Profile]] = {identifier: [] for identifier in by_id}
        for profile in profiles:
            if profile.service not in by_id:
                raise StartupError(
                    f"profile {profile.identifier!r} is for unknown service {profile.service!r}"
                )
            if any(p.identifier == profile.identifier for p in grouped[profile.service]):
                raise StartupError(
                    f"service {profile.service!r} has two profiles {profile.identifier!r}"
                )
            grouped[profile.service].append(profile)
        for identifier, spec in by_id.items():
            if not grouped[identifier]:
                grouped[identifier].append(default_profile(spec))
        return cls(
            MappingProxyType(by_id),
            MappingProxyType({k: tuple(sorted(v, key=_order)) for k, v in grouped.items()}),
        )

    def replace_with(self, other: Registry) -> None:
        """Take ``other``'s services and profiles, both at once (one assignment each, no
        await between them, so no request sees one without the other)."""
        self.services, self.profiles = other.services, other.profiles

    def service(self, identifier: str) -> ServiceSpec:
        try:
            return self.services[identifier]
        except KeyError:
            raise UnknownService(identifier) from None

    def public_profiles(self, service: str) -> tuple[Profile, ...]:
        self.service(service)
        return tuple(p for p in self.profiles[service] if p.public)

    def profile(self, service: str, identifier: str | None) -> Profile:
        """The named profile, or the service's first (``default``) profile for None."""
        profiles = self.profiles[self.service(service).identifier]
        if identifier is None:
            return profiles[0]
        for profile in profiles:
            if profile.identifier == identifier:
                return profile
        raise UnknownProfile(service, identifier)


def _order(profile: Profile) -> tuple[bool, str]:
    return (profile.identifier != "default", profile.identifier)


def default_profile(spec: ServiceSpec) -> Profile:
    """A service without profile files still gets one, if its settings all have defaults."""
    try:
        settings = spec.settings()
    except Exception as exc:
        raise StartupError(
            f"service {spec.identifier!r} has no profile and its settings have no defaults: {exc}"
        ) from exc
    return Profile(
        service=spec.identifier,
        identifier="default",
        name="Default",
        description=f"{spec.name} with default settings",
        settings=settings,
    )


def settings_schema(spec: ServiceSpec) -> dict[str, Any]:
    return spec.settings.model_json_schema()


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthEndpoints:
    """Where BIMserver and BIM-bots clients register, send users to consent, and get tokens;
    announced both by ``getService`` and by the bots service list."""

    register: str
    authorize: str
    token: str

    @classmethod
    def of(cls, settings: Settings) -> OAuthEndpoints:
        base = settings.public_base_url
        return cls(
            register=f"{base}/oauth/register",
            authorize=f"{base}/oauth/authorize",
            token=f"{base}/oauth/access",
        )


def service_descriptor(
    spec: ServiceSpec, settings: Settings, *, token_page: bool = False
) -> SServiceDescriptor:
    """What ``getService`` announces; every URL is built from the daemon's public base URL.

    ``tokenUrl`` is where BIMserver 1.5 exchanges an OAuth code (it posts there,
    ``OAuthServiceImpl.java:374``); BIMserver 1.4's server never calls it (no Java source
    at 1.4.0-FINAL-2015-11-04 calls ``getTokenUrl()``) and its UI sends the user there, so
    with ``token_page`` (the 1.4 dialect) it is the page where a user creates a user token."""
    base = settings.public_base_url
    oauth = OAuthEndpoints.of(settings)
    service_url = base + (f"/{settings.secret_path}" if settings.secret_path else "")
    return SServiceDescriptor(
        name=spec.name,
        url=service_url,
        token=None,
        identifier=spec.identifier,
        description=spec.description,
        trigger=spec.trigger,
        readRevision=spec.read_revision,
        readExtendedData=spec.read_extended_data,
        writeRevision=spec.write_revision,
        writeExtendedData=spec.write_extended_data,
        providerName=spec.provider_name or settings.provider_name,
        companyUrl=settings.provider_company_url or base,
        tokenUrl=f"{base}/account/tokens" if token_page else oauth.token,
        newProfileUrl=f"{base}/profiles/new?service={spec.identifier}",
        registerUrl=oauth.register,
        authorizeUrl=oauth.authorize,
    )


def profile_descriptor(profile: Profile) -> SProfileDescriptor:
    return SProfileDescriptor(
        identifier=profile.identifier,
        name=profile.name,
        description=profile.description,
        publicProfile=profile.public,
    )
