"""``notifyd export`` and ``notifyd import``: move a provider's whole job database to another
backend (SQLite to PostgreSQL) without losing a job, a kept token or an OAuth grant."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from notifyd.cli.common import config_option, with_storage
from notifyd.config import Settings
from notifyd.storage import Storage
from notifyd.storage.transfer import TransferRow, export_rows, import_rows


@click.command("export")
@config_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (default: standard output). It holds tokens: keep it private.",
)
def export_command(config_path: Path | None, output: Path | None) -> None:
    """Write every job, attempt, outage, account and OAuth grant as JSON lines."""

    stream: IO[bytes] = (
        os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        if output
        else sys.stdout.buffer
    )

    async def dump(storage: Storage, _settings: Settings) -> int:
        written = 0
        async for item in export_rows(storage):
            stream.write(orjson.dumps({"table": item.table, "row": item.row}) + b"\n")
            written += 1
        return written

    try:
        written = with_storage(config_path, dump)
    finally:
        if output:
            stream.close()
        else:
            stream.flush()
    click.echo(f"{written} rows exported", err=True)


@click.command("import")
@config_option
@click.argument("source", type=click.File("rb"))
def import_command(config_path: Path | None, source: IO[bytes]) -> None:
    """Load an export into the configured database, which must hold no jobs yet."""

    def rows() -> Iterator[TransferRow]:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                item: Any = orjson.loads(line)
                yield TransferRow(str(item["table"]), dict(item["row"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise click.ClickException(f"line {number} is not an export row: {exc}") from exc

    async def load(storage: Storage, _settings: Settings) -> dict[str, int]:
        return await import_rows(storage, rows())

    counts = with_storage(config_path, load)
    click.echo(", ".join(f"{n} {table}" for table, n in counts.items() if n) or "nothing imported")
