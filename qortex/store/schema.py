"""The schema, as numbered migrations applied in order and recorded in ``user_version``.

Each migration runs inside one transaction together with its version bump, so
a crash during a migration leaves the file at the previous version.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: tasks, microtasks, assignments (dropped in 5), results, miners, the event log
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        replicas INTEGER NOT NULL,
        quorum INTEGER NOT NULL,
        max_replicas INTEGER NOT NULL,
        lease_seconds REAL NOT NULL,
        microtasks INTEGER NOT NULL,
        output TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX tasks_by_status ON tasks (status, created_at);
    CREATE INDEX tasks_by_created ON tasks (created_at);
    CREATE TABLE microtasks (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        decision TEXT,
        decided_at REAL
    );
    CREATE INDEX microtasks_by_task ON microtasks (task_id, idx);
    CREATE INDEX microtasks_pending ON microtasks (status) WHERE status = 'pending';
    CREATE TABLE assignments (
        id TEXT PRIMARY KEY,
        microtask_id TEXT NOT NULL,
        miner_id TEXT NOT NULL,
        status TEXT NOT NULL,
        issued_at REAL NOT NULL,
        deadline REAL NOT NULL,
        closed_at REAL
    );
    CREATE INDEX assignments_by_microtask ON assignments (microtask_id);
    CREATE INDEX assignments_leased ON assignments (status) WHERE status = 'leased';
    CREATE TABLE results (
        assignment_id TEXT PRIMARY KEY,
        microtask_id TEXT NOT NULL,
        miner_id TEXT NOT NULL,
        output TEXT NOT NULL,
        signature TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX results_by_microtask ON results (microtask_id);
    CREATE TABLE miners (
        id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        software TEXT NOT NULL DEFAULT '',
        kinds TEXT NOT NULL DEFAULT '[]',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        accepted INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        task_id TEXT,
        miner_id TEXT,
        data TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX events_by_task ON events (task_id, id) WHERE task_id IS NOT NULL;
    CREATE INDEX events_by_miner ON events (miner_id, id) WHERE miner_id IS NOT NULL;
    """,
    # 2: the trust engine: credibility and status per miner, the reputation
    # history, what each counted result weighed, known-answer items, and the
    # rule each decision met
    """
    ALTER TABLE tasks ADD COLUMN target_error REAL NOT NULL DEFAULT 0.001;
    ALTER TABLE tasks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE microtasks ADD COLUMN gold TEXT;
    ALTER TABLE microtasks ADD COLUMN error REAL;
    ALTER TABLE microtasks ADD COLUMN reason TEXT;
    ALTER TABLE results ADD COLUMN network TEXT NOT NULL DEFAULT '';
    ALTER TABLE results ADD COLUMN error REAL;
    ALTER TABLE results ADD COLUMN checked INTEGER;
    ALTER TABLE results ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE results ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX results_by_miner ON results (miner_id);
    ALTER TABLE miners ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
    ALTER TABLE miners ADD COLUMN passes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE miners ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE miners ADD COLUMN allowance INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE miners ADD COLUMN address TEXT NOT NULL DEFAULT '';
    CREATE TABLE reputation (
        miner_id TEXT NOT NULL,
        at REAL NOT NULL,
        reputation INTEGER NOT NULL,
        passes INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX reputation_by_miner ON reputation (miner_id, at);
    """,
    # 3: the operator's console: task deadlines and why a task stopped, the
    # operator's note on a miner, volunteer credit granted and revoked
    """
    ALTER TABLE tasks ADD COLUMN deadline REAL;
    ALTER TABLE tasks ADD COLUMN reason TEXT;
    CREATE INDEX tasks_by_deadline ON tasks (deadline)
        WHERE deadline IS NOT NULL AND status = 'running';
    ALTER TABLE miners ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE miners ADD COLUMN credit REAL NOT NULL DEFAULT 0;
    ALTER TABLE miners ADD COLUMN credit_revoked REAL NOT NULL DEFAULT 0;
    CREATE INDEX miners_by_last_seen ON miners (last_seen);
    CREATE TABLE revoked_credit (
        assignment_id TEXT PRIMARY KEY,
        miner_id TEXT NOT NULL,
        credit REAL NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX revoked_credit_by_miner ON revoked_credit (miner_id);
    """,
    # 4: scoped API keys, idempotent submits, scheduled tasks, webhooks and their outbox
    """
    CREATE TABLE api_keys (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    INSERT INTO api_keys (name, hash, scopes, created_at)
        SELECT 'admin', value, 'admin', 0 FROM meta WHERE key = 'api_key_sha256';
    DELETE FROM meta WHERE key = 'api_key_sha256';
    CREATE TABLE idempotency (
        key_name TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        task_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (key_name, idem_key)
    );
    CREATE INDEX idempotency_by_age ON idempotency (created_at);
    CREATE TABLE schedules (
        task_id TEXT PRIMARY KEY,
        not_before REAL NOT NULL,
        started_at REAL
    );
    CREATE INDEX schedules_waiting ON schedules (not_before) WHERE started_at IS NULL;
    CREATE TABLE callbacks (
        task_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL
    );
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        after_event INTEGER NOT NULL,
        created_at REAL NOT NULL,
        deleted_at REAL
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        webhook_id TEXT,
        task_id TEXT,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        event_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
    CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
    CREATE INDEX events_by_type ON events (type, id);
    """,
    # 5: leases are memory only (a copy out at a stop is void and issued again; an
    # accepted result's row is the record of its assignment), so their table goes
    """
    DROP TABLE assignments;
    """,
    # 6: the microtasks a start reads as rows of their own (settled, or known-answer
    # items) are found per running task through an index, not by reading every
    # pending one; the index of pending microtasks had no reader, so it goes
    """
    DROP INDEX microtasks_pending;
    CREATE INDEX microtasks_settled_or_gold ON microtasks (task_id)
        WHERE status != 'pending' OR gold IS NOT NULL;
    """,
]

LATEST = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: list[str] = MIGRATIONS) -> int:
    """Bring the file up to the last migration; returns the version it started at."""
    start = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = len(migrations)
    if start > latest:
        raise RuntimeError(
            f"database schema version {start} is newer than this Qortex ({latest}); upgrade Qortex"
        )
    for version in range(start + 1, latest + 1):
        script = migrations[version - 1]
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    return start


def configure(conn: sqlite3.Connection, sync: str) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
