"""The SQLite schema, as the migrations that built it: applied in order at start-up
(``SqliteStorage._migrate``), each once, never edited after a release ships it."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from notifyd.storage.account_schema import ACCOUNT_TABLES, PLATFORM_TABLES

migrations = Migrations("notifyd")


@migrations()
def m001_jobs(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            dedup_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            dialect TEXT NOT NULL,
            poid INTEGER NOT NULL,
            roid INTEGER,
            edid INTEGER,
            soid INTEGER NOT NULL,
            service TEXT NOT NULL,
            profile TEXT NOT NULL,
            api_url TEXT NOT NULL,
            token TEXT,
            user_token TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            run_after REAL NOT NULL,
            lease_until REAL,
            worker_id TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            last_error TEXT,
            result TEXT
        )
        """
    )
    db.execute("CREATE INDEX jobs_due ON jobs (status, run_after, id)")
    db.execute("CREATE INDEX jobs_running_project ON jobs (api_url, poid) WHERE status = 'running'")
    db.execute(
        """
        CREATE TABLE attempts (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            worker_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            error TEXT,
            PRIMARY KEY (job_id, number)
        )
        """
    )


@migrations()
def m002_job_steps(db: sqlite_utils.Database) -> None:
    """Write-back steps already done, so a retried job never repeats them."""
    db.execute("ALTER TABLE jobs ADD COLUMN steps TEXT NOT NULL DEFAULT '{}'")


@migrations()
def m003_written_files(db: sqlite_utils.Database) -> None:
    """Find the job that uploaded an extended data file by index, not by scanning every job."""
    db.execute(
        "CREATE INDEX jobs_written_file ON jobs "
        "(api_url, json_extract(steps, '$.file_id'), service) "
        "WHERE json_extract(steps, '$.file_id') IS NOT NULL"
    )


@migrations()
def m004_projects_and_servers(db: sqlite_utils.Database) -> None:
    """Claims walk projects, not jobs; a BIMserver that is down pauses its projects.

    ``projects`` holds, per BIMserver project, how many of its jobs run and ``next_due``: no
    queued job of the project is due before it (it may be early, never late; NULL when
    nothing is queued). Triggers keep it in step with every change of a job's status or
    ``run_after``, whichever code makes it, so a claim reads the due projects from an index
    and each project's first due job from another: its cost does not grow with the backlog.
    """
    for statement in (
        """
        CREATE TABLE projects (
            api_url TEXT NOT NULL,
            poid INTEGER NOT NULL,
            running INTEGER NOT NULL DEFAULT 0,
            next_due REAL,
            PRIMARY KEY (api_url, poid)
        ) WITHOUT ROWID
        """,
        """
        CREATE INDEX projects_due ON projects (next_due) WHERE next_due IS NOT NULL
        """,
        """
        CREATE INDEX jobs_project_queue ON jobs (api_url, poid, run_after, id)
            WHERE status = 'queued'
        """,
        """
        CREATE INDEX jobs_held_tokens ON jobs (finished_at)
            WHERE status = 'dead' AND token IS NOT NULL
        """,
        """
        INSERT INTO projects (api_url, poid, running, next_due)
            SELECT api_url, poid, sum(status = 'running'),
                min(CASE WHEN status = 'queued' THEN run_after END)
            FROM jobs GROUP BY api_url, poid
        """,
        """
        CREATE TRIGGER jobs_project_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO projects (api_url, poid, running, next_due)
            VALUES (NEW.api_url, NEW.poid, NEW.status = 'running',
                CASE WHEN NEW.status = 'queued' THEN NEW.run_after END)
            ON CONFLICT DO UPDATE SET
                running = running + excluded.running,
                next_due = CASE WHEN excluded.next_due IS NULL THEN next_due
                    ELSE min(coalesce(next_due, excluded.next_due), excluded.next_due) END;
        END
        """,
        """
        CREATE TRIGGER jobs_project_update AFTER UPDATE OF status, run_after ON jobs BEGIN
            UPDATE projects SET
                running = running + (NEW.status = 'running') - (OLD.status = 'running'),
                next_due = CASE WHEN NEW.status = 'queued'
                    THEN min(coalesce(next_due, NEW.run_after), NEW.run_after)
                    ELSE next_due END
            WHERE api_url = NEW.api_url AND poid = NEW.poid;
        END
        """,
        """
        CREATE TABLE servers (
            api_url TEXT PRIMARY KEY,
            down_since REAL NOT NULL,
            failures INTEGER NOT NULL,
            last_failure_at REAL NOT NULL,
            paused_until REAL NOT NULL,
            last_error TEXT NOT NULL
        )
        """,
    ):
        db.execute(statement)


_JOB_COLUMNS = (
    "id, dedup_key, kind, dialect, poid, roid, edid, soid, service, profile, api_url, token, "
    "user_token, status, attempts, max_attempts, run_after, lease_until, worker_id, "
    "cancel_requested, created_at, updated_at, finished_at, last_error, result, steps"
)


