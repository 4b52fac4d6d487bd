"""`notifyd accounts` and `notifyd oauth` against the daemon's database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from notifyd.bots.accounts import password_matches
from notifyd.grants import ClientStyle, IssuedToken, OAuthClient, TokenKind
from notifyd.storage.sqlite import SqliteStorage
from notifyd.storage.sqlite_grants import SqliteGrants
from tests.cli import run_cli


async def _grants(data: Path, action: Any) -> Any:
    async with SqliteStorage.open(data / "notifyd.sqlite3") as storage:
        return await action(SqliteGrants(storage))


def test_an_account_is_created_with_a_hashed_password_and_once(tmp_path: Path) -> None:
    created = run_cli(tmp_path, "accounts", "add", "alice", "--password-stdin", stdin="s3cret-pw\n")
    assert created.exit_code == 0, created.output
    again = run_cli(tmp_path, "accounts", "add", "alice", "--password-stdin", stdin="other-pw\n")
    assert again.exit_code == 1
    assert "the name 'alice' is taken" in again.output
    account = asyncio.run(_grants(tmp_path, lambda g: g.account("alice")))
    assert "s3cret-pw" not in account.password_hash
    assert password_matches("s3cret-pw", account.password_hash)


def test_a_short_password_or_a_bad_name_is_refused_with_the_rule(tmp_path: Path) -> None:
    short = run_cli(tmp_path, "accounts", "add", "bob", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 8" in short.output
    bad = run_cli(tmp_path, "accounts", "add", "-bob", "--password-stdin", stdin="long enough\n")
    assert bad.exit_code != 0


def test_revoke_ends_every_token_of_a_client(tmp_path: Path) -> None:
    async def seed(grants: SqliteGrants) -> None:
        await grants.register_client(
            OAuthClient(
                client_id="c1",
                name="BIMserver",
                url=None,
                description=None,
                icon=None,
                redirect_uris=("http://bim.local/",),
                style=ClientStyle.BIMSERVER,
                registered_at=1.0,
            ),
            "hash",
        )
        await grants.save_tokens(
            [
                IssuedToken(
                    token_hash=f"t{i}",
                    kind=TokenKind.ACCESS,
                    client_id="c1",
                    account="alice",
                    service="ifc-summary",
                    family="f",
                    expires_at=4e9,
                )
                for i in range(2)
            ],
            1.0,
        )

    asyncio.run(_grants(tmp_path, seed))
    listed = run_cli(tmp_path, "oauth", "clients")
    assert json.loads(listed.output)["clientId"] == "c1"
    revoked = run_cli(tmp_path, "oauth", "revoke", "--client", "c1")
    assert revoked.exit_code == 0, revoked.output
    assert "2 tokens revoked" in revoked.output
    live = asyncio.run(_grants(tmp_path, lambda g: g.live_token("t0", TokenKind.ACCESS, 2.0)))
    assert live is None
