//! The one SQLite database (WAL) the embedded store and queue share. One connection behind a
//! mutex: SQLite has a single writer anyway, and sharing it avoids busy-wait sleeps between
//! two connections of one process.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives the process crashing; after a power
    /// cut the last few commits may roll back (never corrupt). The default.
    Process,
    /// `synchronous=FULL`: every commit is fsynced before it returns.
    Power,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS executions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    version        INTEGER NOT NULL,
    -- Counters are moved by job writes in the same transaction; the record's copies are stale.
    open_jobs      INTEGER NOT NULL,
    completed_jobs INTEGER NOT NULL,
    record         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_tenant ON executions (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS executions_by_tenant_status ON executions (tenant_id, status);

CREATE TABLE IF NOT EXISTS jobs (
    execution_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    released_by  TEXT,
    queued_at    INTEGER,
    next_poll_at INTEGER,
    record       TEXT NOT NULL,
    PRIMARY KEY (execution_id, job_id)
) WITHOUT ROWID;
-- Sparse: only jobs awaiting a provider carry a poll time.
CREATE INDEX IF NOT EXISTS jobs_due_polls ON jobs (next_poll_at) WHERE next_poll_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (queued_at) WHERE status = 'queued';

-- One row per dependency edge not yet released: deleting it is the idempotent gate.
CREATE TABLE IF NOT EXISTS pending_edges (
    execution_id TEXT NOT NULL,
    child_id     TEXT NOT NULL,
    parent_id    TEXT NOT NULL,
    PRIMARY KEY (execution_id, child_id, parent_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at, id);

CREATE TABLE IF NOT EXISTS webhook_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS webhook_queue_by_visibility ON webhook_queue (visible_at, id);

-- Jobs of other executions waiting for a base execution's job (`baseExecutionId`).
CREATE TABLE IF NOT EXISTS watchers (
    base_execution TEXT NOT NULL,
    base_job       TEXT NOT NULL,
    execution_id   TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    PRIMARY KEY (base_execution, base_job, execution_id, job_id)
) WITHOUT ROWID;

-- Client webhook messages and their delivery state.
CREATE TABLE IF NOT EXISTS deliveries (
    id              TEXT PRIMARY KEY,
    execution_id    TEXT NOT NULL,
    state           TEXT NOT NULL,
    next_attempt_at INTEGER,
    version         INTEGER NOT NULL,
    record          TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_execution ON deliveries (execution_id);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';

-- API keys, by the SHA-256 of the key (the key itself is never stored).
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#;

impl Db {
    pub fn open(path: &Path, durability: Durability) -> Result<Db, DbError> {
        let conn = Connection::open(path)?;
        Self::init(conn, durability)
    }

    /// A private in-memory database (tests, benchmarks of the engine alone).
    pub fn in_memory() -> Result<Db, DbError> {
        Self::init(Connection::open_in_memory()?, Durability::Process)
    }

    fn init(conn: Connection, durability: Durability) -> Result<Db, DbError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The connection. A panic while it was held cannot leave a transaction open (rusqlite
    /// rolls back on drop), so a poisoned lock is safe to take over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
