"""structlog setup: JSON lines in production, console output in development, secrets redacted.

BIMserver tokens grant access to a user's models, so no processor downstream of
``redact_secrets`` ever sees one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

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
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every secret key, at any depth, before anything renders it."""
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if _is_secret(key) else _redact(value)
    return event_dict


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog once per process; stdlib logging (aiohttp, asyncio) goes the same way."""
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
        renderer = structlog.processors.JSONRenderer()
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
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
    root.setLevel(numeric_level)
