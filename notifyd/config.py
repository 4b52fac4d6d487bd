"""Settings: defaults, then a TOML file, then ``NOTIFYD_*`` environment variables, then CLI flags.

This is the only module that reads the environment. Relative paths in the TOML file are
resolved against the file's own folder, so a config works wherever the daemon is started.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from notifyd.errors import ConfigError

ENV_PREFIX = "NOTIFYD_"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseModel):
    """Every setting of the daemon; the example config documents each one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)
    base_path: str = ""
    public_url: str | None = None
    data_dir: Path = Path("data")
    # The job database: a SQLite file path (default <data_dir>/notifyd.sqlite3) or a
    # postgresql:// URL that several hosts share.
    database_url: str | None = None
    # None: the example profiles shipped with notifyd (see shipped_folder).
    profiles_dir: Path | None = None
    service_modules: list[str] = Field(default_factory=lambda: ["notifyd.builtin_services"])
    # Further plugin modules (notifyd.hooks): routes, commands, job events, metrics, ...
    plugins: list[str] = Field(default_factory=list)
    # Prometheus metrics at <base_path>/metrics (a plugin shipped with notifyd), answered only
    # to these networks (after X-Forwarded-For from trusted_proxies).
    metrics_enabled: bool = True
    metrics_allowed_ips: list[IPNetwork] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ]
    )

    provider_name: str = "notifyd"
    provider_company_url: str = ""
    provider_icon_url: str = ""  # shown beside the provider's name in BIM-bots clients

    allowed_api_urls: list[str] = Field(default_factory=list)
    allowed_ips: list[IPNetwork] = Field(default_factory=list)
    trusted_proxies: list[IPNetwork] = Field(default_factory=list)
    secret_path: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # A request body must arrive within body_timeout_seconds, never pausing longer than
    # body_idle_seconds; bodies being read hold at most body_budget_bytes between them
    # (beyond 64 KiB each), so stalled uploads cannot fill the memory.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    body_idle_seconds: float = Field(default=10.0, gt=0)
    body_budget_bytes: int = Field(default=33_554_432, ge=65_536)
    # Connections open at once (more are answered 503 and closed), and how long a new
    # connection may take to send its first request head (slowloris).
    max_connections: int = Field(default=1024, ge=1)
    head_timeout_seconds: float = Field(default=10.0, gt=0)

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    max_attempts: int = Field(default=5, ge=1)

    run_worker: bool = True
    worker_concurrency: int = Field(default=2, ge=1)
    one_job_per_project: bool = True
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    reclaim_seconds: float = Field(default=30.0, gt=0)
    drain_seconds: float = Field(default=30.0, ge=0)
    retry_base_seconds: float = Field(default=5.0, ge=0)
    retry_cap_seconds: float = Field(default=600.0, ge=0)
    # A BIMserver that does not answer pauses its jobs, probed at growing intervals up to
    # this; attempts are spent again only after outage_patience_seconds of outage.
    outage_probe_cap_seconds: float = Field(default=60.0, gt=0)
    outage_patience_seconds: float = Field(default=86_400.0, ge=0)
    # A job that ran out of attempts keeps its BIMserver tokens this long for `jobs retry`.
    token_retention_seconds: float = Field(default=604_800.0, ge=0)
    memory_limit_mb: int | None = Field(default=4096, ge=256)
    bimserver_timeout_seconds: float = Field(default=60.0, gt=0)
    # Ask BIMserver to gzip downloads (DownloadServlet honours Accept-Encoding: gzip): a
    # revision crosses a slow link several times faster, but BIMserver compresses on one core.
    download_gzip: bool = True

    # BIM bots: how long an authorization code, an access token and a refresh token live,
    # and whether people may create an account on the consent page.
    oauth_code_seconds: float = Field(default=600.0, gt=0)
    oauth_access_token_seconds: float = Field(default=3600.0, gt=0)
    oauth_refresh_token_seconds: float = Field(default=2_592_000.0, gt=0)
    open_registration: bool = True
    # A model posted to a resource URL: at most this big; the answer waits this long for the
    # result (then, or when the client asks, it answers 202 with where to poll); uploads and
    # results are removed this long after they were written.
    bots_max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    bots_sync_wait_seconds: float = Field(default=60.0, ge=0)
    bots_retention_seconds: float = Field(default=86_400.0, gt=0)

    # Paid services: service identifier -> credits per job ([prices] in the file,
    # NOTIFYD_PRICES as "id=credits,..."). A service not named here is free.
    prices: dict[str, int] = Field(default_factory=dict)

    @field_validator("prices")
    @classmethod
    def _check_prices(cls, value: dict[str, int]) -> dict[str, int]:
        negative = [service for service, price in value.items() if price < 0]
        if negative:
            raise ValueError(f"a price cannot be negative: {', '.join(negative)}")
        return value

    @field_validator("base_path")
    @classmethod
    def _normalise_base_path(cls, value: str) -> str:
        value = value.strip().strip("/")
        return f"/{value}" if value else ""

    @field_validator("secret_path")
    @classmethod
    def _check_secret_path(cls, value: str | None) -> str | None:
        if value is None or value.strip("/") == "":
            return None
        value = value.strip("/")
        if "/" in value or not value.isprintable():
            raise ValueError("must be a single path segment without '/'")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        _require_http_url(value)
        return value.rstrip("/")

    @field_validator("allowed_api_urls")
    @classmethod
    def _check_api_urls(cls, values: list[str]) -> list[str]:
        for value in values:
            _require_http_url(value)
        return [value.rstrip("/") for value in values]

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds}), or every lease expires between beats"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if "://" in value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a SQLite file path or a postgresql:// URL, not "
                f"{value.split('://', 1)[0]}://"
            )
        return value

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None and "://" in self.database_url

    @property
    def database_label(self) -> str:
        """The database as logs and messages name it: a URL without its password."""
        if not self.uses_postgres:
            return str(self.database_path)
        return redact_url_password(self.database_url or "")

    @property
    def database_path(self) -> Path:
        """The SQLite file (for a PostgreSQL database, where it would be)."""
        if self.database_url and not self.uses_postgres:
            return Path(self.database_url)
        return self.data_dir / "notifyd.sqlite3"

    @property
    def profiles_folder(self) -> Path:
        return self.profiles_dir or shipped_folder("profiles")

    @property
    def endpoint_prefix(self) -> str:
        """The path under which the JSON endpoint lives: base path plus the optional secret."""
        return self.base_path + (f"/{self.secret_path}" if self.secret_path else "")

    @property
    def public_base_url(self) -> str:
        """The URL BIMserver users type in, used to build the descriptor's URLs."""
        if self.public_url:
            return self.public_url
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "localhost"  # noqa: S104
        return f"http://{host}:{self.port}{self.base_path}"


