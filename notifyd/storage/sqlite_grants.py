"""The OAuth provider's records in the job database, written through its writer thread."""

from __future__ import annotations

import json
import sqlite3

from notifyd.grants import (
    Account,
    AuthorizationCode,
    IssuedToken,
    OAuthClient,
    TokenKind,
)
from notifyd.storage.rows import account_from_row, client_from_row, token_from_row
from notifyd.storage.sqlite import SqliteStorage


class SqliteGrants:
    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage

    async def add_account(self, account: Account) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO accounts (name, password_hash, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (account.name, account.password_hash, account.created_at),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def set_password(self, name: str, password_hash: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET password_hash = ? WHERE name = ?", (password_hash, name)
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def account(self, name: str) -> Account | None:
        def read(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
            return account_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def register_client(self, client: OAuthClient, secret_hash: str) -> OAuthClient:
        """Stores ``client``, or when one was registered with the same redirect URIs, adds the
        secret to that one and returns it: registering again never strands a client."""
        key = json.dumps(sorted(client.redirect_uris))

        def write(conn: sqlite3.Connection) -> OAuthClient:
            conn.execute(
                "INSERT INTO oauth_clients (client_id, name, url, description, icon, "
                "redirect_uris, redirect_key, style, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (redirect_key) DO NOTHING",
                (
                    client.client_id,
                    client.name,
                    client.url,
                    client.description,
                    client.icon,
                    json.dumps(client.redirect_uris),
                    key,
                    str(client.style),
                    client.registered_at,
                ),
            )
            row = conn.execute(
                "SELECT * FROM oauth_clients WHERE redirect_key = ?", (key,)
            ).fetchone()
            conn.execute(
                "INSERT INTO oauth_client_secrets (client_id, secret_hash, issued_at) "
                "VALUES (?, ?, ?)",
                (row["client_id"], secret_hash, client.registered_at),
            )
            return client_from_row(row)

        return await self.storage.run_write(write)

    async def client(self, client_id: str) -> OAuthClient | None:
        def read(conn: sqlite3.Connection) -> OAuthClient | None:
            row = conn.execute(
                "SELECT * FROM oauth_clients WHERE client_id = ?", (client_id,)
            ).fetchone()
            return client_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def clients(self) -> list[OAuthClient]:
        def read(conn: sqlite3.Connection) -> list[OAuthClient]:
            rows = conn.execute("SELECT * FROM oauth_clients ORDER BY registered_at").fetchall()
            return [client_from_row(row) for row in rows]

        return await self.storage.run_read(read)

    async def secret_matches(self, client_id: str, secret_hash: str) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM oauth_client_secrets WHERE client_id = ? AND secret_hash = ?",
                (client_id, secret_hash),
            ).fetchone()
            return row is not None

        return await self.storage.run_read(read)

    async def save_code(self, code: AuthorizationCode) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO oauth_codes (code_hash, client_id, account, service, redirect_uri, "
                "code_challenge, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    code.code_hash,
                    code.client_id,
                    code.account,
                    code.service,
                    code.redirect_uri,
                    code.code_challenge,
                    code.expires_at,
                ),
            )
            # Codes never exchanged are dropped a day after they expired; an exchanged one is
            # kept: BIMserver 1.5 names the user by it in getPrivateProfiles for as long as
            # the service is configured (ServiceImpl.java:2445).
            conn.execute(
                "DELETE FROM oauth_codes WHERE expires_at < ? AND used_at IS NULL",
                (code.expires_at - 86_400,),
            )

        await self.storage.run_write(write)

    async def take_code(self, code_hash: str, now: float) -> tuple[AuthorizationCode | None, bool]:
        """The code, marked used; and whether it had been used before (a replay: every token
        issued from it is revoked here)."""

        def write(conn: sqlite3.Connection) -> tuple[AuthorizationCode | None, bool]:
            row = conn.execute(
                "SELECT * FROM oauth_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            if row is None:
                return None, False
            if row["used_at"] is not None:
                conn.execute(
                    "UPDATE oauth_tokens SET revoked_at = ? "
                    "WHERE family = ? AND revoked_at IS NULL",
                    (now, code_hash),
                )
                return None, True
            conn.execute("UPDATE oauth_codes SET used_at = ? WHERE code_hash = ?", (now, code_hash))
            fields = {k: row[k] for k in row.keys() if k != "used_at"}  # noqa: SIM118
            return AuthorizationCode(**fields), False

        return await self.storage.run_write(write)

    async def code_account(self, code_hash: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT account FROM oauth_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            return str(row["account"]) if row else None

        return await self.storage.run_read(read)

    async def save_tokens(self, tokens: list[IssuedToken], now: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO oauth_tokens (token_hash, kind, client_id, account, service, "
                "family, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        t.token_hash,
                        str(t.kind),
                        t.client_id,
                        t.account,
                        t.service,
                        t.family,
                        t.expires_at,
                        now,
                    )
                    for t in tokens
                ],
            )

        await self.storage.run_write(write)

    async def live_token(self, token_hash: str, kind: TokenKind, now: float) -> IssuedToken | None:
        def read(conn: sqlite3.Connection) -> IssuedToken | None:
            row = conn.execute(
                "SELECT * FROM oauth_tokens WHERE token_hash = ? AND kind = ? "
                "AND revoked_at IS NULL AND expires_at > ?",
                (token_hash, str(kind), now),
            ).fetchone()
            return token_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def use_refresh_token(
        self, token_hash: str, now: float
    ) -> tuple[IssuedToken | None, bool]:
        """The refresh token, revoked as it is used (a new one replaces it); and whether it
        had been used before: a replayed refresh token revokes its whole family."""

        def write(conn: sqlite3.Connection) -> tuple[IssuedToken | None, bool]:
            row = conn.execute(
                "SELECT * FROM oauth_tokens WHERE token_hash = ? AND kind = 'refresh'",
                (token_hash,),
            ).fetchone()
            if row is None or row["expires_at"] <= now:
                return None, False
            if row["revoked_at"] is not None:
                conn.execute(
                    "UPDATE oauth_tokens SET revoked_at = ? "
                    "WHERE family = ? AND revoked_at IS NULL",
                    (now, row["family"]),
                )
                return None, True
            conn.execute(
                "UPDATE oauth_tokens SET revoked_at = ? WHERE token_hash = ?", (now, token_hash)
            )
            return token_from_row(row), False

        return await self.storage.run_write(write)

    async def revoke(self, *, client_id: str | None = None, account: str | None = None) -> int:
        """Revoke every live token of a client, an account, or both together."""
        if client_id is None and account is None:
            raise ValueError("revoke needs a client id, an account, or both")
        now = self.storage.now()

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE oauth_tokens SET revoked_at = ? WHERE revoked_at IS NULL "
                "AND (? IS NULL OR client_id = ?) AND (? IS NULL OR account = ?)",
                (now, client_id, client_id, account, account),
            )
            return cursor.rowcount

        return await self.storage.run_write(write)
