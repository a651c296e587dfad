//! The `Store` port on SQLite. Every write is one transaction whose `WHERE version = ?`
//! makes it conditional; a job's write moves its execution's counters in the same transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use reelay_core::domain::{CounterDelta, Execution, ExecutionStatus, Job, JobKey, JobStatus, Millis, WebhookDelivery};
use reelay_core::ports::{Admission, ApiKeyRecord, EdgeRelease, KeyStore, PageCursor, Store, StoreError, Write};

use crate::db::Db;

pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn new(db: Db) -> Self {
        SqliteStore { db }
    }

    /// After a crash of the one process that owns this database, nobody holds a lease:
    /// clears them so recovered messages can claim their jobs at once.
    pub fn release_all_leases(&self) -> Result<usize, StoreError> {
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(unavailable)?;
        let held: Vec<(String, String)> = {
            let mut stmt = tx
                .prepare("SELECT execution_id, record FROM jobs WHERE status IN ('running', 'awaiting_provider')")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        let mut released = 0;
        for (execution_id, record) in held {
            let mut job: Job = decode(&execution_id, &record)?;
            if job.lease_until.is_some() {
                job.lease_until = None;
                job.version += 1;
                tx.execute(
                    "UPDATE jobs SET version = ?3, record = ?4 WHERE execution_id = ?1 AND job_id = ?2",
                    params![job.execution_id, job.id(), job.version as i64, encode(&job)?],
                )
                .map_err(unavailable)?;
                released += 1;
            }
        }
        tx.commit().map_err(unavailable)?;
        Ok(released)
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, record: &str) -> Result<T, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        message: e.to_string(),
    })
}

/// The indexed columns a job's record implies.
fn next_poll_at(job: &Job) -> Option<Millis> {
    (job.status == JobStatus::AwaitingProvider)
        .then(|| job.provider.as_ref().and_then(|p| p.next_poll_at))
        .flatten()
}

fn insert_job(tx: &Transaction<'_>, job: &Job) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO jobs (execution_id, job_id, status, version, released_by, queued_at, next_poll_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            job.execution_id,
            job.id(),
            job.status.name(),
            job.version as i64,
            job.released_by,
            job.queued_at,
            next_poll_at(job),
            encode(job)?
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Reads an execution, with the live counters and status laid over its record.
fn read_execution(tx: &rusqlite::Connection, id: &str) -> Result<Option<Execution>, StoreError> {
    let row: Option<(String, Option<i64>, i64, i64, i64, String)> = tx
        .query_row(
            "SELECT status, started_at, version, open_jobs, completed_jobs, record FROM executions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let Some((status, started_at, version, open, completed, record)) = row else {
        return Ok(None);
    };
    let mut execution: Execution = decode(id, &record)?;
    execution.status = ExecutionStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        key: id.to_string(),
        message: format!("unknown status {status}"),
    })?;
    execution.started_at = started_at;
    execution.version = version as u64;
    execution.open_jobs = open as u32;
    execution.completed_jobs = completed as u32;
    Ok(Some(execution))
}

fn read_jobs(conn: &rusqlite::Connection, execution_id: &str) -> Result<Vec<Job>, StoreError> {
    records_of(conn, "SELECT record FROM jobs WHERE execution_id = ?1", execution_id)
}

/// The decoded `record` column of every row `sql` selects for one execution.
fn records_of<T: serde::de::DeserializeOwned>(
    conn: &rusqlite::Connection,
    sql: &str,
    execution_id: &str,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let records: Vec<String> = stmt
        .query_map([execution_id], |r| r.get(0))
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    records.iter().map(|r| decode(execution_id, r)).collect()
}

