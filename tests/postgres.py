"""A PostgreSQL database for a test: a schema of its own on the server named by
NOTIFYD_TEST_POSTGRES_DSN (``.ci/run`` sets it), dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

DSN_VARIABLE = "NOTIFYD_TEST_POSTGRES_DSN"


def postgres_dsn() -> str:
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        pytest.skip(f"{DSN_VARIABLE} is not set: the PostgreSQL half needs a server")
    return dsn


@asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[dict[str, str]]:
    """Server settings that put every table of a test into a schema nobody else uses."""
    schema = f"test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield {"search_path": schema}
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
