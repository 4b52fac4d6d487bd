"""BIM-bots uploads: a large model posted by curl to notifyd's resource URL against the same
file posted to a bare aiohttp handler that streams to disk, alternating; notifyd's peak RSS;
and the synchronous round trip of a no-op service on a small model.

    python benchmarks/bots_upload.py [--megabytes 500] [--rounds 3] [--calls 200]

As users run it: ``notifyd serve`` with its worker, a token from the OAuth code flow, the
model posted with ``Authorization: Bearer``, ``Input-Type`` and ``Output-Type``. The large
upload asks ``Accept-Flow: ASYNC`` so that it measures the upload (stored, fsynced, job
queued) and not the service. Prints Markdown for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daemon import die_with_parent, free_port, peak_rss_mb, start_notifyd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADERS = {"Input-Type": "IFC_STEP_2X3TC1", "Output-Type": "UNSTRUCTURED_UTF8_TEXT_1_0"}


def access_token(base: str) -> str:
    """The code flow as a client and its user go through it."""
    redirect = "http://127.0.0.1/callback"
    client = requests.post(
        f"{base}/oauth/register", json={"redirect_uris": [redirect]}, timeout=10
    ).json()
    url = (
        f"{base}/oauth/authorize?client_id={client['client_id']}&response_type=code"
        "&service=bench-noop"
    )
    page = requests.get(url, timeout=10).text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    form.update(decision="allow", username="bench", password="benchmark", create="on")  # noqa: S106
    answer = requests.post(f"{base}/oauth/authorize", data=form, timeout=10, allow_redirects=False)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    token = requests.post(
        f"{base}/oauth/access",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    return str(token.json()["access_token"])


def make_model(path: Path, megabytes: int) -> None:
    """A STEP-looking file of the given size (its content does not matter to the upload)."""
    line = b"#1=IFCWALL('0abcdefghijklmnopqrstu',$,'Wall',$,$,$,$,$);\n" * 1024
    with path.open("wb") as file:
        while file.tell() < megabytes * 1024 * 1024:
            file.write(line)


def curl_upload(url: str, path: Path, headers: dict[str, str]) -> tuple[float, int]:
    """Bytes per second as curl measured them, and the status."""
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_upload} %{http_code}"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-H", "Content-Type:", "-H", "Expect:", "--data-binary", f"@{path}", url]
    speed, status = subprocess.run(
        command, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(speed), int(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="notifyd-bots-bench-", dir=ROOT) as tmp:
        folder = Path(tmp)
        model = folder / "large.ifc"
        make_model(model, args.megabytes)
        small = folder / "small.ifc"
        make_model(small, 1)
        small.write_bytes(small.read_bytes()[:40_000])
        (folder / "bare").mkdir()
        data = folder / "data"
        data.mkdir(mode=0o700)
        bare_port = free_port()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "bare_upload_server.py"),
                    str(bare_port),
                    str(folder / "bare"),
                ],
                preexec_fn=die_with_parent,
            )
        ]
        try:
            daemon, base = start_notifyd(
                data,
                "http://127.0.0.1:9",
                bots_max_upload_bytes=str(4 * 1024**3),
                log_level="info",
                worker_concurrency="2",
            )
            processes.append(daemon)
            time.sleep(1)
            token = access_token(base)
            auth = {"Authorization": f"Bearer {token}", **HEADERS}
            rates: dict[str, list[float]] = {"bare": [], "notifyd": []}
            for _ in range(args.rounds):
                speed, status = curl_upload(f"http://127.0.0.1:{bare_port}/upload", model, {})
                assert status == 200, status
                rates["bare"].append(speed)
                speed, status = curl_upload(
                    f"{base}/services/bench-noop", model, {**auth, "Accept-Flow": "ASYNC"}
                )
                assert status == 202, status
                rates["notifyd"].append(speed)
            rss = peak_rss_mb(daemon.pid)
            session = requests.Session()
            session.headers.update(auth)
            body = small.read_bytes()
            times = []
            for _ in range(args.calls):
                started = time.perf_counter()
                answer = session.post(f"{base}/services/bench-noop", data=body, timeout=60)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
        finally:
            for process in processes:
                process.terminate()
                process.wait()

    mb = 1024 * 1024
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; {args.megabytes} MB model, {args.rounds} alternating "
        f"rounds, curl; then {args.calls} sequential synchronous calls on a 40 kB model"
    )
    print()
    print("| server | MB/s per round | median MB/s |")
    print("|---|---|---|")
    for name, values in rates.items():
        rounds = ", ".join(f"{v / mb:.0f}" for v in values)
        print(f"| {name} | {rounds} | {statistics.median(values) / mb:.0f} |")
    ratio = statistics.median(rates["notifyd"]) / statistics.median(rates["bare"])
    print()
    print(f"ratio notifyd / bare: {ratio:.2f}; notifyd peak RSS: {rss:.0f} MB")
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"sync round trip, no-op service, 40 kB model: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
