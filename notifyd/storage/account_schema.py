"""The tables of accounts' user tokens, private profiles and credit: plain SQL that SQLite
and PostgreSQL both take word for word, so both schemas apply this one list.

A ledger entry's id says what it is for: ``charge:<job key>`` and ``refund:<job key>`` (so
the primary key itself makes a job's charge and refund happen once), ``credit:<random>``."""

from __future__ import annotations

ACCOUNT_TABLES = (
    "ALTER TABLE accounts ADD COLUMN email TEXT",
    "ALTER TABLE accounts ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE",
    "CREATE UNIQUE INDEX accounts_email ON accounts (email)",
    """
    CREATE TABLE user_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    )
    """,
    "CREATE INDEX user_tokens_account ON user_tokens (account)",
    """
    CREATE TABLE private_profiles (
        account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        service TEXT NOT NULL,
        identifier TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        settings TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account, service, identifier)
    )
    """,
    """
    CREATE TABLE ledger (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        amount BIGINT NOT NULL,
        job_key TEXT,
        note TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX ledger_account ON ledger (account, created_at)",
)

# Platforms that share a secret with the provider, and the signed requests' ids seen lately.
# The secret is kept as given: verifying an HMAC needs it (the database is private to notifyd,
# 0600 / the notifyd role).
PLATFORM_TABLES = (
    """
    CREATE TABLE platforms (
        name TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE webhook_ids (
        platform TEXT NOT NULL REFERENCES platforms (name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, id)
    )
    """,
    "CREATE INDEX webhook_ids_seen ON webhook_ids (seen_at)",
)


# A charge is taken just before its job is stored; a charge whose job is still missing this
# long after is one whose storing failed in a way that could not give it back (a crash
# between the two): it is refunded too.
ORPHAN_CHARGE_SECONDS = 300


def refund_dead_sql(now_mark: str, cutoff_mark: str) -> str:
    """Refund every charge whose job is dead, or was never stored (charged before
    ``cutoff_mark``), and is not refunded yet; the marks are the engine's placeholders."""
    return (
        "INSERT INTO ledger (id, account, kind, amount, job_key, note, created_at) "  # noqa: S608
        "SELECT 'refund:' || l.job_key, l.account, 'refund', -l.amount, l.job_key, "
        "CASE WHEN j.id IS NULL THEN 'refund: the job was never stored' "
        f"ELSE 'refund: the job died' END, {now_mark} "
        "FROM ledger AS l LEFT JOIN jobs AS j ON j.dedup_key = l.job_key "
        f"WHERE l.kind = 'charge' AND (j.status = 'dead' OR (j.id IS NULL AND l.created_at < "
        f"{cutoff_mark})) AND NOT EXISTS "
        "(SELECT 1 FROM ledger AS r WHERE r.id = 'refund:' || l.job_key) "  # by primary key
        "ON CONFLICT DO NOTHING"  # two hosts' maintenance rounds at once
    )
