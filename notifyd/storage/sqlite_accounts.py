"""Accounts' user tokens, private profiles and credit in the SQLite database, written through
its writer thread (which also makes a charge's check-and-insert atomic)."""

from __future__ import annotations

import json
import secrets
import sqlite3

from notifyd.account_records import LedgerEntry, PrivateProfile, UserToken
from notifyd.grants import Account
from notifyd.storage.account_schema import ORPHAN_CHARGE_SECONDS, refund_dead_sql
from notifyd.storage.rows import (
    account_from_row,
    ledger_from_row,
    profile_from_row,
    user_token_from_row,
)
from notifyd.storage.sqlite import SqliteStorage

_REFUND_DEAD = refund_dead_sql("?", "?")


class SqliteAccounts:
    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage

    async def account_by_email(self, email: str) -> Account | None:
        def read(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute("SELECT * FROM accounts WHERE email = ?", (email,)).fetchone()
            return account_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def set_email(self, name: str, email: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET email = ? WHERE name = ? AND NOT EXISTS "
                "(SELECT 1 FROM accounts WHERE email = ? AND name != ?)",
                (email, name, email, name),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def set_admin(self, name: str, is_admin: bool) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET is_admin = ? WHERE name = ?", (is_admin, name)
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def accounts(self) -> list[tuple[Account, int]]:
        def read(conn: sqlite3.Connection) -> list[tuple[Account, int]]:
            rows = conn.execute(
                "SELECT a.*, COALESCE((SELECT SUM(amount) FROM ledger AS l "
                "WHERE l.account = a.name), 0) AS balance FROM accounts AS a ORDER BY a.name"
            ).fetchall()
            return [(account_from_row(row), int(row["balance"])) for row in rows]

        return await self.storage.run_read(read)

    async def add_user_token(self, token: UserToken) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO user_tokens (id, token_hash, account, label, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token.id, token.token_hash, token.account, token.label, token.created_at),
            )

        await self.storage.run_write(write)

    async def user_tokens(self, account: str) -> list[UserToken]:
        def read(conn: sqlite3.Connection) -> list[UserToken]:
            rows = conn.execute(
                "SELECT * FROM user_tokens WHERE account = ? ORDER BY created_at", (account,)
            ).fetchall()
            return [user_token_from_row(row) for row in rows]

        return await self.storage.run_read(read)

    async def revoke_user_token(self, account: str, token_id: str, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE user_tokens SET revoked_at = ? "
                "WHERE id = ? AND account = ? AND revoked_at IS NULL",
                (now, token_id, account),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def account_of_token(self, token_hash: str) -> Account | None:
        def read(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                "SELECT a.* FROM user_tokens AS t JOIN accounts AS a ON a.name = t.account "
                "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
                (token_hash,),
            ).fetchone()
            return account_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def save_profile(self, profile: PrivateProfile) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            existed = conn.execute(
                "SELECT 1 FROM private_profiles WHERE account = ? AND service = ? "
                "AND identifier = ?",
                (profile.account, profile.service, profile.identifier),
            ).fetchone()
            conn.execute(
                "INSERT INTO private_profiles (account, service, identifier, name, description, "
                "settings, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account, service, identifier) DO UPDATE SET name = excluded.name, "
                "description = excluded.description, settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (
                    profile.account,
                    profile.service,
                    profile.identifier,
                    profile.name,
                    profile.description,
                    json.dumps(profile.settings),
                    profile.updated_at,
                ),
            )
            return existed is None

        return await self.storage.run_write(write)

    async def private_profile(
        self, account: str, service: str, identifier: str
    ) -> PrivateProfile | None:
        def read(conn: sqlite3.Connection) -> PrivateProfile | None:
            row = conn.execute(
                "SELECT * FROM private_profiles WHERE account = ? AND service = ? "
                "AND identifier = ?",
                (account, service, identifier),
            ).fetchone()
            return profile_from_row(row) if row else None

        return await self.storage.run_read(read)

    async def private_profiles(self, account: str, service: str | None) -> list[PrivateProfile]:
        def read(conn: sqlite3.Connection) -> list[PrivateProfile]:
            rows = conn.execute(
                "SELECT * FROM private_profiles WHERE account = ? "
                "AND (? IS NULL OR service = ?) ORDER BY service, identifier",
                (account, service, service),
            ).fetchall()
            return [profile_from_row(row) for row in rows]

        return await self.storage.run_read(read)

    async def delete_profile(self, account: str, service: str, identifier: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM private_profiles WHERE account = ? AND service = ? AND identifier = ?",
                (account, service, identifier),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def balance(self, account: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (account,)
            ).fetchone()
            return int(row[0])

        return await self.storage.run_read(read)

    async def credit(self, account: str, amount: int, note: str, now: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
                "VALUES (?, ?, 'credit', ?, NULL, ?, ?)",
                (f"credit:{secrets.token_hex(8)}", account, amount, note, now),
            )
            row = conn.execute(
                "SELECT SUM(amount) FROM ledger WHERE account = ?", (account,)
            ).fetchone()
            return int(row[0])

        return await self.storage.run_write(write)

    async def charge(self, account: str, job_key: str, amount: int, note: str, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                "SELECT 1 FROM ledger WHERE id = 'charge:' || ?", (job_key,)
            ).fetchone():
                return True
            row = conn.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (account,)
            ).fetchone()
            if int(row[0]) < amount:
                return False
            conn.execute(
                "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
                "VALUES (?, ?, 'charge', ?, ?, ?, ?)",
                (f"charge:{job_key}", account, -amount, job_key, note, now),
            )
            return True

        return await self.storage.run_write(write)

    async def refund(self, job_key: str, note: str, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "
                "SELECT 'refund:' || job_key, account, 'refund', -amount, job_key, ?, ? "
                "FROM ledger "
                "WHERE id = 'charge:' || ? ON CONFLICT DO NOTHING",
                (note, now, job_key),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def refund_dead(self, now: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            return conn.execute(_REFUND_DEAD, (now, now - ORPHAN_CHARGE_SECONDS)).rowcount

        return await self.storage.run_write(write)

    async def ledger(self, account: str) -> list[LedgerEntry]:
        def read(conn: sqlite3.Connection) -> list[LedgerEntry]:
            rows = conn.execute(
                "SELECT account, kind, amount, job_key, note, created_at FROM ledger "
                "WHERE account = ? ORDER BY created_at, id",
                (account,),
            ).fetchall()
            return [ledger_from_row(row) for row in rows]

        return await self.storage.run_read(read)

    async def add_platform(self, name: str, secret: str, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO platforms (name, secret, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, secret, now),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)

    async def platform_secret(self, name: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT secret FROM platforms WHERE name = ?", (name,)).fetchone()
            return str(row["secret"]) if row else None

        return await self.storage.run_read(read)

    async def platforms(self) -> list[tuple[str, float]]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            rows = conn.execute("SELECT name, created_at FROM platforms ORDER BY name")
            return [(row["name"], row["created_at"]) for row in rows]

        return await self.storage.run_read(read)

    async def first_sight(self, platform: str, webhook_id: str, now: float, keep: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM webhook_ids WHERE seen_at < ?", (now - keep,))
            cursor = conn.execute(
                "INSERT INTO webhook_ids (platform, id, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (platform, webhook_id, now),
            )
            return cursor.rowcount == 1

        return await self.storage.run_write(write)
