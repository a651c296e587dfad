//! Jobs: `EXEC#{execution}` / `JOB#{job}`, in their execution's partition. The JSON record
//! holds the job; what conditional writes move lives beside it (see the module's key design).

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use reelay_core::domain::{CounterDelta, Job, JobKey, JobStatus};
use reelay_core::ports::{StoreError, Write};

use super::item::{self, encode, n, s, Attrs, Item};
use super::{executions, now_ms, schedule, unavailable, DynamoStore, MAX_TRANSACTION_ITEMS};

/// What every job's sort key starts with.
pub(super) const SK_PREFIX: &str = "JOB#";

fn sk(job_id: &str) -> String {
    format!("{SK_PREFIX}{job_id}")
}

pub(super) fn key(execution_id: &str, job_id: &str) -> Attrs {
    item::key(executions::pk(execution_id), &sk(job_id))
}

/// The job a table key names, if it names one.
pub(super) fn key_of(pk: &str, sk: &str) -> Option<JobKey> {
    Some(JobKey {
        execution_id: pk.strip_prefix(executions::PK_PREFIX)?.to_string(),
        job_id: sk.strip_prefix(SK_PREFIX)?.to_string(),
    })
}

/// The job, with the live attributes over its record.
pub(super) fn from_item(attrs: &Attrs) -> Result<Job, StoreError> {
    let item = Item::new(attrs);
    let mut job: Job = item.record()?;
    let status = item.str("status")?;
    job.status = JobStatus::parse(status).ok_or_else(|| item.corrupt(format!("unknown status {status}")))?;
    job.version = item.i64("version")? as u64;
    job.released_by = item.opt_s("released_by").map(str::to_string);
    job.queued_at = item.opt_i64("queued_at")?;
    Ok(job)
}

/// A transaction's put of a new job.
pub(super) fn put(store: &DynamoStore, job: &Job) -> Result<TransactWriteItem, StoreError> {
    let mut item = key(&job.execution_id, job.id());
    item.insert("status".into(), s(job.status.name()));
    item.insert("version".into(), n(job.version));
    item.insert("record".into(), s(encode(job)?));
    if let Some(by) = &job.released_by {
        item.insert("released_by".into(), s(by.as_str()));
    }
    if let Some(at) = job.queued_at {
        item.insert("queued_at".into(), n(at));
    }
    if let Some((kind, at)) = schedule::entry_of(job) {
        item.insert("sched_pk".into(), s(kind));
        item.insert("sched_at".into(), n(at));
    }
    // A set: each parent once, however often the plan names it.
    let pending: BTreeSet<String> = job.spec.depends_on.iter().cloned().collect();
    if !pending.is_empty() {
        item.insert("pending".into(), AttributeValue::Ss(pending.into_iter().collect()));
    }
    store.new_item(item)
}

/// The update that writes `stored` over the job item at `prev_version`.
fn update_of(store: &DynamoStore, stored: &Job, prev_version: u64) -> Result<Update, StoreError> {
    let mut set = vec!["#status = :status", "version = :version", "#record = :record"];
    let mut remove = Vec::new();
    let mut values = HashMap::from([
        (":status".to_string(), s(stored.status.name())),
        (":version".to_string(), n(stored.version)),
        (":record".to_string(), s(encode(stored)?)),
        (":prev".to_string(), n(prev_version)),
    ]);
    match &stored.released_by {
        Some(by) => {
            set.push("released_by = :released_by");
            values.insert(":released_by".into(), s(by.as_str()));
        }
        None => remove.push("released_by"),
    }
    match stored.queued_at {
        Some(at) => {
            set.push("queued_at = :queued_at");
            values.insert(":queued_at".into(), n(at));
        }
        None => remove.push("queued_at"),
    }
    match schedule::entry_of(stored) {
        Some((kind, at)) => {
            set.push("sched_pk = :sched_pk, sched_at = :sched_at");
            values.insert(":sched_pk".into(), s(kind));
            values.insert(":sched_at".into(), n(at));
        }
        None => remove.push("sched_pk, sched_at"),
    }
    if stored.status.is_terminal() {
        set.push("expires_at = :expires_at");
        values.insert(
            ":expires_at".into(),
            store.expiry(stored.completed_at.unwrap_or_else(now_ms)),
        );
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(&stored.execution_id, stored.id())))
        .update_expression(expression)
        .condition_expression("version = :prev")
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#record", "record")
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(unavailable)
}

