"""What one claim costs as the backlog grows, on SQLite and PostgreSQL: 1,000 and 100,000
queued jobs over 10 projects, one of them busy (its job running: the case that once scanned
that project's whole backlog on every claim).

    python benchmarks/claim_cost.py [--claims 300]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each claim takes one job and hands it back (``release``), so the backlog stays the same;
the median and p99 of the claim alone are reported. Prints Markdown for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ack_throughput import insert_postgres_backlog, prefill_backlog
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage

API_URL = "http://127.0.0.1:9"


async def cycles(storage: Any, claims: int) -> list[float]:
    """Claim one job and release it, ``claims`` times, with the busy project's job running."""
    [busy] = await storage.claim(worker_id="busy", lease_seconds=3600, limit=1)
    del busy
    took = []
    for _ in range(claims):
        started = time.perf_counter()
        jobs = await storage.claim(worker_id="w", lease_seconds=60, limit=1)
        took.append((time.perf_counter() - started) * 1000)
        for job in jobs:
            await storage.release(job.id, worker_id="w")
    return took


async def sqlite_run(count: int, claims: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.sqlite3"
        # 10 projects: the first (the busy one, once its job runs) holds a tenth of the jobs.
        await asyncio.to_thread(prefill_backlog, path, count, 10, API_URL)
        async with SqliteStorage.open(path) as storage:
            return await cycles(storage, claims)


async def postgres_run(dsn: str, count: int, claims: int) -> list[float]:
    schema = f"claim_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        async with PostgresStorage.open(dsn, server_settings={"search_path": schema}) as storage:
            await insert_postgres_backlog(storage, count, 10, API_URL)
            await storage.pool.execute("ANALYZE")
            return await cycles(storage, claims)
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def summary(took: list[float]) -> str:
    ordered = sorted(took)
    return f"{ordered[len(ordered) // 2]:.2f} / {ordered[int(len(ordered) * 0.99)]:.2f}"


async def main(args: argparse.Namespace) -> None:
    rows = []
    for count in (1_000, 100_000):
        sqlite = await sqlite_run(count, args.claims)
        postgres = await postgres_run(args.postgres, count, args.claims)
        rows.append((count, summary(sqlite), summary(postgres)))
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; {args.claims} claims each, one busy project running"
    )
    print()
    print("| queued jobs | SQLite claim ms (p50 / p99) | PostgreSQL claim ms (p50 / p99) |")
    print("|---|---|---|")
    for count, sqlite_ms, postgres_ms in rows:
        print(f"| {count:,} | {sqlite_ms} | {postgres_ms} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "NOTIFYD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    asyncio.run(main(parser.parse_args()))