fn read_job(conn: &rusqlite::Connection, key: &JobKey) -> Result<Option<Job>, StoreError> {
    let record: Option<String> = conn
        .prepare_cached("SELECT record FROM jobs WHERE execution_id = ?1 AND job_id = ?2")
        .map_err(unavailable)?
        .query_row(params![key.execution_id, key.job_id], |r| r.get(0))
        .optional()
        .map_err(unavailable)?;
    record.map(|r| decode(&key.job_id, &r)).transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_execution(
        &self,
        execution: &Execution,
        jobs: &[Job],
        admission: Admission,
    ) -> Result<(), StoreError> {
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(unavailable)?;
        admit(&tx, execution, admission)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO executions (id, tenant_id, status, created_at, started_at, version, open_jobs, completed_jobs, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    execution.id,
                    execution.tenant_id,
                    execution.status.name(),
                    execution.created_at,
                    execution.started_at,
                    execution.version as i64,
                    execution.open_jobs,
                    execution.completed_jobs,
                    encode(execution)?
                ],
            )
            .map_err(unavailable)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(execution.id.clone()));
        }
        for job in jobs {
            insert_job(&tx, job)?;
            let mut seen = std::collections::HashSet::new();
            for parent in job.spec.depends_on.iter().filter(|p| seen.insert(*p)) {
                tx.execute(
                    "INSERT INTO pending_edges (execution_id, child_id, parent_id) VALUES (?1, ?2, ?3)",
                    params![job.execution_id, job.id(), parent],
                )
                .map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)
    }

    async fn list_executions(
        &self,
        tenant_id: &str,
        status: Option<ExecutionStatus>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let conn = self.db.read();
        let (after_at, after_id) = after.map_or((i64::MAX, String::new()), |c| (c.created_at, c.id.clone()));
        let ids: Vec<String> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM executions
                     WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2)
                       AND (created_at < ?3 OR (created_at = ?3 AND ?4 != '' AND id < ?4))
                     ORDER BY created_at DESC, id DESC LIMIT ?5",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id,
                        status.map(ExecutionStatus::name),
                        after_at,
                        after_id,
                        limit as i64
                    ],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        ids.iter()
            .filter_map(|id| read_execution(&conn, id).transpose())
            .collect()
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        read_execution(&self.db.read(), id)
    }

    async fn execution_with_jobs(&self, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError> {
        let mut conn = self.db.read();
        // One snapshot, so the counters agree with the jobs.
        let tx = conn.transaction().map_err(unavailable)?;
        let Some(execution) = read_execution(&tx, id)? else {
            return Ok(None);
        };
        let jobs = read_jobs(&tx, id)?;
        Ok(Some((execution, jobs)))
    }

    async fn job(&self, key: &JobKey) -> Result<Option<Job>, StoreError> {
        read_job(&self.db.read(), key)
    }

    async fn jobs(&self, execution_id: &str, job_ids: &[String]) -> Result<Vec<Job>, StoreError> {
        let conn = self.db.read();
        let mut out = Vec::with_capacity(job_ids.len());
        for id in job_ids {
            let key = JobKey {
                execution_id: execution_id.to_string(),
                job_id: id.clone(),
            };
            if let Some(job) = read_job(&conn, &key)? {
                out.push(job);
            }
        }
        Ok(out)
    }

    async fn update_job(&self, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let record = encode(&stored)?;
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(unavailable)?;
        let changed = tx
            .prepare_cached(
                "UPDATE jobs SET status = ?3, version = ?4, released_by = ?5, queued_at = ?6, next_poll_at = ?7, record = ?8
                 WHERE execution_id = ?1 AND job_id = ?2 AND version = ?9",
            )
            .map_err(unavailable)?
            .execute(params![
                stored.execution_id,
                stored.id(),
                stored.status.name(),
                stored.version as i64,
                stored.released_by,
                stored.queued_at,
                next_poll_at(&stored),
                record,
                prev.version as i64
            ])
            .map_err(unavailable)?;
        if changed == 0 {
            return Ok(Write::Stale);
        }
        let delta = CounterDelta::between(prev.status, stored.status);
        if delta.open != 0 || delta.completed != 0 {
            tx.prepare_cached(
                "UPDATE executions SET open_jobs = open_jobs + ?2, completed_jobs = completed_jobs + ?3 WHERE id = ?1",
            )
            .map_err(unavailable)?
            .execute(params![stored.execution_id, delta.open, delta.completed])
            .map_err(unavailable)?;
        }
        if delta.start {
            tx.prepare_cached(
                "UPDATE executions SET status = 'processing', started_at = ?2, version = version + 1 WHERE id = ?1 AND status = 'pending'",
            )
            .map_err(unavailable)?
            .execute(params![stored.execution_id, stored.started_at])
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(Write::Applied(stored))
    }

    async fn release_edge(&self, child: &JobKey, parent: &str, now: Millis) -> Result<EdgeRelease, StoreError> {
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(unavailable)?;
        let removed = tx
            .prepare_cached("DELETE FROM pending_edges WHERE execution_id = ?1 AND child_id = ?2 AND parent_id = ?3")
            .map_err(unavailable)?
            .execute(params![child.execution_id, child.job_id, parent])
            .map_err(unavailable)?
            == 1;
        let remaining: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM pending_edges WHERE execution_id = ?1 AND child_id = ?2)")
            .map_err(unavailable)?
            .query_row(params![child.execution_id, child.job_id], |r| r.get(0))
            .map_err(unavailable)?;
        let row: Option<(String, Option<String>, Option<Millis>)> = tx
            .prepare_cached("SELECT status, released_by, queued_at FROM jobs WHERE execution_id = ?1 AND job_id = ?2")
            .map_err(unavailable)?
            .query_row(params![child.execution_id, child.job_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(unavailable)?;
        let Some((status, released_by, queued_at)) = row else {
            return Err(StoreError::Corrupt {
                key: child.job_id.clone(),
                message: "edge to a job that does not exist".into(),
            });
        };
        let status = JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            key: child.job_id.clone(),
            message: format!("unknown status {status}"),
        })?;
        let release = if !remaining && status == JobStatus::Waiting {
            let mut job = read_job(&tx, child)?.ok_or_else(|| StoreError::Corrupt {
                key: child.job_id.clone(),
                message: "vanished inside a transaction".into(),
            })?;
            job.status = JobStatus::Queued;
            job.queued_at = Some(now);
            job.released_by = Some(parent.to_string());
            job.version += 1;
            tx.prepare_cached(
                "UPDATE jobs SET status = 'queued', version = ?3, released_by = ?4, queued_at = ?5, record = ?6 WHERE execution_id = ?1 AND job_id = ?2",
            )
            .map_err(unavailable)?
            .execute(params![child.execution_id, child.job_id, job.version as i64, parent, now, encode(&job)?])
            .map_err(unavailable)?;
            EdgeRelease {
                removed,
                status: JobStatus::Queued,
                released_by: Some(parent.to_string()),
                queued_at: Some(now),
            }
        } else {
            EdgeRelease {
                removed,
                status,
                released_by,
                queued_at,
            }
        };
        tx.commit().map_err(unavailable)?;
        Ok(release)
    }

    async fn update_execution(&self, prev: &Execution, next: &Execution) -> Result<Write<Execution>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let conn = self.db.lock();
        // Counters are not written here: job writes own them. The live ones come back, so
        // `Applied` is the record as stored.
        let counters: Option<(i64, i64)> = conn
            .query_row(
                "UPDATE executions SET status = ?2, started_at = ?3, version = ?4, record = ?5 WHERE id = ?1 AND version = ?6
                 RETURNING open_jobs, completed_jobs",
                params![
                    stored.id,
                    stored.status.name(),
                    stored.started_at,
                    stored.version as i64,
                    encode(&stored)?,
                    prev.version as i64
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(unavailable)?;
        let Some((open, completed)) = counters else {
            return Ok(Write::Stale);
        };
        stored.open_jobs = open as u32;
        stored.completed_jobs = completed as u32;
        Ok(Write::Applied(stored))
    }

    async fn due_polls(&self, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        keys(
            &self.db.read(),
            "SELECT execution_id, job_id FROM jobs WHERE next_poll_at IS NOT NULL AND next_poll_at <= ?1 ORDER BY next_poll_at LIMIT ?2",
            now,
            limit,
        )
    }

    async fn stale_queued(&self, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        keys(
            &self.db.read(),
            "SELECT execution_id, job_id FROM jobs WHERE status = 'queued' AND queued_at < ?1 ORDER BY queued_at LIMIT ?2",
            before,
            limit,
        )
    }

    async fn add_watcher(&self, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError> {
        self.db
            .lock()
            .prepare_cached(
                "INSERT OR IGNORE INTO watchers (base_execution, base_job, execution_id, job_id) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(unavailable)?
            .execute(params![base.execution_id, base.job_id, watcher.execution_id, watcher.job_id])
            .map_err(unavailable)?;
        Ok(())
    }

    async fn watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<Vec<JobKey>, StoreError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare_cached(
                // DISTINCT: a job watching several jobs of the execution is one watcher of it.
                "SELECT DISTINCT execution_id, job_id FROM watchers WHERE base_execution = ?1 AND (?2 IS NULL OR base_job = ?2)",
            )
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(params![execution_id, job_id], |r| {
                Ok(JobKey {
                    execution_id: r.get(0)?,
                    job_id: r.get(1)?,
                })
            })
            .map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let inserted = self
            .db
            .lock()
            .prepare_cached(
                "INSERT OR IGNORE INTO deliveries (id, execution_id, state, next_attempt_at, version, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(unavailable)?
            .execute(params![
                delivery.id,
                delivery.execution_id,
                delivery.state.name(),
                delivery.next_attempt_at,
                delivery.version as i64,
                encode(delivery)?
            ])
            .map_err(unavailable)?;
        Ok(inserted == 1)
    }

    async fn delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
        let record: Option<String> = self
            .db
            .read()
            .prepare_cached("SELECT record FROM deliveries WHERE id = ?1")
            .map_err(unavailable)?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        record.map(|r| decode(id, &r)).transpose()
    }

    async fn update_delivery(
        &self,
        prev: &WebhookDelivery,
        next: &WebhookDelivery,
    ) -> Result<Write<WebhookDelivery>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let changed = self
            .db
            .lock()
            .prepare_cached(
                "UPDATE deliveries SET state = ?2, next_attempt_at = ?3, version = ?4, record = ?5 WHERE id = ?1 AND version = ?6",
            )
            .map_err(unavailable)?
            .execute(params![
                stored.id,
                stored.state.name(),
                stored.next_attempt_at,
                stored.version as i64,
                encode(&stored)?,
                prev.version as i64
            ])
            .map_err(unavailable)?;
        Ok(if changed == 1 {
            Write::Applied(stored)
        } else {
            Write::Stale
        })
    }

    async fn deliveries(&self, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
        records_of(
            &self.db.read(),
            "SELECT record FROM deliveries WHERE execution_id = ?1 ORDER BY id",
            execution_id,
        )
    }

    async fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
            )
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(params![now, limit as i64], |r| r.get(0))
            .map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)
    }
}

