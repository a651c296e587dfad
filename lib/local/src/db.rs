//! The one SQLite database (WAL) the embedded store and queue share. Writes go through one
//! connection behind a mutex: SQLite has a single writer anyway, and sharing it avoids
//! busy-wait sleeps between two writers of one process. Reads go through a few read-only
//! connections of their own: in WAL mode a reader sees the last commit without waiting for
//! the writer, so status reads do not queue behind the engine's writes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::{Connection, OpenFlags};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Read connections of a database on disk (an in-memory one reads through its writer).
const READERS: usize = 4;

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
    readers: Arc<[Mutex<Connection>]>,
    next_reader: Arc<AtomicUsize>,
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
        let mut db = Self::init(Connection::open(path)?, durability)?;
        // Opened after the writer has set WAL and made the schema.
        let readers = (0..READERS)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        db.readers = readers.into();
        Ok(db)
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
            readers: Arc::new([]),
            next_reader: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The write connection. A panic while it was held cannot leave a transaction open
    /// (rusqlite rolls back on drop), so a poisoned lock is safe to take over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        take(&self.conn)
    }

    /// A read connection: a free one if any, else the next in turn. Reads only: it is
    /// opened read-only.
    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return self.lock();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return conn,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        take(&self.readers[start % n])
    }
}

/// Locks a connection. Waiting for it blocks the thread, so on the multi-threaded runtime the
/// wait happens in `block_in_place`: the worker's other tasks (the API's requests among them)
/// move to another thread meanwhile instead of stalling behind the lock.
fn take(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.try_lock() {
        Ok(guard) => return guard,
        Err(TryLockError::Poisoned(p)) => return p.into_inner(),
        Err(TryLockError::WouldBlock) => {}
    }
    let wait = || conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_last_commit_without_waiting_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("reelay.db"), Durability::Process).unwrap();
        let count = |db: &Db| -> i64 {
            db.read()
                .query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))
                .unwrap()
        };
        let insert = "INSERT INTO api_keys VALUES ('k1', 't', 'n', 'h1', 'p', 0, NULL)";
        db.lock().execute(insert, []).unwrap();
        assert_eq!(count(&db), 1, "a committed write is read");
        // A write in progress (the writer held, its transaction open): reads go on, and see
        // the last commit, not the write's own rows.
        let mut writer = db.lock();
        let tx = writer.transaction().unwrap();
        tx.execute("INSERT INTO api_keys VALUES ('k2', 't', 'n', 'h2', 'p', 0, NULL)", [])
            .unwrap();
        assert_eq!(count(&db), 1);
        tx.commit().unwrap();
        drop(writer);
        assert_eq!(count(&db), 2);
        assert!(
            db.read().execute("DELETE FROM api_keys", []).is_err(),
            "readers are read-only"
        );
    }
}
