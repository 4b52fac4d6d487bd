"""notifyd's plugin hooks (pluggy, in the style of Datasette's): what a plugin can add and
what it is told. Each hook is documented here, once; README's "Plugins" lists them.

A plugin is a module (or an object) with functions named after the hooks, marked with
``@hookimpl``; a module that only defines ``register_services()`` without the marker is
taken too, as service modules always were. Plugins come from the entry-point groups
``notifyd.plugins`` and ``notifyd.services``, from the ``service_modules`` and ``plugins``
settings, and from notifyd itself (the built-in services and the Prometheus metrics).

The worker, the receiver and the BIMserver client only announce events; what a plugin does
with them cannot stop a job: a hook that raises is logged and the others still run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from notifyd.bimserver.client import BimServerCall
from notifyd.records import Job, Notification
from notifyd.services import ServiceSpec

if TYPE_CHECKING:
    import click
    from aiohttp import web

PROJECT = "notifyd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

log = structlog.get_logger("notifyd.plugins")


class JobEventKind(StrEnum):
    RECEIVED = "received"  # stored by the receiver (a notification or an upload)
    CLAIMED = "claimed"  # taken by a worker; ``waited_seconds`` is its time in the queue
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an attempt failed and the job will be tried again
    DEAD = "dead"  # out of attempts, or failed for good
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    kind: JobEventKind
    job_id: int
    service: str
    origin: str  # the BIMserver method (newRevision, ...) or "upload"
    attempt: int = 0
    waited_seconds: float | None = None  # CLAIMED: from due to claimed
    took_seconds: float | None = None  # the attempt's duration, for the ends of an attempt
    error: str | None = None


def job_event(kind: JobEventKind, job: Job, **fields: Any) -> JobEvent:
    """The event for ``job``: its service and what brought it (the BIMserver method or
    "upload")."""
    origin = str(job.origin.kind) if isinstance(job.origin, Notification) else "upload"
    return JobEvent(
        kind=kind,
        job_id=job.id,
        service=job.service,
        origin=origin,
        attempt=job.attempts,
        **fields,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonCall:
    """One call BIMserver made on the JSON endpoint: ``outcome`` is queued, duplicate (a
    notification already stored), answered (getService and the profile lists), refused (a
    bad call, answered with an exception) or not_stored (the database failed)."""

    method: str
    dialect: str
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """One request notifyd answered: ``route`` is the route's pattern, never the raw path (a
    secret path or a topic id must not become a label)."""

    route: str
    method: str
    status: int
    seconds: float


class HookSpecs:
    @hookspec
    def register_services(self) -> Iterable[ServiceSpec]:  # type: ignore[empty-body]
        """The services this plugin offers. The built-in services come through here too."""

    @hookspec
    def register_routes(self, app: web.Application) -> None:
        """Add routes (``app.router.add_get(...)``) before the app starts; use the app's
        ``base_path`` setting for their prefix."""

    @hookspec
    def register_commands(self, cli: click.Group) -> None:
        """Add ``notifyd`` subcommands; only plugins found through entry points are asked
        (the command line exists before any config is read)."""

    @hookspec
    def startup(self, app: web.Application) -> Awaitable[None] | None:
        """The app has opened its database and started its worker; may return an awaitable."""

    @hookspec
    def shutdown(self, app: web.Application) -> Awaitable[None] | None:
        """The app is stopping, after the worker drained; may return an awaitable."""

    @hookspec
    def job_event(self, event: JobEvent) -> None:
        """A job was received, claimed, or an attempt ended. Called on the event loop: do not
        block; hand slow work to a task or a thread."""

    @hookspec
    def json_call(self, call: JsonCall) -> None:
        """The JSON endpoint answered one call (a batch announces each of its calls)."""

    @hookspec
    def bimserver_call(self, call: BimServerCall) -> None:
        """The worker called a BIMserver (one HTTP exchange), with its outcome and latency."""

    @hookspec
    def http_request(self, request: HttpRequest) -> None:
        """notifyd answered an HTTP request."""


class _PluginManager(pluggy.PluginManager):
    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        """Marked functions, and an unmarked module-level ``register_services`` (service
        modules written before hooks existed)."""
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name == "register_services" and inspect.ismodule(plugin):
            function = getattr(plugin, name, None)
            if inspect.isfunction(function):
                return {
                    "wrapper": False,
                    "hookwrapper": False,
                    "optionalhook": False,
                    "tryfirst": False,
                    "trylast": False,
                    "specname": None,
                }
        return opts


class Hooks:
    """The plugin manager and the calls notifyd makes into it."""

    def __init__(self) -> None:
        self.manager = _PluginManager(PROJECT)
        self.manager.add_hookspecs(HookSpecs)
        # Announcements run on every request: their callers are looked up once per hook.
        self._callers: dict[str, list[tuple[Any, tuple[str, ...], str]]] = {}

    def register(self, plugin: object, name: str) -> None:
        if self.manager.is_registered(plugin) or self.manager.has_plugin(name):
            return
        self.manager.register(plugin, name=name)
        self._callers.clear()

    def service_registrations(self) -> list[tuple[str, Any]]:
        """(plugin name, its register_services function), in registration order."""
        impls = self.manager.hook.register_services.get_hookimpls()
        return [(impl.plugin_name, impl.function) for impl in reversed(impls)]

    def register_routes(self, app: web.Application) -> None:
        self.manager.hook.register_routes(app=app)

    def register_commands(self, cli: click.Group) -> None:
        self.manager.hook.register_commands(cli=cli)

    async def startup(self, app: web.Application) -> None:
        for result in self.manager.hook.startup(app=app):
            if inspect.isawaitable(result):
                await result

    async def shutdown(self, app: web.Application) -> None:
        for result in self.manager.hook.shutdown(app=app):
            if inspect.isawaitable(result):
                await result

    def job_event(self, event: JobEvent) -> None:
        self._announce("job_event", event=event)

    def bimserver_call(self, call: BimServerCall) -> None:
        self._announce("bimserver_call", call=call)

    def json_call(self, call: JsonCall) -> None:
        self._announce("json_call", call=call)

    def http_request(self, request: HttpRequest) -> None:
        self._announce("http_request", request=request)

    def _announce(self, hook: str, **kwargs: Any) -> None:
        """Every implementation, each on its own: one that raises does not silence the rest
        nor reach the caller."""
        callers = self._callers.get(hook)
        if callers is None:
            callers = self._callers[hook] = [
                (impl.function, tuple(impl.argnames), impl.plugin_name)
                for impl in getattr(self.manager.hook, hook).get_hookimpls()
            ]
        for function, argnames, plugin in callers:
            try:
                function(*[kwargs[name] for name in argnames])
            except Exception:
                log.exception("plugin_hook_failed", hook=hook, plugin=plugin)
