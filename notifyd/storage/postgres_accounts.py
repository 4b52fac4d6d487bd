"""Accounts' user tokens, private profiles and credit in PostgreSQL, with the semantics of
``sqlite_accounts``; a charge locks its account's row so two hosts cannot both spend the
last credit."""

from __future__ import annotations

import json
import secrets

import asyncpg

from notifyd.account_records import LedgerEntry, PrivateProfile, UserToken
from notifyd.grants import Account
from notifyd.storage.account_schema import ORPHAN_CHARGE_SECONDS, refund_dead_sql
from notifyd.storage.postgres import PostgresStorage
from notifyd.storage.rows import (
    account_from_row,
    ledger_from_row,
    profile_from_row,
    user_token_from_row,
)

_REFUND_DEAD = refund_dead_sql("$1", "$2")


class PostgresAccounts:
    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage

    @property
    def pool(self) -> asyncpg.Pool:
        return self.storage.pool

    async def account_by_email(self, email: str) -> Account | None:
        row = await self.pool.fetchrow("SELECT * FROM accounts WHERE email = $1", email)
        return account_from_row(row) if row else None

    async def set_email(self, name: str, email: str) -> bool:
        try:
            status = await self.pool.execute(
                "UPDATE accounts SET email = $1 WHERE name = $2", email, name
            )
        except asyncpg.UniqueViolationError:
            return False
        return status == "UPDATE 1"

    async def set_admin(self, name: str, is_admin: bool) -> bool:
        status = await self.pool.execute(
            "UPDATE accounts SET is_admin = $1 WHERE name = $2", is_admin, name
        )
        return status == "UPDATE 1"

    async def accounts(self) -> list[tuple[Account, int]]:
        rows = await self.pool.fetch(
            "SELECT a.*, COALESCE((SELECT SUM(amount) FROM ledger AS l "
            "WHERE l.account = a.name), 0) AS balance FROM accounts AS a ORDER BY a.name"
        )
        return [(account_from_row(row), int(row["balance"])) for row in rows]

    async def add_user_token(self, token: UserToken) -> None:
        await self.pool.execute(
            "INSERT INTO user_tokens (id, token_hash, account, label, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            token.id,
            token.token_hash,
            token.account,
            token.label,
            token.created_at,
        )

    async def user_tokens(self, account: str) -> list[UserToken]:
        rows = await self.pool.fetch(
            "SELECT * FROM user_tokens WHERE account = $1 ORDER BY created_at", account
        )
        return [user_token_from_row(row) for row in rows]

    async def revoke_user_token(self, account: str, token_id: str, now: float) -> bool:
        status = await self.pool.execute(
            "UPDATE user_tokens SET revoked_at = $1 "
            "WHERE id = $2 AND account = $3 AND revoked_at IS NULL",
            now,
            token_id,
            account,
        )
        return status == "UPDATE 1"

    async def account_of_token(self, token_hash: str) -> Account | None:
        row = await self.pool.fetchrow(
            "SELECT a.* FROM user_tokens AS t JOIN accounts AS a ON a.name = t.account "
            "WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
            token_hash,
        )
        return account_from_row(row) if row else None

    async def save_profile(self, profile: PrivateProfile) -> bool:
        inserted = await self.pool.fetchval(
            "INSERT INTO private_profiles (account, service, identifier, name, description, "
            "settings, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (account, service, identifier) DO UPDATE SET name = excluded.name, "
            "description = excluded.description, settings = excluded.settings, "
            "updated_at = excluded.updated_at RETURNING (xmax = 0)",
            profile.account,
            profile.service,
            profile.identifier,
            profile.name,
            profile.description,
            json.dumps(profile.settings),
            profile.updated_at,
        )
        return bool(inserted)

    async def private_profile(
        self, account: str, service: str, identifier: str
    ) -> PrivateProfile | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM private_profiles WHERE account = $1 AND service = $2 "
            "AND identifier = $3",
            account,
            service,
            identifier,
        )
        return profile_from_row(row) if row else None

    async def private_profiles(self, account: str, service: str | None) -> list[PrivateProfile]:
        rows = await self.pool.fetch(
            "SELECT * FROM private_profiles WHERE account = $1 "
            "AND ($2::text IS NULL OR service = $2) ORDER BY service, identifier",
            account,
            service,
        )
        return [profile_from_row(row) for row in rows]

    async def delete_profile(self, account: str, service: str, identifier: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM private_profiles WHERE account = $1 AND service = $2 AND identifier = $3",
            account,
            service,
            identifier,
        )
        return status == "DELETE 1"

    async def balance(self, account: str) -> int:
        value = await self.pool.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = $1", account
        )
        return int(value)

    async def credit(self, account: str, amount: int, note: str, now: float) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM accounts WHERE name = $1 FOR UPDATE", account)
            await conn.execute(
                "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
                "VALUES ($5, $1, 'credit', $2, NULL, $3, $4)",
                account,
                amount,
                note,
                now,
                f"credit:{secrets.token_hex(8)}",
            )
            value = await conn.fetchval(
                "SELECT SUM(amount) FROM ledger WHERE account = $1", account
            )
            return int(value)

    async def charge(self, account: str, job_key: str, amount: int, note: str, now: float) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM accounts WHERE name = $1 FOR UPDATE", account)
            if await conn.fetchval("SELECT 1 FROM ledger WHERE id = 'charge:' || $1", job_key):
                return True
            balance = await conn.fetchval(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = $1", account
            )
            if int(balance) < amount:
                return False
            await conn.execute(
                "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
                "VALUES ('charge:' || $3, $1, 'charge', $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                account,
                -amount,
                job_key,
                note,
                now,
            )
            return True

    async def refund(self, job_key: str, note: str, now: float) -> bool:
        status = await self.pool.execute(
            "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
            "SELECT 'refund:' || job_key, account, 'refund', -amount, job_key, $1, $2 FROM ledger "
            "WHERE id = 'charge:' || $3 ON CONFLICT DO NOTHING",
            note,
            now,
            job_key,
        )
        return status == "INSERT 0 1"

    async def refund_dead(self, now: float) -> int:
        status = await self.pool.execute(_REFUND_DEAD, now, now - ORPHAN_CHARGE_SECONDS)
        return int(status.rsplit(" ", 1)[-1])

    async def ledger(self, account: str) -> list[LedgerEntry]:
        rows = await self.pool.fetch(
            "SELECT account, kind, amount, job_key, note, created_at FROM ledger "
            "WHERE account = $1 ORDER BY created_at, id",
            account,
        )
        return [ledger_from_row(row) for row in rows]

    async def add_platform(self, name: str, secret: str, now: float) -> bool:
        status = await self.pool.execute(
            "INSERT INTO platforms (name, secret, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO NOTHING",
            name,
            secret,
            now,
        )
        return status == "INSERT 0 1"

    async def platform_secret(self, name: str) -> str | None:
        value = await self.pool.fetchval("SELECT secret FROM platforms WHERE name = $1", name)
        return str(value) if value is not None else None

    async def platforms(self) -> list[tuple[str, float]]:
        rows = await self.pool.fetch("SELECT name, created_at FROM platforms ORDER BY name")
        return [(row["name"], row["created_at"]) for row in rows]

    async def first_sight(self, platform: str, webhook_id: str, now: float, keep: float) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM webhook_ids WHERE seen_at < $1", now - keep)
            status = await conn.execute(
                "INSERT INTO webhook_ids (platform, id, seen_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                platform,
                webhook_id,
                now,
            )
            return bool(status == "INSERT 0 1")