def redact_url_password(url: str) -> str:
    """``scheme://user:secret@host/db`` as ``scheme://user@host/db``."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"


def shipped_folder(name: str) -> Path:
    """A folder notifyd ships (``profiles``, ``config``): beside the package in a source
    checkout, under ``<prefix>/share/notifyd`` when installed from a wheel."""
    candidates = [
        Path(__file__).resolve().parent.parent / name,
        Path(sys.prefix) / "share" / "notifyd" / name,
    ]
    return next((path for path in candidates if path.is_dir()), candidates[-1])


def _require_http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{value}' is not an http(s) URL with a host")


_PATH_FIELDS = ("data_dir", "database", "profiles_dir")


def _split_pairs(value: str) -> dict[str, str]:
    """``a=1,b=2`` as {"a": "1", "b": "2"}; an item without "=" is kept with an empty value,
    so that validation names it."""
    pairs = (item.partition("=") for item in _split_list(value))
    return {key.strip(): raw.strip() for key, _, raw in pairs}


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        origin = getattr(field.annotation, "__origin__", None)
        if origin is list:
            values[name] = _split_list(raw)
        elif origin is dict:
            values[name] = _split_pairs(raw)
        else:
            values[name] = raw
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for name in _PATH_FIELDS:
        if isinstance(data.get(name), str) and not Path(data[name]).is_absolute():
            data[name] = os.path.normpath(path.parent / data[name])
    return data


def _describe(error: ValidationError, sources: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        top = str(item["loc"][0]) if item["loc"] else ""
        where = sources.get(top, "")
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown setting '{name}'{where}")
        else:
            lines.append(f"{name}{where}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the sources in precedence order and validate once, naming the source of each error."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_path is not None:
        for key, value in _read_toml(config_path).items():
            values[key] = value
            sources[key] = f" (in {config_path})"
    for key, value in _from_environment(environ).items():
        values[key] = value
        sources[key] = f" (from {ENV_PREFIX}{key.upper()})"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = " (from the command line)"
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from exc


class ProfileFile(BaseModel):
    """One file under ``profiles/<service identifier>/``: a public profile of that service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifier: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    public: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)


def read_profile_file(path: Path) -> ProfileFile:
    try:
        with path.open("rb") as handle:
            return ProfileFile.model_validate(tomllib.load(handle))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"profile {path}: " + _describe(exc, {})) from exc
