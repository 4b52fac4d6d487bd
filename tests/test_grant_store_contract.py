"""The OAuth provider's records behave the same on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifyd.grants import (
    Account,
    AuthorizationCode,
    ClientStyle,
    IssuedToken,
    OAuthClient,
    TokenKind,
)
from notifyd.storage import grants_of
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import FakeClock
from tests.postgres import fresh_schema, postgres_dsn


@pytest.fixture(params=["sqlite", "postgres"])
async def grants(request: Any, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        async with SqliteStorage.open(tmp_path / "jobs.sqlite3", clock=clock) as storage:
            yield grants_of(storage)
        return
    dsn = postgres_dsn()
    async with (
        fresh_schema(dsn) as server_settings,
        PostgresStorage.open(dsn, clock=clock, server_settings=server_settings) as storage,
    ):
        yield grants_of(storage)


def client(client_id: str, *uris: str) -> OAuthClient:
    return OAuthClient(
        client_id=client_id,
        name="c",
        url=None,
        description=None,
        icon=None,
        redirect_uris=uris,
        style=ClientStyle.RFC7591,
        registered_at=1.0,
    )


def token(name: str, kind: TokenKind, family: str = "f", expires_at: float = 100.0) -> IssuedToken:
    return IssuedToken(
        token_hash=name,
        kind=kind,
        client_id="c1",
        account="alice",
        service="ifc-summary",
        family=family,
        expires_at=expires_at,
    )


async def test_an_account_name_is_taken_once(grants: Any) -> None:
    assert await grants.add_account(Account(name="alice", password_hash="h1", created_at=1.0))
    assert not await grants.add_account(Account(name="alice", password_hash="h2", created_at=2.0))
    assert (await grants.account("alice")).password_hash == "h1"
    assert await grants.set_password("alice", "h3")
    assert not await grants.set_password("nobody", "h4")


async def test_the_same_redirect_registers_one_client_with_every_secret(grants: Any) -> None:
    first = await grants.register_client(client("c1", "https://a/cb"), "s1")
    again = await grants.register_client(client("c2", "https://a/cb"), "s2")
    assert again.client_id == first.client_id == "c1"
    assert await grants.secret_matches("c1", "s1")
    assert await grants.secret_matches("c1", "s2")
    assert not await grants.secret_matches("c1", "s3")
    assert [c.client_id for c in await grants.clients()] == ["c1"]


async def test_a_code_is_taken_once_and_a_replay_revokes_its_tokens(grants: Any) -> None:
    code = AuthorizationCode(
        code_hash="code",
        client_id="c1",
        account="alice",
        service="ifc-summary",
        redirect_uri=None,
        code_challenge=None,
        expires_at=50.0,
    )
    await grants.save_code(code)
    taken, replayed = await grants.take_code("code", 10.0)
    assert (taken, replayed) == (code, False)
    await grants.save_tokens([token("a1", TokenKind.ACCESS, family="code")], 10.0)
    assert await grants.live_token("a1", TokenKind.ACCESS, 11.0) is not None
    assert await grants.take_code("code", 12.0) == (None, True)
    assert await grants.live_token("a1", TokenKind.ACCESS, 13.0) is None
    assert await grants.take_code("unknown", 12.0) == (None, False)


async def test_a_refresh_token_works_once_and_a_replay_revokes_the_family(grants: Any) -> None:
    await grants.save_tokens([token("r1", TokenKind.REFRESH), token("a2", TokenKind.ACCESS)], 1.0)
    used, replayed = await grants.use_refresh_token("r1", 2.0)
    assert used is not None
    assert not replayed
    assert await grants.use_refresh_token("r1", 3.0) == (None, True)
    assert await grants.live_token("a2", TokenKind.ACCESS, 4.0) is None


async def test_tokens_expire_and_are_revoked_by_client_or_account(grants: Any) -> None:
    await grants.save_tokens(
        [token("x1", TokenKind.ACCESS, expires_at=10.0), token("x2", TokenKind.ACCESS)], 1.0
    )
    assert await grants.live_token("x1", TokenKind.ACCESS, 10.0) is None
    assert await grants.live_token("x2", TokenKind.REFRESH, 5.0) is None
    assert await grants.revoke(account="alice") == 2
    assert await grants.live_token("x2", TokenKind.ACCESS, 5.0) is None
    with pytest.raises(ValueError, match="client id, an account"):
        await grants.revoke()
