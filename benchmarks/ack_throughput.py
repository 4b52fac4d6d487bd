"""Durable acknowledgement of newRevision: notifyd (SQLite, synchronous=FULL) against a bare
aiohttp handler that stores nothing, both driven by wrk at the same concurrency in one run.

    python benchmarks/ack_throughput.py [--connections 32] [--seconds 10] [--rounds 3]
        [--backlog 100000] [--projects 10] [--no-worker]

As users run it: the worker runs inside ``notifyd serve`` over a backlog of ``--backlog``
queued jobs spread over ``--projects`` BIMserver projects, against an emulated BIMserver
(``notifyd emulator``) that knows none of them, so every job the worker claims costs it a
claim, a call to BIMserver, and the write of its end, while the acknowledgements are
measured. The notifications wrk sends are all for one project. Needs wrk (Debian package
``wrk``). Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from benchmarks.daemon import die_with_parent, free_port, start_notifyd
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def wait_for(url: str, method: str = "GET") -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=1)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def run_wrk(url: str, connections: int, seconds: int, api_url: str) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / "newrevision.lua"),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "API_URL": api_url},
    )
    if "unexpected answer" in out.stderr:
        raise RuntimeError(out.stderr[:2000])
    text = out.stdout

    def latency(percentile: str) -> float:
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        assert match, text
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
        "requests": float(re.search(r"(\d+) requests in", text).group(1)),  # type: ignore[union-attr]
    }


def prefill_backlog(database: Path, count: int, projects: int, api_url: str) -> None:
    """``count`` queued jobs over ``projects`` projects, inserted as the receiver does (the
    triggers keep the projects table), before the daemon starts."""
    asyncio.run(_migrate(database))
    conn = sqlite3.connect(database)
    now = time.time()
    rows = []
    for i in range(count):
        poid = 1_000_000 + i % projects
        key = json.dumps(
            [api_url, "newRevision", poid, 5_000_000 + i, None, 1, "bench-noop", "default"]
        )
        rows.append((key, poid, 5_000_000 + i, api_url, now, now, now))
    with conn:
        conn.executemany(
            "INSERT INTO jobs (dedup_key, kind, dialect, poid, roid, edid, soid, service, "
            "profile, api_url, token, user_token, status, max_attempts, run_after, created_at, "
            "updated_at) VALUES (?, 'newRevision', '1.5', ?, ?, NULL, 1, 'bench-noop', "
            "'default', ?, 't', NULL, 'queued', 5, ?, ?, ?)",
            rows,
        )
    conn.close()


async def prefill_postgres(url: str, count: int, projects: int, api_url: str) -> None:
    """The same backlog on PostgreSQL (migrated first, as the daemon would)."""
    async with PostgresStorage.open(url) as storage:
        await insert_postgres_backlog(storage, count, projects, api_url)


async def insert_postgres_backlog(
    storage: PostgresStorage, count: int, projects: int, api_url: str
) -> None:
    """``count`` queued jobs spread over ``projects`` projects, in one statement."""
    now = time.time()
    await storage.pool.execute(
        "INSERT INTO jobs (dedup_key, kind, dialect, poid, roid, soid, service, profile, "
        "api_url, token, status, max_attempts, run_after, created_at, updated_at) "
        "SELECT 'bench-' || i, 'newRevision', '1.5', 1000000 + i % $2, 5000000 + i, 1, "
        "'bench-noop', 'default', $3, 't', 'queued', 5, $4, $4, $4 "
        "FROM generate_series(0, $1 - 1) AS i",
        count,
        projects,
        api_url,
        now,
    )


async def _schema(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(database: Path) -> None:
    async with SqliteStorage.open(database):
        pass


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/json", method="POST")
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--log-level", default="info", help="notifyd's log level (info logs every request)"
    )
    parser.add_argument("--backlog", type=int, default=100_000, help="queued jobs at start")
    parser.add_argument("--projects", type=int, default=10, help="projects of the backlog")
    parser.add_argument(
        "--no-worker", action="store_true", help="run notifyd serve without its worker"
    )
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="also measure notifyd on this PostgreSQL server (a schema of its own, dropped)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="notifyd-bench-", dir=ROOT) as tmp:
        data = Path(tmp)
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(HERE / "bare_server.py"), str(bare_port)],
            preexec_fn=die_with_parent,
        )
        emulator, api_url = start_emulator()
        prefill_backlog(data / "notifyd.sqlite3", args.backlog, args.projects, api_url)
        daemon, notifyd_url = start_notifyd(
            data,
            api_url,
            log_level=args.log_level,
            run_worker=str(not args.no_worker).lower(),
        )
        notifyd_port = int(notifyd_url.rsplit(":", 1)[1])
        processes = [bare, daemon, emulator]
        schema = f"bench_{secrets.token_hex(4)}"
        servers: list[tuple[str, int]] = [
            ("bare aiohttp handler", bare_port),
            ("notifyd", notifyd_port),
        ]
        if args.postgres:
            asyncio.run(_schema(args.postgres, f"CREATE SCHEMA {schema}"))
            separator = "&" if "?" in args.postgres else "?"
            pg_url = f"{args.postgres}{separator}search_path={schema}"
            asyncio.run(prefill_postgres(pg_url, args.backlog, args.projects, api_url))
            (data / "pg").mkdir(mode=0o700)
            pg_daemon, pg_notifyd_url = start_notifyd(
                data / "pg",
                api_url,
                log_level=args.log_level,
                run_worker=str(not args.no_worker).lower(),
                database_url=pg_url,
            )
            processes.append(pg_daemon)
            servers.append(("notifyd on PostgreSQL", int(pg_notifyd_url.rsplit(":", 1)[1])))
        try:
            wait_for(f"http://127.0.0.1:{bare_port}/json")
            wait_for(f"http://127.0.0.1:{notifyd_port}/healthz")
            for _, port in servers:
                run_wrk(f"http://127.0.0.1:{port}/json", args.connections, 3, api_url)  # warm-up
            # Alternate the servers round by round so that noise on a shared machine hits
            # both alike; report each one's median round.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
            for _ in range(args.rounds):
                for name, port in servers:
                    rounds[name].append(
                        run_wrk(
                            f"http://127.0.0.1:{port}/json", args.connections, args.seconds, api_url
                        )
                    )
            results = {
                name: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
                for name, runs in rounds.items()
            }
            conn = sqlite3.connect(data / "notifyd.sqlite3")
            stored = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            ended = conn.execute("SELECT count(*) FROM jobs WHERE status != 'queued'").fetchone()[0]
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            conn.close()
        finally:
            for process in processes:
                process.terminate()
                process.wait()
            if args.postgres:
                asyncio.run(_schema(args.postgres, f"DROP SCHEMA {schema} CASCADE"))

    bare, ours = results["bare aiohttp handler"], results["notifyd"]
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{args.connections} connections, median of {args.rounds} rounds of {args.seconds} s, "
        f"notifyd log level {args.log_level}, "
        f"{'without a worker' if args.no_worker else 'with the worker'} in the daemon, "
        f"backlog {args.backlog} queued jobs over {args.projects} projects"
    )
    print()
    print("| server | requests/s | p50 ms | p99 ms | non-200 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} |")
    print()
    print(f"ratio notifyd / bare: {ours['rps'] / bare['rps']:.2f}")
    if "notifyd on PostgreSQL" in results:
        pg = results["notifyd on PostgreSQL"]
        print(f"ratio notifyd on PostgreSQL / bare: {pg['rps'] / bare['rps']:.2f}")
    print(f"jobs stored by notifyd: {stored} (PRAGMA synchronous={sync}, 2 = FULL)")
    print(f"jobs the worker ended meanwhile: {ended}")


if __name__ == "__main__":
    main()
