"""Durable acknowledgement of newRevision: notifyd (SQLite, synchronous=FULL) against a bare
aiohttp handler that stores nothing, both driven by wrk at the same concurrency in one run.

    python benchmarks/ack_throughput.py [--connections 32] [--seconds 15]

Needs wrk (Debian package ``wrk``). Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daemon import free_port, start_notifyd

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


def run_wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--log-level", default="info", help="notifyd's log level (info logs every request)"
    )
    parser.add_argument(
        "--with-worker", action="store_true", help="also run the worker inside notifyd serve"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="notifyd-bench-", dir=ROOT) as tmp:
        data = Path(tmp)
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_server.py"), str(bare_port)])
        # The receiver alone, as the bare handler is: with a worker in the same process the
        # figures would also count its attempts on jobs whose BIMserver does not exist.
        daemon, notifyd_url = start_notifyd(
            data,
            "http://127.0.0.1:8080",
            log_level=args.log_level,
            run_worker=str(args.with_worker).lower(),
        )
        notifyd_port = int(notifyd_url.rsplit(":", 1)[1])
        processes = [bare, daemon]
        try:
            wait_for(f"http://127.0.0.1:{bare_port}/json")
            wait_for(f"http://127.0.0.1:{notifyd_port}/healthz")
            servers = (("bare aiohttp handler", bare_port), ("notifyd", notifyd_port))
            for _, port in servers:
                run_wrk(f"http://127.0.0.1:{port}/json", args.connections, 3)  # warm-up
            # Alternate the servers round by round so that noise on a shared machine hits
            # both alike; report each one's median round.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
            for _ in range(args.rounds):
                for name, port in servers:
                    rounds[name].append(
                        run_wrk(f"http://127.0.0.1:{port}/json", args.connections, args.seconds)
                    )
            results = {
                name: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
                for name, runs in rounds.items()
            }
            conn = sqlite3.connect(data / "notifyd.sqlite3")
            stored = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            conn.close()
        finally:
            for process in processes:
                process.terminate()
                process.wait()

    bare, ours = results["bare aiohttp handler"], results["notifyd"]
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{args.connections} connections, median of {args.rounds} rounds of {args.seconds} s, "
        f"notifyd log level {args.log_level}, "
        f"{'with' if args.with_worker else 'without'} a worker in the daemon"
    )
    print()
    print("| server | requests/s | p50 ms | p99 ms | non-200 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} |")
    print()
    print(f"ratio notifyd / bare: {ours['rps'] / bare['rps']:.2f}")
    print(f"jobs stored by notifyd: {stored} (PRAGMA synchronous={sync}, 2 = FULL)")


if __name__ == "__main__":
    main()