pub(super) async fn get(store: &DynamoStore, job: &JobKey) -> Result<Option<Job>, StoreError> {
    store
        .get(executions::pk(&job.execution_id), &sk(&job.job_id))
        .await?
        .map(|item| from_item(&item))
        .transpose()
}

/// The jobs of `execution_id` named in `job_ids` that exist, in the order asked.
pub(super) async fn get_many(
    store: &DynamoStore,
    execution_id: &str,
    job_ids: &[String],
) -> Result<Vec<Job>, StoreError> {
    let mut unique: Vec<&String> = Vec::new();
    for id in job_ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    let keys = unique.iter().map(|id| key(execution_id, id)).collect();
    let mut found: HashMap<String, Job> = HashMap::new();
    for item in store.batch_get(keys).await? {
        let job = from_item(&item)?;
        found.insert(job.id().to_string(), job);
    }
    // In the order asked.
    Ok(unique.iter().filter_map(|id| found.remove(id.as_str())).collect())
}

/// Writes `next` over `prev`, and moves the execution's counters in the same transaction
/// when the status change moves them.
pub(super) async fn update(store: &DynamoStore, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError> {
    let mut stored = next.clone();
    stored.version = prev.version + 1;
    let update = update_of(store, &stored, prev.version)?;
    let delta = CounterDelta::between(prev.status, stored.status);
    let applied = if delta.open == 0 && delta.completed == 0 {
        store.apply(&update).await?.is_some()
    } else {
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder()
                .update(executions::counters_update(store, &stored.execution_id, delta)?)
                .build(),
        ];
        match store.transact_patiently(items).await? {
            Ok(()) => true,
            Err(0) => false,
            Err(_) => {
                return Err(StoreError::Corrupt {
                    key: stored.execution_id.clone(),
                    message: "a job of an execution that does not exist".into(),
                })
            }
        }
    };
    if !applied {
        return Ok(Write::Stale);
    }
    if delta.start {
        executions::start(store, &stored.execution_id, stored.started_at).await?;
    }
    Ok(Write::Applied(stored))
}

/// Writes a large plan's first `jobs` (their `puts`) ahead of its execution, a transaction
/// at a time. On a failure, deletes those written and fails.
pub(super) async fn write_ahead(
    store: &DynamoStore,
    jobs: &[Job],
    puts: &[TransactWriteItem],
) -> Result<(), StoreError> {
    let mut written = 0;
    for chunk in puts.chunks(MAX_TRANSACTION_ITEMS) {
        let outcome = match store.transact_patiently(chunk.to_vec()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::AlreadyExists("a job of this execution".into())),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            delete(store, &jobs[..written]).await;
            return Err(e);
        }
        written += chunk.len();
    }
    Ok(())
}

/// Deletes the first jobs of a plan whose execution was not created (best effort: what is
/// left, the stale sweep finds).
pub(super) async fn delete(store: &DynamoStore, jobs: &[Job]) {
    let keys = jobs.iter().map(|j| key(&j.execution_id, j.id())).collect();
    store.delete_keys(keys).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_come_back_from_table_keys() {
        assert_eq!(
            key_of("EXEC#e1", "JOB#a#b"),
            Some(JobKey {
                execution_id: "e1".into(),
                job_id: "a#b".into()
            })
        );
        assert_eq!(key_of("DELIVERY#x", "#DELIVERY"), None);
    }
}
