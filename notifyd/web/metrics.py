"""Prometheus metrics, as a plugin on notifyd's hooks (shipped and enabled by default;
``metrics_enabled = false`` leaves it out): it adds ``<base_path>/metrics`` and counts what
the hooks announce. Nothing in the receiver or the worker knows it exists.

The series, each with its labels:

- ``notifyd_json_calls_total{method, outcome}``: calls on the JSON endpoint (queued,
  duplicate, answered, refused, not_stored);
- ``notifyd_jobs{state}``: jobs by state, read from the database at each scrape;
- ``notifyd_job_queue_wait_seconds{service}``: from due to claimed (histogram);
- ``notifyd_job_duration_seconds{service, outcome}``: one attempt, claim to outcome;
- ``notifyd_job_events_total{event, service}``: received, claimed, succeeded, failed
  (will be retried), dead, cancelled;
- ``notifyd_job_retries_total{service}``, ``notifyd_job_failures_total{service}``,
  ``notifyd_jobs_dead_total{service}``;
- ``notifyd_bimserver_calls_total{method, outcome}`` and
  ``notifyd_bimserver_call_seconds{method}``;
- ``notifyd_http_requests_total{route, method, status}`` and
  ``notifyd_http_request_seconds{route}`` (the route's pattern: never a raw path, never
  the secret path).

Every event lands on the event loop's thread, so the plugin tallies in plain dictionaries
(no lock, no ``labels()`` lookup: a counted request costs about a microsecond) and hands them
to prometheus-client as a custom collector at scrape time, which writes the text or
OpenMetrics format the scraper asks for. With prometheus-client's own Counter and Histogram
objects the acknowledgement path was 8 % slower (an A/B of the receiver, worker off).

Answered only to ``metrics_allowed_ips`` (loopback by default); behind a proxy the client is
found through ``X-Forwarded-For`` from ``trusted_proxies``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from notifyd.access import client_ip
from notifyd.bimserver.client import BimServerCall
from notifyd.hooks import HttpRequest, JobEvent, JobEventKind, JsonCall, hookimpl
from notifyd.records import JobStatus
from notifyd.web.keys import SETTINGS, STORAGE

# Seconds: from a no-op service (tens of ms) to a large model's analysis (tens of minutes).
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

Labels = tuple[str, ...]


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        return out


@dataclass
class _Counters:
    name: str
    help: str
    labels: Labels
    values: defaultdict[Labels, int] = field(default_factory=lambda: defaultdict(int))

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=list(self.labels))
        for values, count in self.values.items():
            family.add_metric(list(values), count)
        return family


@dataclass
class _Histograms:
    name: str
    help: str
    labels: Labels
    bounds: tuple[float, ...]
    values: dict[Labels, _Histogram] = field(default_factory=dict)

    def observe(self, values: Labels, seconds: float) -> None:
        histogram = self.values.get(values)
        if histogram is None:
            histogram = self.values[values] = _Histogram(self.bounds)
        histogram.observe(seconds)

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=list(self.labels))
        for values, histogram in self.values.items():
            family.add_metric(list(values), histogram.buckets(), histogram.total)
        return family


class PrometheusMetrics:
    """One set of series per app (two apps in one process, as in tests, never mix)."""

    def __init__(self) -> None:
        self.json_calls = _Counters(
            "notifyd_json_calls", "Calls on the JSON endpoint", ("method", "outcome")
        )
        self.job_events = _Counters(
            "notifyd_job_events", "Job events by kind", ("event", "service")
        )
        self.retries = _Counters(
            "notifyd_job_retries", "Failed attempts that will be tried again", ("service",)
        )
        self.failures = _Counters(
            "notifyd_job_failures", "Failed attempts, retried or not", ("service",)
        )
        self.dead = _Counters("notifyd_jobs_dead", "Jobs that died", ("service",))
        self.bimserver_calls = _Counters(
            "notifyd_bimserver_calls", "Exchanges with BIMserver", ("method", "outcome")
        )
        self.http_requests = _Counters(
            "notifyd_http_requests", "HTTP requests answered", ("route", "method", "status")
        )
        self.queue_wait = _Histograms(
            "notifyd_job_queue_wait_seconds",
            "Time from a job being due to a worker claiming it",
            ("service",),
            _JOB_BUCKETS,
        )
        self.job_duration = _Histograms(
            "notifyd_job_duration_seconds",
            "One attempt of a job, from claim to outcome",
            ("service", "outcome"),
            _JOB_BUCKETS,
        )
        self.bimserver_latency = _Histograms(
            "notifyd_bimserver_call_seconds",
            "Time of an exchange with BIMserver",
            ("method",),
            _CALL_BUCKETS,
        )
        self.http_latency = _Histograms(
            "notifyd_http_request_seconds",
            "Time to answer an HTTP request",
            ("route",),
            _CALL_BUCKETS,
        )
        self.jobs: dict[str, int] = {str(state): 0 for state in JobStatus}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """prometheus-client's custom-collector protocol: the tallies as metric families."""
        yield self.json_calls.family()
        gauge = GaugeMetricFamily("notifyd_jobs", "Jobs by state", labels=["state"])
        for state, count in self.jobs.items():
            gauge.add_metric([state], count)
        yield gauge
        for tally in (
            self.job_events,
            self.retries,
            self.failures,
            self.dead,
            self.bimserver_calls,
            self.http_requests,
            self.queue_wait,
            self.job_duration,
            self.bimserver_latency,
            self.http_latency,
        ):
            yield tally.family()

    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{app[SETTINGS].base_path}/metrics", self.handle_metrics)

    @hookimpl
    def json_call(self, call: JsonCall) -> None:
        self.json_calls.values[(call.method, call.outcome)] += 1

    @hookimpl
    def job_event(self, event: JobEvent) -> None:
        service, kind = event.service, str(event.kind)
        self.job_events.values[(kind, service)] += 1
        if event.kind is JobEventKind.CLAIMED and event.waited_seconds is not None:
            self.queue_wait.observe((service,), event.waited_seconds)
        if event.took_seconds is not None:
            self.job_duration.observe((service, kind), event.took_seconds)
        if event.kind in (JobEventKind.FAILED, JobEventKind.DEAD):
            self.failures.values[(service,)] += 1
        if event.kind is JobEventKind.FAILED:
            self.retries.values[(service,)] += 1
        if event.kind is JobEventKind.DEAD:
            self.dead.values[(service,)] += 1

    @hookimpl
    def bimserver_call(self, call: BimServerCall) -> None:
        self.bimserver_calls.values[(call.method, call.outcome)] += 1
        self.bimserver_latency.observe((call.method,), call.seconds)

    @hookimpl
    def http_request(self, request: HttpRequest) -> None:
        self.http_requests.values[(request.route, request.method, str(request.status))] += 1
        self.http_latency.observe((request.route,), request.seconds)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        settings = request.app[SETTINGS]
        address = client_ip(
            request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxies
        )
        if address is None or not any(address in net for net in settings.metrics_allowed_ips):
            return web.json_response(
                {"error": f"metrics are not served to {address or 'an unknown address'}"},
                status=403,
            )
        counts = await request.app[STORAGE].counts()
        self.jobs.update({str(state): count for state, count in counts.items()})
        # The text format Prometheus asks for (its Accept header), OpenMetrics included.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})
