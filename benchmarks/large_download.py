"""A large revision: a synthetic IFC file of at least 500 MB (a real file's DATA section
repeated with renumbered ids) is downloaded by notifyd and handed to a service that streams
through it. Reports the download rate and the peak RSS of the daemon and of the service
process.

    python benchmarks/large_download.py [--megabytes 520]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daemon import ROOT, peak_rss_mb, start_notifyd
from notifyd.emulator import BimServerEmulator, Grant

SOURCE = ROOT.parent / "shared/ifc-samples/large/IFC-houten_kozijnen.ifc"
REFERENCE = re.compile(rb"#(\d+)")


def synthesize(target: Path, megabytes: int) -> tuple[Path, str]:
    """Repeat the source's DATA section with every #id moved past the previous copy's."""
    if SOURCE.is_file():
        source, name = SOURCE.read_bytes(), SOURCE.name
    else:
        from tests.ifc_factory import build_model

        source = build_model(target.with_suffix(".seed.ifc"), walls=200).read_bytes()
        name = "a model built with ifcopenshell"
    head, _, rest = source.partition(b"DATA;")
    data, _, _tail = rest.rpartition(b"ENDSEC;")
    span = max(int(m) for m in REFERENCE.findall(data)) + 1
    with target.open("wb") as out:
        out.write(head + b"DATA;")
        copy = 0
        while out.tell() < megabytes * 1024 * 1024:
            offset = copy * span
            out.write(
                REFERENCE.sub(lambda m, shift=offset: b"#%d" % (int(m.group(1)) + shift), data)
            )
            copy += 1
        out.write(b"ENDSEC;\nEND-ISO-10303-21;\n")
    return target, f"{copy} copies of {name}"


async def curl_rate(
    emulator: BimServerEmulator, roid: int, data: Path, *, gzip: bool
) -> float | None:
    """The same download from the same emulator by curl into a file: the loopback baseline,
    asking for gzip (and decompressing) when notifyd did."""
    if shutil.which("curl") is None:
        return None
    grant = Grant(read_roids={roid})
    token = emulator.issue_token(grant)
    oid = next(iter(emulator.state.serializers))
    action = emulator.api.start_download([roid], oid, grant, sync=True)
    curl = await asyncio.create_subprocess_exec(
        "curl",
        *(["--compressed"] if gzip else []),
        "-s",
        "-o",
        str(data / "curl.ifc"),
        "-w",
        "%{time_total}",
        f"{emulator.url}/download?token={token}&topicId={action}",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await curl.communicate()
    # The model's size over the time taken: with gzip, curl's own speed counts compressed bytes.
    return (data / "curl.ifc").stat().st_size / 1e6 / float(out)


def child_peak_rss(pid: int) -> float:
    peaks = []
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text().split()
            if int(stat[3]) == pid:
                peaks.append(peak_rss_mb(int(child.name)))
        except (OSError, IndexError):
            continue
    return max(peaks, default=float("nan"))


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="notifyd-bench-large-", dir=ROOT) as tmp:
        data = Path(tmp)
        started = time.perf_counter()
        model, origin = synthesize(data / "large.ifc", args.megabytes)
        size = model.stat().st_size
        print(
            f"synthesized {size / 1e6:.0f} MB ({origin}) in {time.perf_counter() - started:.1f} s"
        )
        async with BimServerEmulator(data_dir=data) as emulator:
            process, url = start_notifyd(
                data,
                emulator.url,
                worker_concurrency="1",
                poll_seconds="0.05",
                log_level="info",
                download_gzip=str(args.gzip).lower(),
            )
            try:
                service = await emulator.add_service(url, "bench-stream")
                roid = emulator.add_revision(emulator.add_project(), model)
                await emulator.notify_new_revision(service, roid)
                async with aiohttp.ClientSession() as session:
                    while True:
                        async with session.get(f"{url}/healthz") as response:
                            jobs = (await response.json())["jobs"]
                        if jobs["succeeded"] + jobs["dead"] >= 1:
                            break
                        await asyncio.sleep(0.2)
                daemon_peak = peak_rss_mb(process.pid)
                service_peak = child_peak_rss(process.pid)
            finally:
                process.terminate()
                process.wait()
            written = json.loads(emulator.extended_data_of(roid)[0]["data"])
            baseline = await curl_rate(emulator, roid, data, gzip=args.gzip)
        conn = sqlite3.connect(data / "notifyd.sqlite3")
        status, result = conn.execute("SELECT status, result FROM jobs").fetchone()
        conn.close()
    timings = json.loads(result)["timings_ms"]
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    )
    print(
        f"job {status}; the service read {written['bytes'] / 1e6:.0f} MB, {written['lines']} lines"
    )
    print(f"download_gzip = {str(args.gzip).lower()} (the emulator gzips when asked, as BIMserver)")
    print(
        f"download: {size / 1e6:.0f} MB in {timings['download'] / 1000:.2f} s = "
        f"{size / 1e6 / (timings['download'] / 1000):.0f} MB/s"
    )
    if baseline:
        print(f"baseline: curl from the same emulator into a file: {baseline:.0f} MB/s")
    print(f"peak RSS: notifyd daemon {daemon_peak:.0f} MB, service process {service_peak:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=520)
    parser.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="notifyd's download_gzip (the default, true, is what users run)",
    )
    asyncio.run(run(parser.parse_args()))
