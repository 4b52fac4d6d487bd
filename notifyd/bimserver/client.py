"""Calls to a BIMserver's JSON API with a notification's token, in its 1.4 or 1.5 dialect.

Every call is built from the method table (``notifyd.protocol.bimserver.api``), so a parameter
name or interface the dialect lacks is a programming error here, never a request BIMserver
refuses. Every BIMserver exception becomes a ``BimServerError`` classified by the fault table;
refused or broken connections, 5xx and 429 answers become ``BimServerDown`` (waited out);
a call that times out is ``BimServerUnavailable`` (retried, spending an attempt).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog

from notifyd.errors import BimServerDown, BimServerError, BimServerUnavailable
from notifyd.protocol.bimserver import api, envelope
from notifyd.protocol.bimserver.faults import Verdict, classify
from notifyd.records import Dialect

log = structlog.get_logger("notifyd.bimserver")


def bimserver_error(exception_type: str, message: str, call: str) -> BimServerError:
    rule = classify(exception_type, message)
    return BimServerError(
        message,
        exception_type=exception_type,
        call=call,
        permanent=rule.verdict is not Verdict.TRANSIENT,
        refuses_access=rule.verdict is Verdict.REFUSED,
        not_found=rule.verdict is Verdict.NOT_FOUND,
    )


@dataclass(slots=True)
class ServerFacts:
    """What notifyd learnt about one BIMserver: its dialect, and lookups (serializer and
    extended data schema ids, project schemas) that rarely change, kept for ``ttl`` seconds."""

    dialect: Dialect
    ttl: float = 300.0
    lookups: dict[str, tuple[float, Any]] = field(default_factory=dict)

    def recall(self, key: str) -> Any:
        found = self.lookups.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl:
            return None
        return found[1]

    def remember(self, key: str, value: Any) -> None:
        self.lookups[key] = (time.monotonic(), value)

    async def remembered(self, key: str, look_up: Callable[[], Awaitable[Any]]) -> Any:
        known = self.recall(key)
        if known is None:
            known = await look_up()
            self.remember(key, known)
        return known


@dataclass(frozen=True, slots=True, kw_only=True)
class BimServerCall:
    """One HTTP exchange with a BIMserver, for whoever watches (the metrics): ``outcome`` is
    ok, exception (BIMserver answered with an exception), timeout, unreachable,
    server_error (5xx, 429, or not a BIMserver answer) or http_error (another status)."""

    method: str
    outcome: str
    seconds: float


CallObserver = Callable[[BimServerCall], None]


class BimServerClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        *,
        token: str | None,
        dialect: Dialect,
        facts: ServerFacts | None = None,
        call_timeout: float = 60.0,
        progress_poll: float = 0.05,
        download_timeout: float = 3600.0,
        download_gzip: bool = True,
        observer: CallObserver | None = None,
    ) -> None:
        self.session = session
        self.observer = observer
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.dialect = dialect
        self.facts = facts or ServerFacts(dialect)
        self.call_timeout = call_timeout
        self.progress_poll = progress_poll
        self.download_timeout = download_timeout
        self.download_gzip = download_gzip

    def method(self, name: str) -> api.Method:
        return api.method(self.dialect, name)

    def _request(self, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
        declared = self.method(name)
        expected = [p.name for p in declared.params]
        if sorted(expected) != sorted(parameters):
            raise TypeError(
                f"{declared.qualified} takes {expected} in {self.dialect}, not {sorted(parameters)}"
            )
        return envelope.request(declared.interface, declared.name, parameters)

    async def call(self, name: str, /, *, timeout: float | None = None, **parameters: Any) -> Any:
        """One call; a null result (BIMserver's ``{}``) comes back as None."""
        outcome = (await self._post({"request": self._request(name, parameters)}, name, timeout))[0]
        if outcome.failed:
            raise bimserver_error(outcome.exception_type or "", outcome.message, name)
        return outcome.result

    async def optional(self, name: str, /, **parameters: Any) -> Any:
        """A lookup that throws when it finds nothing (BIMserver's getXByY): None then."""
        try:
            return await self.call(name, **parameters)
        except BimServerError as exc:
            if exc.not_found:
                return None
            raise

    async def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[envelope.Outcome]:
        """Several calls in one request; each answers or fails on its own."""
        if not calls:
            return []
        body = {"requests": [self._request(name, params) for name, params in calls]}
        return await self._post(body, "batch", None, batch=True)

    async def post(
        self,
        path: str,
        name: str,
        *,
        data: Any,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One POST to BIMserver, never following a redirect: the token stays with the
        allowlisted server. Network failures, 5xx and 429 are BimServerDown; a timeout is
        BimServerUnavailable."""
        started = time.perf_counter()
        try:
            async with self.session.post(
                f"{self.api_url}{path}",
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                status = response.status
        except TimeoutError as exc:
            self.observe(name, "timeout", started)
            # BIMserver took the call and did not answer in time: the call may be too big for
            # the timeout, which waiting for the server cannot fix, so the attempt counts and
            # the server's other jobs go on.
            raise BimServerUnavailable(f"{name}: {describe_network_error(exc)}") from exc
        except aiohttp.ClientError as exc:
            self.observe(name, "unreachable", started)
            raise BimServerDown(f"{name}: {describe_network_error(exc)}") from exc
        if status >= 500 or status == 429:
            self.observe(name, "server_error", started)
            raise BimServerDown(f"{name}: BIMserver answered HTTP {status}")
        if path != "/json":
            self.observe(name, "ok" if status < 300 else "http_error", started)
        return status, payload

    def observe(self, method: str, outcome: str, started: float) -> None:
        if self.observer is not None:
            seconds = time.perf_counter() - started
            self.observer(BimServerCall(method=method, outcome=outcome, seconds=seconds))

    async def _post(
        self, body: dict[str, Any], name: str, timeout: float | None, *, batch: bool = False
    ) -> list[envelope.Outcome]:
        if self.token is not None:
            body["token"] = self.token
        started = time.perf_counter()
        status, payload = await self.post(
            "/json",
            name,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json; charset=UTF-8"},
            timeout=timeout or self.call_timeout,
        )
        if status == 404:
            self.observe(name, "server_error", started)
            # Tomcat answers 404 while it (re)deploys BIMserver's web application.
            raise BimServerDown(f"{name}: no BIMserver JSON API at {self.api_url}/json (HTTP 404)")
        if status != 200:
            self.observe(name, "http_error", started)
            # JsonApiServlet answers 403 to a refused Origin; other codes come from a proxy.
            raise BimServerError(
                f"HTTP {status} from {self.api_url}/json", call=name, permanent=True
            )
        try:
            outcomes = envelope.read_answer(orjson.loads(payload), batch=batch)
        except (orjson.JSONDecodeError, envelope.MalformedAnswer) as exc:
            self.observe(name, "server_error", started)
            raise BimServerDown(
                f"{name}: not a BIMserver answer ({exc}): {payload[:120]!r}"
            ) from exc
        self.observe(name, "exception" if any(o.failed for o in outcomes) else "ok", started)
        return outcomes


async def detect_dialect(
    session: aiohttp.ClientSession, api_url: str, *, timeout: float = 30.0
) -> Dialect | None:
    """1.4 lists Bimsie1AuthInterface among its interfaces (MetaInterface needs no token);
    None when BIMserver won't say."""
    client = BimServerClient(session, api_url, token=None, dialect=Dialect.BIMSERVER_15)
    try:
        interfaces = await client.call("getServiceInterfaces", timeout=timeout)
    except BimServerError:
        return None
    names = {item.get("simpleName") for item in interfaces or [] if isinstance(item, dict)}
    return Dialect.BIMSIE1 if "Bimsie1AuthInterface" in names else Dialect.BIMSERVER_15


class ServerCache:
    """One dialect probe per BIMserver; falls back to the dialect the notification came in."""

    def __init__(self) -> None:
        self._facts: dict[str, ServerFacts] = {}
        self._lock = asyncio.Lock()

    async def facts_for(
        self, session: aiohttp.ClientSession, api_url: str, fallback: Dialect
    ) -> ServerFacts:
        if api_url in self._facts:
            return self._facts[api_url]
        async with self._lock:
            if api_url not in self._facts:
                detected = await detect_dialect(session, api_url)
                self._facts[api_url] = ServerFacts(detected or fallback)
                log.info("bimserver_dialect", api_url=api_url, dialect=str(detected or fallback))
            return self._facts[api_url]

    def forget_lookups(self, api_url: str) -> None:
        """After a failure, look everything up afresh: a serializer may have been disabled."""
        facts = self._facts.get(api_url)
        if facts is not None:
            facts.lookups.clear()


def describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
