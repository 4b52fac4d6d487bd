"""/metrics after an end-to-end run through the emulator: every series the operations issue
names, with the counts of what happened; answered to loopback only by default; absent when
disabled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyd.records import JobStatus
from tests.ifc_factory import build_model
from tests.stack import running_stack


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from the Prometheus text format."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def value(series: dict[str, float], name: str, **labels: str) -> float:
    """The sum over the samples of ``name`` carrying at least these labels."""
    total = 0.0
    for key, number in series.items():
        metric, _, rest = key.partition("{")
        if metric != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(have.get(k) == v for k, v in labels.items()):
            total += number
    return total


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(await response.text())


async def test_metrics_show_every_series_after_an_end_to_end_run(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path) as stack:
        job, _roid = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED
        # A refused call, so that outcome is counted too.
        async with aiohttp.ClientSession() as session:
            await session.post(f"{stack.url}/json", data=b"{not json")
        series = await scrape(stack.url)

    assert value(series, "notifyd_json_calls_total", method="newRevision", outcome="queued") == 1
    assert value(series, "notifyd_json_calls_total", outcome="refused") >= 1
    assert value(series, "notifyd_jobs", state="succeeded") == 1
    assert value(series, "notifyd_jobs", state="queued") == 0
    assert value(series, "notifyd_job_queue_wait_seconds_count", service="ifc-summary") == 1
    assert (
        value(
            series, "notifyd_job_duration_seconds_count", service="ifc-summary", outcome="succeeded"
        )
        == 1
    )
    for event in ("received", "claimed", "succeeded"):
        assert value(series, "notifyd_job_events_total", event=event, service="ifc-summary") == 1
    assert value(series, "notifyd_job_failures_total") == 0
    assert value(series, "notifyd_bimserver_calls_total", outcome="ok") >= 3
    assert value(series, "notifyd_bimserver_calls_total", method="/download", outcome="ok") == 1
    assert value(series, "notifyd_bimserver_call_seconds_count") >= 3
    assert value(series, "notifyd_http_requests_total", route="/json", method="POST") >= 2
    assert value(series, "notifyd_http_request_seconds_count", route="/json") >= 2


async def test_failures_retries_and_dead_jobs_are_counted(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path, max_attempts=2) as stack:
        job, _ = await stack.run("test-crash", model)
        series = await scrape(stack.url)
    assert job.status is JobStatus.DEAD
    assert value(series, "notifyd_jobs_dead_total", service="test-crash") == 1
    assert value(series, "notifyd_job_failures_total", service="test-crash") == job.attempts
    assert value(series, "notifyd_job_retries_total", service="test-crash") == job.attempts - 1


async def test_metrics_are_refused_outside_the_allowed_networks(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(metrics_allowed_ips=["10.0.0.0/8"]))
    response = await client.get("/metrics")
    assert response.status == 403
    assert "127.0.0.1" in (await response.json())["error"]


async def test_metrics_can_be_turned_off(make_client: Any, make_settings: Any) -> None:
    client = await make_client(make_settings(metrics_enabled=False))
    assert (await client.get("/metrics")).status == 404


@pytest.mark.parametrize("path", ["/s3cret/json"])
async def test_the_secret_path_never_becomes_a_label(
    make_client: Any, make_settings: Any, path: str
) -> None:
    client = await make_client(make_settings(secret_path="s3cret"))
    await client.post(path, data=b"{}")
    await client.get("/no/such/page")
    text = await (await client.get("/metrics")).text()
    assert "s3cret" not in text
    assert 'route="/[secret]/json"' in text
    assert 'route="unmatched"' in text
