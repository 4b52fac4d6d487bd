"""Jobs per second completed by one, two and three `notifyd worker` processes over a backlog,
on PostgreSQL against SQLite, with a service that does nothing and one that sleeps 50 ms.

    python benchmarks/postgres_scaling.py [--jobs 600] [--concurrency 4]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

As users run it: `notifyd serve` (worker off) receives the notifications from an emulated
BIMserver in this process; once the backlog is stored, N worker processes start and the clock
runs until the last job is recorded as succeeded; each job downloads its revision, runs the
service in a service process and writes extended data back. The backends alternate for each
configuration. Prints a Markdown table for the README.
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

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daemon import ROOT, start_notifyd, start_workers, wait_for_jobs_ended
from notifyd.emulator import BimServerEmulator


async def measure(
    backend: str, service_id: str, workers: int, args: argparse.Namespace, model: bytes
) -> float:
    schema = f"bench_{secrets.token_hex(4)}"
    settings: dict[str, str] = {
        "worker_concurrency": str(args.concurrency),
        "poll_seconds": "0.2",
        "log_level": "warning",
    }
    if backend == "postgres":
        conn = await asyncpg.connect(args.postgres)
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.close()
        separator = "&" if "?" in args.postgres else "?"
        settings["database_url"] = f"{args.postgres}{separator}search_path={schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="notifyd-scale-", dir=ROOT) as tmp:
            data = Path(tmp)
            path = data / "model.ifc"
            path.write_bytes(model)
            async with BimServerEmulator(data_dir=data) as emulator:
                daemon, url = start_notifyd(
                    data,
                    emulator.url,
                    run_worker="false",
                    allowed_api_urls=emulator.url,
                    **settings,
                )
                processes = [daemon]
                try:
                    service = await emulator.add_service(url, service_id)
                    projects = [emulator.add_project() for _ in range(args.projects)]
                    limit = asyncio.Semaphore(32)

                    async def notify(index: int) -> None:
                        roid = emulator.add_revision(projects[index % len(projects)], path)
                        async with limit:
                            await emulator.notify_new_revision(service, roid)

                    await asyncio.gather(*(notify(i) for i in range(args.jobs)))
                    started = time.perf_counter()
                    processes += start_workers(
                        data, workers, allowed_api_urls=emulator.url, **settings
                    )
                    jobs = await wait_for_jobs_ended(url, args.jobs)
                    elapsed = time.perf_counter() - started
                    if jobs["dead"]:
                        raise SystemExit(f"{jobs['dead']} jobs died on {backend}")
                finally:
                    for process in processes:
                        process.terminate()
                        process.wait()
    finally:
        if backend == "postgres":
            conn = await asyncpg.connect(args.postgres)
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()
    return args.jobs / elapsed


async def main(args: argparse.Namespace) -> None:
    from benchmarks.end_to_end_jobs import _small_model

    model = _small_model()
    results: dict[tuple[str, int, str], float] = {}
    for service_id in ("bench-noop", "bench-sleep"):
        for workers in (1, 2, 3):
            for backend in ("sqlite", "postgres"):
                rate = await measure(backend, service_id, workers, args, model)
                results[(service_id, workers, backend)] = rate
                print(f"{service_id} {workers} workers {backend}: {rate:.0f} jobs/s", flush=True)
    print()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; {args.jobs} jobs over {args.projects} projects per run, "
        f"worker_concurrency {args.concurrency} per process"
    )
    print()
    print("| service | worker processes | SQLite jobs/s | PostgreSQL jobs/s |")
    print("|---|---|---|---|")
    for service_id in ("bench-noop", "bench-sleep"):
        for workers in (1, 2, 3):
            print(
                f"| {service_id} | {workers} | {results[(service_id, workers, 'sqlite')]:.0f} | "
                f"{results[(service_id, workers, 'postgres')]:.0f} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "NOTIFYD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    asyncio.run(main(parser.parse_args()))
