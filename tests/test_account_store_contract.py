"""Accounts' user tokens, private profiles and credit behave the same on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifyd.account_records import LedgerKind, PrivateProfile, UserToken
from notifyd.grants import Account, secret_hash
from notifyd.records import JobStatus
from notifyd.storage import accounts_of, grants_of
from notifyd.storage.account_schema import ORPHAN_CHARGE_SECONDS
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import FakeClock
from tests.factories import make_notification
from tests.postgres import fresh_schema, postgres_dsn


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: Any, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Any]:
    """(storage, accounts) with the accounts alice and bob."""

    async def seeded(storage: Any) -> Any:
        grants = grants_of(storage)
        for name in ("alice", "bob"):
            await grants.add_account(Account(name=name, password_hash="x", created_at=1.0))
        return storage, accounts_of(storage)

    if request.param == "sqlite":
        async with SqliteStorage.open(tmp_path / "jobs.sqlite3", clock=clock) as storage:
            yield await seeded(storage)
        return
    dsn = postgres_dsn()
    async with (
        fresh_schema(dsn) as server_settings,
        PostgresStorage.open(dsn, clock=clock, server_settings=server_settings) as storage,
    ):
        yield await seeded(storage)


async def test_an_email_belongs_to_one_account_and_admins_are_marked(store: Any) -> None:
    _storage, accounts = store
    assert await accounts.set_email("alice", "alice@example.com")
    assert not await accounts.set_email("bob", "alice@example.com")
    assert not await accounts.set_email("nobody", "n@example.com")
    found = await accounts.account_by_email("alice@example.com")
    assert found is not None
    assert found.name == "alice"
    assert found.is_admin is False
    assert await accounts.set_admin("alice", True)
    assert (await accounts.account_by_email("alice@example.com")).is_admin is True


async def test_a_user_token_names_its_account_until_revoked(store: Any) -> None:
    _storage, accounts = store
    token = UserToken(
        id="t1", token_hash=secret_hash("secret"), account="alice", label="cli", created_at=5.0
    )
    await accounts.add_user_token(token)
    assert (await accounts.account_of_token(secret_hash("secret"))).name == "alice"
    assert await accounts.account_of_token(secret_hash("other")) is None
    assert not await accounts.revoke_user_token("bob", "t1", 6.0)  # not bob's
    assert await accounts.revoke_user_token("alice", "t1", 6.0)
    assert not await accounts.revoke_user_token("alice", "t1", 7.0)
    assert await accounts.account_of_token(secret_hash("secret")) is None
    [listed] = await accounts.user_tokens("alice")
    assert listed.revoked_at == 6.0
    assert listed.token_hash == secret_hash("secret")


async def test_private_profiles_are_per_account_and_service(store: Any) -> None:
    _storage, accounts = store
    profile = PrivateProfile(
        account="alice",
        service="ifc-summary",
        identifier="mine",
        name="Mine",
        description="",
        settings={"group_by_storey": False},
        updated_at=1.0,
    )
    assert await accounts.save_profile(profile)
    changed = dataclasses.replace(
        profile, name="Renamed", settings={"group_by_storey": True}, updated_at=2.0
    )
    assert not await accounts.save_profile(changed)
    found = await accounts.private_profile("alice", "ifc-summary", "mine")
    assert found.name == "Renamed"
    assert found.settings == {"group_by_storey": True}
    assert await accounts.private_profile("bob", "ifc-summary", "mine") is None
    assert [p.identifier for p in await accounts.private_profiles("alice", None)] == ["mine"]
    assert await accounts.private_profiles("alice", "ifc-validation") == []
    assert await accounts.delete_profile("alice", "ifc-summary", "mine")
    assert not await accounts.delete_profile("alice", "ifc-summary", "mine")


async def test_a_job_is_charged_once_and_only_with_enough_credit(store: Any) -> None:
    _storage, accounts = store
    assert await accounts.balance("alice") == 0
    assert not await accounts.charge("alice", "job-1", 5, "ifc-summary", 1.0)
    assert await accounts.credit("alice", 12, "top-up", 2.0) == 12
    assert await accounts.charge("alice", "job-1", 5, "ifc-summary", 3.0)
    assert await accounts.charge("alice", "job-1", 5, "ifc-summary", 4.0)  # again: no charge
    assert await accounts.balance("alice") == 7
    assert await accounts.charge("alice", "job-2", 5, "ifc-summary", 5.0)
    assert not await accounts.charge("alice", "job-3", 5, "ifc-summary", 6.0)
    assert await accounts.balance("alice") == 2
    assert await accounts.refund("job-2", "not stored", 7.0)
    assert not await accounts.refund("job-2", "not stored", 8.0)
    assert not await accounts.refund("job-9", "never charged", 8.0)
    assert await accounts.balance("alice") == 7
    kinds = [entry.kind for entry in await accounts.ledger("alice")]
    assert kinds == [LedgerKind.CREDIT, LedgerKind.CHARGE, LedgerKind.CHARGE, LedgerKind.REFUND]
    assert [(a.name, b) for a, b in await accounts.accounts()] == [("alice", 7), ("bob", 0)]


async def test_concurrent_charges_never_spend_more_than_the_balance(store: Any) -> None:
    _storage, accounts = store
    await accounts.credit("alice", 10, "top-up", 1.0)
    results = await asyncio.gather(
        *(accounts.charge("alice", f"job-{i}", 3, "x", 2.0) for i in range(10))
    )
    assert sum(results) == 3
    assert await accounts.balance("alice") == 1


async def test_dead_charged_jobs_are_refunded_once(store: Any) -> None:
    storage, accounts = store
    await accounts.credit("alice", 10, "top-up", 1.0)
    notification = make_notification()
    stored = await storage.enqueue(notification, max_attempts=1)
    key = notification.dedup_key
    assert await accounts.charge("alice", key, 4, "ifc-summary", 2.0)
    assert await accounts.refund_dead(3.0) == 0  # still queued
    [job] = await storage.claim(worker_id="w", lease_seconds=60, limit=1)
    assert job.id == stored.job_id
    dead = await storage.fail(
        job.id, worker_id="w", error="boom", retry_at=None, spend_attempt=True
    )
    assert dead.status is JobStatus.DEAD
    assert await accounts.refund_dead(4.0) == 1
    assert await accounts.refund_dead(5.0) == 0
    assert await accounts.balance("alice") == 10


async def test_a_charge_whose_job_was_never_stored_is_refunded_after_a_while(store: Any) -> None:
    _storage, accounts = store
    await accounts.credit("alice", 10, "top-up", 1.0)
    assert await accounts.charge("alice", "never-stored", 4, "ifc-summary", 2.0)
    assert await accounts.refund_dead(100.0) == 0  # it may still be on its way
    assert await accounts.refund_dead(2.0 + ORPHAN_CHARGE_SECONDS + 1) == 1
    assert await accounts.balance("alice") == 10
    [refund] = [e for e in await accounts.ledger("alice") if e.kind is LedgerKind.REFUND]
    assert refund.note == "refund: the job was never stored"
