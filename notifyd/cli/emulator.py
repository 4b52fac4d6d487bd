"""``notifyd emulator``: the BIMserver emulator on its own, for any client to be pointed at."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from notifyd.emulator import BimServerEmulator
from notifyd.records import Dialect
from notifyd.stepfile import header_schema


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0: any free).")
@click.option("--dialect", type=click.Choice(["1.4", "1.5"]), default="1.5", show_default=True)
@click.option("--username", default="admin@bimserver.test", show_default=True)
@click.option("--password", default="admin", show_default=True)
@click.argument("ifc_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def emulator_command(
    host: str, port: int, dialect: str, username: str, password: str, ifc_files: tuple[Path, ...]
) -> None:
    """Serve an emulated BIMserver: each IFC file is the first revision of a project of its own;
    logins as USERNAME/PASSWORD are an administrator's."""
    emulator = BimServerEmulator(
        Dialect.BIMSIE1 if dialect == "1.4" else Dialect.BIMSERVER_15,
        host=host,
        username=username,
        password=password,
    )

    async def run() -> None:
        try:
            await emulator.start(port)
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from None
        try:
            click.echo(f"BIMserver {dialect} emulator at {emulator.url}")
            for path in ifc_files:
                if header_schema(path) is None:
                    raise click.BadParameter(
                        f"{path} is not an IFC STEP file: its header names no FILE_SCHEMA",
                        param_hint="IFC_FILES",
                    )
                poid = emulator.add_project(path.stem)
                roid = emulator.add_revision(poid, path)
                click.echo(f"project {poid} ({path.stem}): revision {roid} from {path}")
            click.echo(f"log in as {username} / {password}; Ctrl-C stops")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