@migrations()
def m005_jobs_without_a_project(db: sqlite_utils.Database) -> None:
    """Jobs that no BIMserver project brought (a model uploaded by a BIM-bots client): the
    BIMserver columns become optional and the upload's own are added.

    SQLite cannot drop NOT NULL, so the table is rebuilt as https://sqlite.org/lang_altertable
    .html#otheralter says, every job copied with its id; ``_migrate`` runs it with foreign
    keys off (dropping the old table would otherwise delete every attempt) and checks them
    before the commit. The id sequence is carried over, so no id is ever given twice."""
    (sequence,) = db.execute(
        "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'jobs'"
    ).fetchone()
    for statement in (
        """
        CREATE TABLE jobs_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            dedup_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            dialect TEXT,
            poid INTEGER,
            roid INTEGER,
            edid INTEGER,
            soid INTEGER,
            service TEXT NOT NULL,
            profile TEXT NOT NULL,
            api_url TEXT,
            token TEXT,
            user_token TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            run_after REAL NOT NULL,
            lease_until REAL,
            worker_id TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            last_error TEXT,
            result TEXT,
            steps TEXT NOT NULL DEFAULT '{}',
            input_type TEXT,
            output_type TEXT,
            input_path TEXT,
            input_size INTEGER,
            account TEXT,
            client_id TEXT,
            context_id TEXT,
            CHECK ((api_url IS NULL) = (poid IS NULL)),
            CHECK (api_url IS NOT NULL OR input_path IS NOT NULL)
        )
        """,
        f"INSERT INTO jobs_new ({_JOB_COLUMNS}) SELECT {_JOB_COLUMNS} FROM jobs",  # noqa: S608
        "DROP TABLE jobs",
        "ALTER TABLE jobs_new RENAME TO jobs",
        "CREATE INDEX jobs_due ON jobs (status, run_after, id)",
        "CREATE INDEX jobs_running_project ON jobs (api_url, poid) WHERE status = 'running'",
        "CREATE INDEX jobs_written_file ON jobs "
        "(api_url, json_extract(steps, '$.file_id'), service) "
        "WHERE json_extract(steps, '$.file_id') IS NOT NULL",
        """
        CREATE INDEX jobs_project_queue ON jobs (api_url, poid, run_after, id)
            WHERE status = 'queued'
        """,
        """
        CREATE INDEX jobs_unbound_queue ON jobs (run_after, id)
            WHERE status = 'queued' AND api_url IS NULL
        """,
        """
        CREATE INDEX jobs_held_tokens ON jobs (finished_at)
            WHERE status = 'dead' AND token IS NOT NULL
        """,
        """
        CREATE TRIGGER jobs_project_insert AFTER INSERT ON jobs
        WHEN NEW.api_url IS NOT NULL BEGIN
            INSERT INTO projects (api_url, poid, running, next_due)
            VALUES (NEW.api_url, NEW.poid, NEW.status = 'running',
                CASE WHEN NEW.status = 'queued' THEN NEW.run_after END)
            ON CONFLICT DO UPDATE SET
                running = running + excluded.running,
                next_due = CASE WHEN excluded.next_due IS NULL THEN next_due
                    ELSE min(coalesce(next_due, excluded.next_due), excluded.next_due) END;
        END
        """,
        """
        CREATE TRIGGER jobs_project_update AFTER UPDATE OF status, run_after ON jobs
        WHEN NEW.api_url IS NOT NULL BEGIN
            UPDATE projects SET
                running = running + (NEW.status = 'running') - (OLD.status = 'running'),
                next_due = CASE WHEN NEW.status = 'queued'
                    THEN min(coalesce(next_due, NEW.run_after), NEW.run_after)
                    ELSE next_due END
            WHERE api_url = NEW.api_url AND poid = NEW.poid;
        END
        """,
    ):
        db.execute(statement)
    db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'jobs'", [sequence])
    db.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', ? "
        "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')",
        [sequence],
    )


@migrations()
def m006_accounts_and_grants(db: sqlite_utils.Database) -> None:
    """The BIM-bots OAuth provider: accounts, registered clients (a client may hold several
    secrets: registering the same redirect URL again adds one), codes and tokens, every
    secret as its SHA-256 and every password as scrypt."""
    for statement in (
        """
        CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE oauth_clients (
            client_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            url TEXT,
            description TEXT,
            icon TEXT,
            redirect_uris TEXT NOT NULL,
            redirect_key TEXT NOT NULL UNIQUE,
            style TEXT NOT NULL,
            registered_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE oauth_client_secrets (
            client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
            secret_hash TEXT NOT NULL,
            issued_at REAL NOT NULL,
            PRIMARY KEY (client_id, secret_hash)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE oauth_codes (
            code_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            account TEXT NOT NULL,
            service TEXT NOT NULL,
            redirect_uri TEXT,
            code_challenge TEXT,
            expires_at REAL NOT NULL,
            used_at REAL
        )
        """,
        """
        CREATE TABLE oauth_tokens (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            client_id TEXT NOT NULL,
            account TEXT NOT NULL,
            service TEXT NOT NULL,
            family TEXT NOT NULL,
            expires_at REAL NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """,
        "CREATE INDEX oauth_tokens_family ON oauth_tokens (family)",
        "CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id)",
        "CREATE INDEX oauth_tokens_account ON oauth_tokens (account)",
        "CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at)",
    ):
        db.execute(statement)


@migrations()
def m007_user_tokens_profiles_and_credit(db: sqlite_utils.Database) -> None:
    """Accounts get an e-mail and an admin flag; user tokens (hashed), private profiles and
    the credit ledger (a charge and a refund at most once per job key)."""
    for statement in ACCOUNT_TABLES:
        db.execute(statement)


@migrations()
def m008_platforms(db: sqlite_utils.Database) -> None:
    """Platforms with a shared secret, and the ids of their signed requests (replays)."""
    for statement in PLATFORM_TABLES:
        db.execute(statement)


# Every migration this release knows: a database that recorded another is from a newer one.
MIGRATION_NAMES = tuple(m.name for m in migrations.pending(sqlite_utils.Database(memory=True)))
