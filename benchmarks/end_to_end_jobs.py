"""End-to-end jobs per second through the BIMserver emulator with a service that does nothing,
and each job's overhead beyond its download and its write-back.

    python benchmarks/end_to_end_jobs.py [--jobs 2000] [--concurrency 8] [--dialect 1.5]

The emulator runs in this process, notifyd (receiver, worker and its service processes) in a
subprocess. Jobs/s counts from the first notification sent to the last job recorded as
succeeded. Per-job timings come from each job's stored result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daemon import ROOT, start_notifyd, start_workers, wait_for_jobs_ended
from notifyd.emulator import BimServerEmulator
from notifyd.records import Dialect


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    """Several rounds, each with a fresh daemon; the median round by jobs/s is reported."""
    rounds = [await one_round(args) for _ in range(args.rounds)]
    for number, (rate, _, _) in enumerate(rounds, start=1):
        print(f"round {number}: {rate:.0f} jobs/s")
    rate, timings, sent = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
    overhead = [t["total"] - t["download"] - t["write_back"] for t in timings]
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; dialect {args.dialect}, {args.jobs} jobs on "
        f"{args.projects} projects, worker_concurrency {args.concurrency}, "
        + (
            f"{args.worker_processes} `notifyd worker` processes"
            if args.worker_processes
            else "the worker inside `notifyd serve`"
        )
    )
    print(
        f"median of {args.rounds} rounds: {rate:.0f} jobs/s; its notifications sent in {sent:.2f} s"
    )
    print()
    print("| per job, ms | p50 | p99 |")
    print("|---|---|---|")
    for name, values in (
        ("total (claim to recorded)", [t["total"] for t in timings]),
        ("download", [t["download"] for t in timings]),
        ("service", [t["service"] for t in timings]),
        ("write-back", [t["write_back"] for t in timings]),
        ("overhead beyond download and write-back", overhead),
    ):
        print(f"| {name} | {statistics.median(values):.2f} | {percentile(values, 99):.2f} |")


async def one_round(args: argparse.Namespace) -> tuple[float, list[dict[str, float]], float]:
    dialect = Dialect.BIMSIE1 if args.dialect == "1.4" else Dialect.BIMSERVER_15
    with tempfile.TemporaryDirectory(prefix="notifyd-bench-", dir=ROOT) as tmp:
        data = Path(tmp)
        model = data / "model.ifc"
        model.write_bytes(_small_model())
        async with BimServerEmulator(dialect, data_dir=data) as emulator:
            common = {
                "worker_concurrency": str(args.concurrency),
                "poll_seconds": "0.05",
                "log_level": "warning",
                "allowed_api_urls": emulator.url,
            }
            process, url = start_notifyd(
                data, emulator.url, run_worker=str(args.worker_processes == 0).lower(), **common
            )
            workers = start_workers(data, args.worker_processes, **common)
            try:
                service = await emulator.add_service(url, "bench-noop")
                projects = [emulator.add_project() for _ in range(args.projects)]
                started = time.perf_counter()
                semaphore = asyncio.Semaphore(32)

                async def check_in_and_notify(poid: int, count: int) -> None:
                    # As in BIMserver, a revision is notified right after its check-in, when it
                    # is its project's last (1.4 tokens may read only that one).
                    for _ in range(count):
                        roid = emulator.add_revision(poid, model)
                        async with semaphore:
                            await emulator.notify_new_revision(service, roid)

                per_project = [
                    len(range(i, args.jobs, len(projects))) for i in range(len(projects))
                ]
                await asyncio.gather(
                    *(check_in_and_notify(p, n) for p, n in zip(projects, per_project, strict=True))
                )
                sent = time.perf_counter()
                await wait_for_jobs_ended(url, args.jobs)
                finished = time.perf_counter()
            finally:
                for child in [process, *workers]:
                    child.terminate()
                    child.wait()
        conn = sqlite3.connect(data / "notifyd.sqlite3")
        rows = conn.execute("SELECT status, result FROM jobs").fetchall()
        conn.close()
    succeeded = [json.loads(r) for s, r in rows if s == "succeeded"]
    if len(succeeded) != args.jobs:
        raise SystemExit(f"only {len(succeeded)} of {args.jobs} jobs succeeded")
    return args.jobs / (finished - started), [r["timings_ms"] for r in succeeded], sent - started


def _small_model() -> bytes:
    """A real, small IFC file: the shared 4-walls sample when present, else a built one."""
    sample = ROOT.parent / "shared/ifc-samples/ifc2x3/4walls1floorSite.ifc"
    if sample.is_file():
        return sample.read_bytes()
    from tests.ifc_factory import build_model

    with tempfile.TemporaryDirectory() as tmp:
        return build_model(Path(tmp) / "m.ifc").read_bytes()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dialect", choices=["1.4", "1.5"], default="1.5")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="run the worker in N separate `notifyd worker` processes instead of in serve",
    )
    asyncio.run(run(parser.parse_args()))