fn key_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        prefix: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const KEY_COLUMNS: &str = "id, tenant_id, name, hash, prefix, created_at, revoked_at";

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.db
            .lock()
            .execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    key.id,
                    key.tenant_id,
                    key.name,
                    key.hash,
                    key.prefix,
                    key.created_at,
                    key.revoked_at
                ],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.db
            .read()
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = ?1"))
            .map_err(unavailable)?
            .query_row([hash], key_record)
            .optional()
            .map_err(unavailable)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
            .map_err(unavailable)?;
        let rows = stmt.query_map([], key_record).map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn revoke_key(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        let changed = self
            .db
            .lock()
            .execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )
            .map_err(unavailable)?;
        Ok(changed == 1)
    }
}

/// Refuses a new execution over the tenant's limits; runs inside the creating transaction,
/// so concurrent submissions are counted one after another.
fn admit(tx: &Transaction<'_>, execution: &Execution, admission: Admission) -> Result<(), StoreError> {
    if admission == Admission::default() {
        return Ok(());
    }
    let in_flight: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM executions WHERE tenant_id = ?1 AND status IN ('pending', 'processing')")
        .map_err(unavailable)?
        .query_row([&execution.tenant_id], |r| r.get(0))
        .map_err(unavailable)?;
    let (recent, oldest): (i64, Option<i64>) = tx
        .prepare_cached("SELECT COUNT(*), MIN(created_at) FROM executions WHERE tenant_id = ?1 AND created_at > ?2")
        .map_err(unavailable)?
        .query_row(params![execution.tenant_id, execution.created_at - 60_000], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(unavailable)?;
    match admission.refusal(in_flight as u64, recent as u64, oldest, execution.created_at) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

fn keys(conn: &rusqlite::Connection, sql: &str, at: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params![at, limit as i64], |r| {
            Ok(JobKey {
                execution_id: r.get(0)?,
                job_id: r.get(1)?,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}
