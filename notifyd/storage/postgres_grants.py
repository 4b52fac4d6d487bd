"""The OAuth provider's records in PostgreSQL, with the semantics of ``sqlite_grants``."""

from __future__ import annotations

import json

import asyncpg

from notifyd.grants import Account, AuthorizationCode, IssuedToken, OAuthClient, TokenKind
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.rows import account_from_row, client_from_row, token_from_row


class PostgresGrants:
    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage

    @property
    def pool(self) -> asyncpg.Pool:
        return self.storage.pool

    async def add_account(self, account: Account) -> bool:
        status = await self.pool.execute(
            "INSERT INTO accounts (name, password_hash, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO NOTHING",
            account.name,
            account.password_hash,
            account.created_at,
        )
        return status == "INSERT 0 1"

    async def set_password(self, name: str, password_hash: str) -> bool:
        status = await self.pool.execute(
            "UPDATE accounts SET password_hash = $1 WHERE name = $2", password_hash, name
        )
        return status == "UPDATE 1"

    async def account(self, name: str) -> Account | None:
        row = await self.pool.fetchrow("SELECT * FROM accounts WHERE name = $1", name)
        return account_from_row(row) if row else None

    async def register_client(self, client: OAuthClient, secret_hash: str) -> OAuthClient:
        key = json.dumps(sorted(client.redirect_uris))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO oauth_clients (client_id, name, url, description, icon, "
                "redirect_uris, redirect_key, style, registered_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (redirect_key) DO NOTHING",
                client.client_id,
                client.name,
                client.url,
                client.description,
                client.icon,
                json.dumps(client.redirect_uris),
                key,
                str(client.style),
                client.registered_at,
            )
            row = await conn.fetchrow("SELECT * FROM oauth_clients WHERE redirect_key = $1", key)
            await conn.execute(
                "INSERT INTO oauth_client_secrets (client_id, secret_hash, issued_at) "
                "VALUES ($1, $2, $3)",
                row["client_id"],
                secret_hash,
                client.registered_at,
            )
            return client_from_row(row)

    async def client(self, client_id: str) -> OAuthClient | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM oauth_clients WHERE client_id = $1", client_id
        )
        return client_from_row(row) if row else None

    async def clients(self) -> list[OAuthClient]:
        rows = await self.pool.fetch("SELECT * FROM oauth_clients ORDER BY registered_at")
        return [client_from_row(row) for row in rows]

    async def secret_matches(self, client_id: str, secret_hash: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM oauth_client_secrets WHERE client_id = $1 AND secret_hash = $2",
            client_id,
            secret_hash,
        )
        return found is not None

    async def save_code(self, code: AuthorizationCode) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO oauth_codes (code_hash, client_id, account, service, redirect_uri, "
                "code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                code.code_hash,
                code.client_id,
                code.account,
                code.service,
                code.redirect_uri,
                code.code_challenge,
                code.expires_at,
            )
            await conn.execute(
                "DELETE FROM oauth_codes WHERE expires_at < $1 AND used_at IS NULL",
                code.expires_at - 86_400,
            )

    async def take_code(self, code_hash: str, now: float) -> tuple[AuthorizationCode | None, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM oauth_codes WHERE code_hash = $1 FOR UPDATE", code_hash
            )
            if row is None:
                return None, False
            if row["used_at"] is not None:
                await conn.execute(
                    "UPDATE oauth_tokens SET revoked_at = $1 "
                    "WHERE family = $2 AND revoked_at IS NULL",
                    now,
                    code_hash,
                )
                return None, True
            await conn.execute(
                "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2", now, code_hash
            )
            fields = {k: row[k] for k in row.keys() if k != "used_at"}  # noqa: SIM118
            return AuthorizationCode(**fields), False

    async def code_account(self, code_hash: str) -> str | None:
        """As sqlite_grants: exchanged codes are kept for BIMserver's getPrivateProfiles."""
        value = await self.pool.fetchval(
            "SELECT account FROM oauth_codes WHERE code_hash = $1", code_hash
        )
        return str(value) if value is not None else None

    async def save_tokens(self, tokens: list[IssuedToken], now: float) -> None:
        await self.pool.executemany(
            "INSERT INTO oauth_tokens (token_hash, kind, client_id, account, service, family, "
            "expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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

    async def live_token(self, token_hash: str, kind: TokenKind, now: float) -> IssuedToken | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM oauth_tokens WHERE token_hash = $1 AND kind = $2 "
            "AND revoked_at IS NULL AND expires_at > $3",
            token_hash,
            str(kind),
            now,
        )
        return token_from_row(row) if row else None

    async def use_refresh_token(
        self, token_hash: str, now: float
    ) -> tuple[IssuedToken | None, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM oauth_tokens WHERE token_hash = $1 AND kind = 'refresh' FOR UPDATE",
                token_hash,
            )
            if row is None or row["expires_at"] <= now:
                return None, False
            if row["revoked_at"] is not None:
                await conn.execute(
                    "UPDATE oauth_tokens SET revoked_at = $1 "
                    "WHERE family = $2 AND revoked_at IS NULL",
                    now,
                    row["family"],
                )
                return None, True
            await conn.execute(
                "UPDATE oauth_tokens SET revoked_at = $1 WHERE token_hash = $2", now, token_hash
            )
            return token_from_row(row), False

    async def revoke(self, *, client_id: str | None = None, account: str | None = None) -> int:
        if client_id is None and account is None:
            raise ValueError("revoke needs a client id, an account, or both")
        status = await self.pool.execute(
            "UPDATE oauth_tokens SET revoked_at = $1 WHERE revoked_at IS NULL "
            "AND ($2::text IS NULL OR client_id = $2) AND ($3::text IS NULL OR account = $3)",
            self.storage.now(),
            client_id,
            account,
        )
        return int(status.split()[-1])
