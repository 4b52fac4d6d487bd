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

Answered only to ``metrics_allowed_ips`` (loopback by default); behind a proxy the client is
found through ``X-Forwarded-For`` from ``trusted_proxies``.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from notifyd.access import client_ip
from notifyd.bimserver.client import BimServerCall
from notifyd.hooks import HttpRequest, JobEvent, JobEventKind, JsonCall, hookimpl
from notifyd.records import JobStatus
from notifyd.web.keys import SETTINGS, STORAGE

# Seconds: from a no-op service (tens of ms) to a large model's analysis (tens of minutes).
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class PrometheusMetrics:
    """One set of series per app (its own registry, so that two apps in one process, as in
    tests, never mix their counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.json_calls = Counter(
            "notifyd_json_calls", "Calls on the JSON endpoint", ["method", "outcome"], registry=r
        )
        self.jobs = Gauge("notifyd_jobs", "Jobs by state", ["state"], registry=r)
        self.queue_wait = Histogram(
            "notifyd_job_queue_wait_seconds",
            "Time from a job being due to a worker claiming it",
            ["service"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_duration = Histogram(
            "notifyd_job_duration_seconds",
            "One attempt of a job, from claim to outcome",
            ["service", "outcome"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_events = Counter(
            "notifyd_job_events", "Job events by kind", ["event", "service"], registry=r
        )
        self.retries = Counter(
            "notifyd_job_retries",
            "Failed attempts that will be tried again",
            ["service"],
            registry=r,
        )
        self.failures = Counter(
            "notifyd_job_failures", "Failed attempts, retried or not", ["service"], registry=r
        )
        self.dead = Counter("notifyd_jobs_dead", "Jobs that died", ["service"], registry=r)
        self.bimserver_calls = Counter(
            "notifyd_bimserver_calls",
            "Exchanges with BIMserver",
            ["method", "outcome"],
            registry=r,
        )
        self.bimserver_latency = Histogram(
            "notifyd_bimserver_call_seconds",
            "Time of an exchange with BIMserver",
            ["method"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "notifyd_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "notifyd_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        for state in JobStatus:
            self.jobs.labels(state=str(state)).set(0)

    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{app[SETTINGS].base_path}/metrics", self.handle_metrics)

    @hookimpl
    def json_call(self, call: JsonCall) -> None:
        self.json_calls.labels(method=call.method, outcome=call.outcome).inc()

    @hookimpl
    def job_event(self, event: JobEvent) -> None:
        service = event.service
        self.job_events.labels(event=str(event.kind), service=service).inc()
        if event.kind is JobEventKind.CLAIMED and event.waited_seconds is not None:
            self.queue_wait.labels(service=service).observe(event.waited_seconds)
        if event.took_seconds is not None:
            self.job_duration.labels(service=service, outcome=str(event.kind)).observe(
                event.took_seconds
            )
        if event.kind in (JobEventKind.FAILED, JobEventKind.DEAD):
            self.failures.labels(service=service).inc()
        if event.kind is JobEventKind.FAILED:
            self.retries.labels(service=service).inc()
        if event.kind is JobEventKind.DEAD:
            self.dead.labels(service=service).inc()

    @hookimpl
    def bimserver_call(self, call: BimServerCall) -> None:
        self.bimserver_calls.labels(method=call.method, outcome=call.outcome).inc()
        self.bimserver_latency.labels(method=call.method).observe(call.seconds)

    @hookimpl
    def http_request(self, request: HttpRequest) -> None:
        self.http_requests.labels(
            route=request.route, method=request.method, status=str(request.status)
        ).inc()
        self.http_latency.labels(route=request.route).observe(request.seconds)

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
        for state, count in counts.items():
            self.jobs.labels(state=str(state)).set(count)
        # The text format Prometheus asks for (its Accept header), OpenMetrics included.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})
