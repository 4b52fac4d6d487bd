"""structlog setup: JSON lines in production, console output in development, secrets redacted.

BIMserver tokens grant access to a user's models, so no processor downstream of
``redact_secrets`` ever sees one: secret keys are replaced at any depth, and a secret written
into text (``?token=…`` in a URL, ``"token":"…"`` in a body or a validation message, an
exception's traceback) is cut out by ``scrub_text``, which the worker also applies to the
errors it stores.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import sys
import time
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog

from notifyd.errors import JobCancelled, JobFailure

REDACTED = "[redacted]"

SECRET_KEYS = frozenset(
    {
        "token",
        "usertoken",
        "user_token",
        "access_token",
        "refresh_token",
        "client_secret",
        "password",
        "authorization",
        "code",
        "secret",
        "secret_path",
    }
)


_SECRET_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9_])(token|usertoken|user_token|access_token|refresh_token|client_secret"
    r"|password|secret|authorization)(\\?[\"']?\s*[=:]\s*\[?\s*\\?[\"']?)"
    r"(?:bearer\s+)?([^\s\"'&,;\]\}\\]+)",
    re.IGNORECASE,
)
# A cheap test before the regular expression: most text names no secret at all.
_HINT = re.compile("oken|OKEN|assword|ecret|uthorization")


def scrub_text(text: str) -> str:
    """``text`` with every value written after a secret's name cut out."""
    if _HINT.search(text) is None:
        return text
    return _SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


# Log lines use a handful of keys: each is lowered and looked up once, not on every line.
_KEY_VERDICTS: dict[str, bool] = {}
_KEY_VERDICTS_MAX = 4096
# Values that can hold no secret, tested by exact type before any ABC check.
_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def _is_secret(key: object) -> bool:
    if not isinstance(key, str):
        return False
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = key.lower() in SECRET_KEYS
        if len(_KEY_VERDICTS) < _KEY_VERDICTS_MAX:
            _KEY_VERDICTS[key] = verdict
    return verdict


def _redact(value: Any) -> Any:
    """The value with every secret key's value replaced and every string scrubbed; the same
    object when it has none."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        redacted = {k: REDACTED if _is_secret(k) else _redact(v) for k, v in value.items()}
        return value if all(redacted[k] is v for k, v in value.items()) else redacted
    if isinstance(value, list | tuple):
        items = [_redact(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def describe_failure(exc: BaseException) -> str:
    """What a failed job's history, the log and the waiting user are told; never a secret."""
    if isinstance(exc, JobFailure | JobCancelled):
        return scrub_text(exc.message)
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return scrub_text(f"{type(exc).__name__}: {exc}")


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every secret key, at any depth, and cut secrets out of every
    string, before anything renders it."""
    verdicts = _KEY_VERDICTS
    for key, value in event_dict.items():
        secret = verdicts.get(key)
        if secret is None:
            secret = _is_secret(key)
        if secret:
            event_dict[key] = REDACTED
        elif type(value) in _PLAIN_TYPES:
            continue
        elif isinstance(value, str):
            scrubbed = scrub_text(value)
            if scrubbed is not value:
                event_dict[key] = scrubbed
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _redact(value)
    return event_dict


def exception_details(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """An exception's type, message and traceback as fields of their own.

    ``log.exception`` (and any ``exc_info``) gets them; the text is scrubbed later by
    ``redact_secrets`` like every other string."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is None and method == "exception":
        exc_info = True
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    exc_type, exc, tb = exc_info
    if exc is None:
        return event_dict
    event_dict["error_type"] = exc_type.__qualname__
    event_dict["error"] = str(exc)
    event_dict["exception"] = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
    return event_dict


class _Timestamp:
    """ISO 8601 UTC with milliseconds; the seconds are formatted once per second, not per line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1000):03d}Z"
        return event_dict


def _dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


_LEVELS = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
}
_threshold = [20]


def _drop_below_threshold(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if _LEVELS.get(method, 20) < _threshold[0]:
        raise structlog.DropEvent
    return event_dict


# One list, changed in place by configure_logging, so that loggers cached on first use
# (a lazy proxy re-binding on every call costs more than the log line) still follow it.
_PROCESSORS: list[Any] = []


class _StderrLogger:
    """Writes to whatever sys.stderr is at the time, so redirected and captured output works."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = err = critical = exception = fatal = msg


class JobLines:
    """The last log lines of the last jobs this process logged about, for the admin page of a
    job (bounded: ``per_job`` lines of ``jobs`` jobs). Kept after redaction, so no secret."""

    def __init__(self, jobs: int = 500, per_job: int = 100) -> None:
        self.jobs = jobs
        self.per_job = per_job
        self._lines: collections.OrderedDict[int, collections.deque[dict[str, Any]]] = (
            collections.OrderedDict()
        )

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        job_id = event_dict.get("job_id")
        if isinstance(job_id, int):
            lines = self._lines.get(job_id)
            if lines is None:
                lines = self._lines[job_id] = collections.deque(maxlen=self.per_job)
                while len(self._lines) > self.jobs:
                    self._lines.popitem(last=False)
            lines.append(dict(event_dict))
        return event_dict

    def of(self, job_id: int) -> list[dict[str, Any]]:
        return list(self._lines.get(job_id, ()))


JOB_LINES = JobLines()


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog for the process; stdlib logging (aiohttp, asyncio) goes the same way."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _Timestamp(),
        exception_details,
        redact_secrets,
        JOB_LINES,
    ]
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    _threshold[0] = _LEVELS[level]
    _PROCESSORS[:] = [
        _drop_below_threshold,
        *shared,
        renderer,
    ]
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.BoundLogger,
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
