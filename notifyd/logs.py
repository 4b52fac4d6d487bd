"""structlog setup: JSON lines in production, console output in development, secrets redacted.

BIMserver tokens grant access to a user's models, so no processor downstream of
``redact_secrets`` ever sees one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog

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


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS


def _redact(value: Any) -> Any:
    """The value with every secret key's value replaced; the same object when it has none."""
    if isinstance(value, Mapping):
        redacted = {k: REDACTED if _is_secret(k) else _redact(v) for k, v in value.items()}
        return value if all(redacted[k] is v for k, v in value.items()) else redacted
    if isinstance(value, list | tuple):
        items = [_redact(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every secret key, at any depth, before anything renders it."""
    for key, value in event_dict.items():
        if _is_secret(key):
            event_dict[key] = REDACTED
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _redact(value)
    return event_dict


def _dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
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


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog for the process; stdlib logging (aiohttp, asyncio) goes the same way."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
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
        structlog.processors.format_exc_info,
        structlog.processors.StackInfoRenderer(),
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
