"""How jobs map to columns, the same in every backend: an origin's columns, and the column
changes a job rule's transition makes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from notifyd.account_records import LedgerEntry, LedgerKind, PrivateProfile, UserToken
from notifyd.grants import Account, ClientStyle, IssuedToken, OAuthClient, TokenKind
from notifyd.job_rules import Transition
from notifyd.records import UPLOAD_KIND, JobMatch, Notification, Origin

ORIGIN_COLUMNS = (
    "kind",
    "dialect",
    "poid",
    "roid",
    "edid",
    "soid",
    "service",
    "profile",
    "api_url",
    "token",
    "user_token",
    "input_type",
    "output_type",
    "input_path",
    "input_size",
    "account",
    "client_id",
    "context_id",
)


def origin_values(origin: Origin) -> tuple[Any, ...]:
    """The values of ``ORIGIN_COLUMNS`` for either kind of job."""
    if isinstance(origin, Notification):
        n = origin
        return (
            str(n.kind),
            str(n.dialect),
            n.poid,
            n.roid,
            n.edid,
            n.soid,
            n.service,
            n.profile,
            n.api_url,
            n.token,
            n.user_token,
            None,
            None,
            None,
            None,
            n.account,
            None,
            None,
        )
    u = origin
    return (
        UPLOAD_KIND,
        None,
        None,
        None,
        None,
        None,
        u.service,
        u.profile,
        None,
        None,
        None,
        u.input_type,
        u.output_type,
        u.model_path,
        u.size,
        u.account,
        u.client_id,
        u.context_id,
    )


def transition_changes(transition: Transition, now: float) -> dict[str, Any]:
    """The columns a transition sets (JSON as text, booleans as 0/1: both engines take it)."""
    t = transition
    changes: dict[str, Any] = {"status": str(t.status), "updated_at": now}
    if t.last_error is not None:
        changes["last_error"] = t.last_error
    if t.run_after is not None:
        changes["run_after"] = t.run_after
    if t.max_attempts is not None:
        changes["max_attempts"] = t.max_attempts
    if t.result is not None:
        changes["result"] = json.dumps(t.result.to_record())
    if t.drops_worker:
        changes.update(lease_until=None, worker_id=None)
    if t.ended:
        changes.update(finished_at=now, lease_until=None)
    if t.erases_tokens:
        changes.update(token=None, user_token=None)
    if t.reopened:
        changes.update(finished_at=None, cancel_requested=0)
    if t.cancel_requested:
        changes["cancel_requested"] = 1
    return changes


def client_from_row(row: Mapping[str, Any]) -> OAuthClient:
    return OAuthClient(
        client_id=row["client_id"],
        name=row["name"],
        url=row["url"],
        description=row["description"],
        icon=row["icon"],
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        style=ClientStyle(row["style"]),
        registered_at=row["registered_at"],
    )


def token_from_row(row: Mapping[str, Any]) -> IssuedToken:
    return IssuedToken(
        token_hash=row["token_hash"],
        kind=TokenKind(row["kind"]),
        client_id=row["client_id"],
        account=row["account"],
        service=row["service"],
        family=row["family"],
        expires_at=row["expires_at"],
    )


def account_from_row(row: Mapping[str, Any]) -> Account:
    return Account(
        name=row["name"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        email=row["email"],
        is_admin=bool(row["is_admin"]),
    )


def user_token_from_row(row: Mapping[str, Any]) -> UserToken:
    return UserToken(**dict(row))


def profile_from_row(row: Mapping[str, Any]) -> PrivateProfile:
    return PrivateProfile(**{**dict(row), "settings": json.loads(row["settings"])})


def ledger_from_row(row: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(**{**dict(row), "kind": LedgerKind(row["kind"])})


def match_sql(match: JobMatch | None, mark: Callable[[], str]) -> tuple[list[str], list[Any]]:
    """SQL conditions for a listing's ``JobMatch`` and their parameters, ``mark()`` giving
    each placeholder (``?`` for SQLite, ``$n`` for PostgreSQL): one place for both engines."""
    match = match or JobMatch()
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("service", match.service), ("account", match.account)):
        if value is not None:
            clauses.append(f"{column} = {mark()}")
            params.append(value)
    if match.poid is not None:
        clauses.append(f"api_url IS NOT NULL AND poid = {mark()}")
        params.append(match.poid)
    if match.uploads:
        clauses.append("api_url IS NULL")
    return clauses, params
