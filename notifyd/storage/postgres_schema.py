"""The PostgreSQL schema, as versioned migrations applied in order under an advisory lock
(several hosts may start at once), all pending ones in one transaction (a failure leaves
the database as it was), recorded in ``notifyd_migrations``. A database that knows a
version this release does not is refused.

Times are epoch seconds (DOUBLE PRECISION) as on SQLite, so the same job rules and the same
clock apply; JSON columns are TEXT the backend parses, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from notifyd.errors import StartupError
from notifyd.storage.account_schema import ACCOUNT_TABLES, PLATFORM_TABLES

# pg_advisory_xact_lock key: "notifyd" in ASCII.
MIGRATION_LOCK = 0x6E6F74696679

MIGRATIONS: Sequence[tuple[int, str, str]] = (
    (
        1,
        "jobs, attempts, projects, servers",
        """
        CREATE TABLE jobs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dedup_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            dialect TEXT,
            poid BIGINT,
            roid BIGINT,
            edid BIGINT,
            soid BIGINT,
            service TEXT NOT NULL,
            profile TEXT NOT NULL,
            api_url TEXT,
            token TEXT,
            user_token TEXT,
            input_type TEXT,
            output_type TEXT,
            input_path TEXT,
            input_size BIGINT,
            account TEXT,
            client_id TEXT,
            context_id TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            run_after DOUBLE PRECISION NOT NULL,
            lease_until DOUBLE PRECISION,
            worker_id TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            last_error TEXT,
            result TEXT,
            steps TEXT NOT NULL DEFAULT '{}',
            CHECK ((api_url IS NULL) = (poid IS NULL)),
            CHECK (api_url IS NOT NULL OR input_path IS NOT NULL)
        );
        CREATE INDEX jobs_status ON jobs (status, run_after, id);
        CREATE INDEX jobs_project_queue ON jobs (api_url, poid, run_after, id)
            WHERE status = 'queued';
        CREATE INDEX jobs_unbound_queue ON jobs (run_after, id)
            WHERE status = 'queued' AND api_url IS NULL;
        CREATE INDEX jobs_running ON jobs (lease_until) WHERE status = 'running';
        CREATE INDEX jobs_held_tokens ON jobs (finished_at)
            WHERE status = 'dead' AND token IS NOT NULL;
        CREATE INDEX jobs_written_file ON jobs (api_url, ((steps::jsonb ->> 'file_id')), service)
            WHERE steps <> '{}';
        CREATE TABLE attempts (
            job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            worker_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            error TEXT,
            PRIMARY KEY (job_id, number)
        );
        CREATE TABLE projects (
            api_url TEXT NOT NULL,
            poid BIGINT NOT NULL,
            running INTEGER NOT NULL DEFAULT 0,
            next_due DOUBLE PRECISION,
            PRIMARY KEY (api_url, poid)
        );
        CREATE INDEX projects_due ON projects (next_due) WHERE next_due IS NOT NULL;
        CREATE FUNCTION notifyd_project_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO projects AS p (api_url, poid, running, next_due)
            VALUES (NEW.api_url, NEW.poid, (NEW.status = 'running')::int,
                CASE WHEN NEW.status = 'queued' THEN NEW.run_after END)
            ON CONFLICT (api_url, poid) DO UPDATE SET
                running = p.running + excluded.running,
                next_due = CASE WHEN excluded.next_due IS NULL THEN p.next_due
                    ELSE least(coalesce(p.next_due, excluded.next_due), excluded.next_due) END;
            RETURN NULL;
        END $$;
        CREATE TRIGGER jobs_project_insert AFTER INSERT ON jobs
            FOR EACH ROW WHEN (NEW.api_url IS NOT NULL)
            EXECUTE FUNCTION notifyd_project_insert();
        CREATE FUNCTION notifyd_project_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE projects SET
                running = running + (NEW.status = 'running')::int
                    - (OLD.status = 'running')::int,
                next_due = CASE WHEN NEW.status = 'queued'
                    THEN least(coalesce(next_due, NEW.run_after), NEW.run_after)
                    ELSE next_due END
            WHERE api_url = NEW.api_url AND poid = NEW.poid;
            RETURN NULL;
        END $$;
        CREATE TRIGGER jobs_project_update AFTER UPDATE OF status, run_after ON jobs
            FOR EACH ROW WHEN (NEW.api_url IS NOT NULL)
            EXECUTE FUNCTION notifyd_project_update();
        CREATE TABLE servers (
            api_url TEXT PRIMARY KEY,
            down_since DOUBLE PRECISION NOT NULL,
            failures INTEGER NOT NULL,
            last_failure_at DOUBLE PRECISION NOT NULL,
            paused_until DOUBLE PRECISION NOT NULL,
            last_error TEXT NOT NULL
        );
        """,
    ),
    (
        2,
        "accounts and OAuth grants",
        """
        CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE oauth_clients (
            client_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            url TEXT,
            description TEXT,
            icon TEXT,
            redirect_uris TEXT NOT NULL,
            redirect_key TEXT NOT NULL UNIQUE,
            style TEXT NOT NULL,
            registered_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE oauth_client_secrets (
            client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
            secret_hash TEXT NOT NULL,
            issued_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (client_id, secret_hash)
        );
        CREATE TABLE oauth_codes (
            code_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            account TEXT NOT NULL,
            service TEXT NOT NULL,
            redirect_uri TEXT,
            code_challenge TEXT,
            expires_at DOUBLE PRECISION NOT NULL,
            used_at DOUBLE PRECISION
        );
        CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);
        CREATE TABLE oauth_tokens (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            client_id TEXT NOT NULL,
            account TEXT NOT NULL,
            service TEXT NOT NULL,
            family TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX oauth_tokens_family ON oauth_tokens (family);
        CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
        CREATE INDEX oauth_tokens_account ON oauth_tokens (account);
        """,
    ),
    (3, "user tokens, private profiles and credit", ";\n".join(ACCOUNT_TABLES)),
    (4, "platforms and signed request ids", ";\n".join(PLATFORM_TABLES)),
)

LATEST = MIGRATIONS[-1][0]


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the pending migrations; the versions applied. Refuses a database from a newer
    release (a daemon never runs against a schema it does not know)."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS notifyd_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        known = {
            row["version"] for row in await conn.fetch("SELECT version FROM notifyd_migrations")
        }
        unknown = sorted(v for v in known if v > LATEST)
        if unknown:
            raise StartupError(
                f"the PostgreSQL schema is at version {max(unknown)}, newer than this notifyd "
                f"knows ({LATEST}): upgrade notifyd on this host"
            )
        for version, name, statements in MIGRATIONS:
            if version in known:
                continue
            await conn.execute(statements)
            await conn.execute(
                "INSERT INTO notifyd_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(version)
    return applied
