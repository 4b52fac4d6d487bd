"""The ``notifyd`` command: ``notifyd <noun> [<verb>]``."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
import structlog

from notifyd.cli.common import config_option, plugins_or_exit, registry_or_exit, settings_or_exit
from notifyd.cli.emulator import emulator_command
from notifyd.cli.grants import accounts, oauth, platforms
from notifyd.cli.jobs import jobs
from notifyd.cli.transfer import export_command, import_command
from notifyd.errors import NotifydError
from notifyd.logs import configure_logging
from notifyd.records import Dialect
from notifyd.services import service_descriptor, settings_schema


def _tune_process() -> None:
    """A shorter GIL switch interval for the daemon's processes.

    The SQLite writer thread needs the GIL for a moment several times per commit; with
    CPython's default 5 ms interval each of those moments can wait 5 ms behind the busy event
    loop, which is what the p99 of an acknowledgement showed (45 ms against 27 ms at 1 ms,
    benchmarks/ack_throughput.py). Throughput is unchanged.
    """
    sys.setswitchinterval(0.001)


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
    from notifyd.config import load_settings
    from notifyd.web.app import create_app
    from notifyd.web.body import SERVER_OPTIONS
    from notifyd.web.middlewares import make_access_logger
    from notifyd.web.server import Server

    settings = settings_or_exit(
        config_path, host=host, port=port, data_dir=data_dir, log_format=log_format
    )
    configure_logging(settings.log_format, settings.log_level)
    hooks, registry = plugins_or_exit(settings)
    _tune_process()
    log = structlog.get_logger("notifyd")
    log.info(
        "notifyd_starting",
        host=settings.host,
        port=settings.port,
        database=settings.database_label,
        services=sorted(registry.services),
        endpoint=settings.base_path + ("/[redacted]" if settings.secret_path else "") + "/json",
    )
    if not settings.allowed_api_urls:
        log.warning(
            "allowed_api_urls_empty",
            consequence="every notification will be refused",
            fix="set allowed_api_urls (NOTIFYD_ALLOWED_API_URLS) to your BIMserver's address",
        )
    overrides = {"host": host, "port": port, "data_dir": data_dir, "log_format": log_format}
    server = Server(
        create_app(settings, registry, hooks),
        load_settings=lambda: load_settings(config_path, overrides),
        access_log_class=make_access_logger(settings.secret_path),
        **SERVER_OPTIONS,
    )
    try:
        asyncio.run(server.run())
    except NotifydError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(_listen_failure(settings.host, settings.port, exc)) from None


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use by another process; stop it, or choose another "
            "port (--port, setting port)"
        )
    if exc.errno == errno.EACCES:
        return f"no permission to listen on {host}:{port}; use a port above 1023 (--port)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate a config and its services and profiles; say exactly what is wrong."""
    settings = settings_or_exit(config_path)
    registry = registry_or_exit(settings)
    profiles = sum(len(p) for p in registry.profiles.values())
    click.echo(
        f"config OK: {len(registry.services)} services, {profiles} profiles, "
        f"database {settings.database_label}"
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
    settings = settings_or_exit(config_path)
    registry = registry_or_exit(settings)
    entries: list[dict[str, Any]] = []
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


@main.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Bring the job database's schema to this release (serve and worker do it at start too;
    run it first to see the outcome, or before starting several hosts)."""
    from notifyd.cli.common import with_storage

    async def counts(storage: Any, settings: Any) -> Any:
        return settings.database_label, await storage.counts()

    label, jobs = with_storage(config_path, counts)
    total = sum(jobs.values())
    click.echo(f"database {label} is at this release's schema; {total} jobs in it")


@main.command()
@config_option
@click.option("--concurrency", type=int, help="Jobs run at once (setting worker_concurrency).")
@click.option("--burst", is_flag=True, help="Stop when no job is queued or running.")
def worker(config_path: Path | None, concurrency: int | None, burst: bool) -> None:
    """Run workers alone, against the same database as `serve` (which runs one too)."""
    from notifyd.storage import open_storage
    from notifyd.worker import open_worker

    settings = settings_or_exit(config_path, worker_concurrency=concurrency)
    configure_logging(settings.log_format, settings.log_level)
    hooks, registry = plugins_or_exit(settings)
    _tune_process()

    async def run() -> None:
        async with (
            open_storage(settings) as storage,
            open_worker(settings, storage, registry, hooks) as work,
        ):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(work.stop()))
            await work.run(until_empty=burst)

    asyncio.run(run())


@main.command()
@config_option
@click.argument("ifc_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--service", "service_id", required=True, help="Identifier of the service to run.")
@click.option("--profile", default="default", show_default=True)
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="A Python module declaring services (register_services); repeatable. "
    "The current folder is importable.",
)
@click.option("--dialect", type=click.Choice(["1.4", "1.5"]), default="1.5", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the result.")
@click.option("--watch", is_flag=True, help="Run again when the code or the IFC file changes.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
def dev(
    config_path: Path | None,
    ifc_file: Path,
    service_id: str,
    profile: str,
    modules: tuple[str, ...],
    dialect: str,
    out: Path | None,
    watch: bool,
    timeout: float,
) -> None:
    """Run a service on an IFC file through an emulated BIMserver and show what it writes."""
    from notifyd.dev import DevRun, run_dev

    sys.path.insert(0, str(Path.cwd()))
    base = settings_or_exit(config_path, log_level="warning", log_format="console")
    settings = base.model_copy(
        update={"service_modules": [*base.service_modules, *modules], "worker_concurrency": 1}
    )
    configure_logging(settings.log_format, settings.log_level)
    registry_or_exit(settings)  # fail early, with the reason, on a bad declaration
    run = DevRun(
        ifc_path=ifc_file.resolve(),
        service=service_id,
        profile=profile,
        dialect=Dialect.BIMSIE1 if dialect == "1.4" else Dialect.BIMSERVER_15,
        out=out,
        watch=watch,
        timeout=timeout,
    )
    try:
        status = asyncio.run(run_dev(run, settings, click.echo))
    except KeyboardInterrupt:
        status = 130
    except (NotifydError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(status)


main.add_command(emulator_command)
main.add_command(jobs)
main.add_command(accounts)
main.add_command(oauth)
main.add_command(platforms)
main.add_command(export_command)
main.add_command(import_command)


def _plugin_commands() -> None:
    """Subcommands from plugins installed as packages (entry points): the command line is
    built before any config names modules. A plugin that fails to load is reported when a
    command needs it, not here, so that `notifyd --help` always works."""
    from notifyd.plugins import load_hooks

    try:
        hooks = load_hooks([], use_entry_points=True)
    except NotifydError:
        return
    hooks.register_commands(main)


_plugin_commands()
