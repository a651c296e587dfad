//! Executions: `EXEC#{id}` / `#EXEC`, at the head of the partition its jobs share, and listed
//! per tenant through the `by_tenant` index. Creation writes the tenant's admission, the
//! execution and its jobs together; job writes move its counters.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use reelay_core::domain::{CounterDelta, Execution, ExecutionStatus, Job, Millis};
use reelay_core::ports::{Admission, PageCursor, StoreError, Write};

use super::item::{self, encode, n, s, Attrs, Item};
use super::transactions::{backoff, Cancelled};
use super::{admission, jobs, now_ms, unavailable, DynamoStore, Pages, JOBS_WITH_EXECUTION, RACE_ATTEMPTS};

/// What every execution partition's key starts with.
pub(super) const PK_PREFIX: &str = "EXEC#";
pub(super) const SK: &str = "#EXEC";
/// The index of a tenant's executions, newest first.
pub(super) const BY_TENANT: &str = "by_tenant";

/// The partition of an execution, its jobs, its watchers and its delivery pointers.
pub(super) fn pk(id: &str) -> String {
    format!("{PK_PREFIX}{id}")
}

pub(super) fn key(id: &str) -> Attrs {
    item::key(pk(id), SK)
}

/// The tenant's partition: `by_tenant`'s key, and the admission record's.
pub(super) fn tenant_pk(tenant_id: &str) -> String {
    format!("TENANT#{tenant_id}")
}

fn tenant_sk(created_at: Millis, id: &str) -> String {
    format!("{:020}#{id}", created_at.max(0))
}

fn to_item(execution: &Execution) -> Result<Attrs, StoreError> {
    let mut item = key(&execution.id);
    item.insert("status".into(), s(execution.status.name()));
    item.insert("version".into(), n(execution.version));
    item.insert("open_jobs".into(), n(execution.open_jobs));
    item.insert("completed_jobs".into(), n(execution.completed_jobs));
    if let Some(at) = execution.started_at {
        item.insert("started_at".into(), n(at));
    }
    item.insert("record".into(), s(encode(execution)?));
    item.insert("tenant_pk".into(), s(tenant_pk(&execution.tenant_id)));
    item.insert("tenant_sk".into(), s(tenant_sk(execution.created_at, &execution.id)));
    Ok(item)
}

/// The execution, with the live status and counters over its record.
pub(super) fn from_item(attrs: &Attrs) -> Result<Execution, StoreError> {
    let item = Item::new(attrs);
    let mut execution: Execution = item.record()?;
    let status = item.str("status")?;
    execution.status =
        ExecutionStatus::parse(status).ok_or_else(|| item.corrupt(format!("unknown status {status}")))?;
    execution.started_at = item.opt_i64("started_at")?;
    execution.version = item.i64("version")? as u64;
    execution.open_jobs = item.i64("open_jobs")? as u32;
    execution.completed_jobs = item.i64("completed_jobs")? as u32;
    Ok(execution)
}

pub(super) async fn create(
    store: &DynamoStore,
    execution: &Execution,
    plan: &[Job],
    admission: Admission,
) -> Result<(), StoreError> {
    let execution_put = store.new_item(to_item(execution)?)?;
    let job_puts = plan
        .iter()
        .map(|job| jobs::put(store, job))
        .collect::<Result<Vec<_>, _>>()?;
    let (before, with_execution) = job_puts.split_at(job_puts.len().saturating_sub(JOBS_WITH_EXECUTION));
    let ahead = &plan[..before.len()];
    if !ahead.is_empty() {
        // Refused now rather than after writing the jobs.
        admission::update(store, execution, admission).await?;
        jobs::write_ahead(store, ahead, before).await?;
    }
    let result = create_with_admission(store, execution, admission, &execution_put, with_execution).await;
    if result.is_err() && !ahead.is_empty() {
        jobs::delete(store, ahead).await;
    }
    result
}

/// The execution's own transaction: the tenant's admission (counted again if another
/// submission of the tenant counted first), the execution, and `jobs`.
async fn create_with_admission(
    store: &DynamoStore,
    execution: &Execution,
    admission: Admission,
    execution_put: &TransactWriteItem,
    jobs: &[TransactWriteItem],
) -> Result<(), StoreError> {
    for attempt in 0..RACE_ATTEMPTS {
        let admission_update = admission::update(store, execution, admission).await?;
        let mut items = vec![
            TransactWriteItem::builder().update(admission_update).build(),
            execution_put.clone(),
        ];
        items.extend(jobs.iter().cloned());
        match store.transact(items).await? {
            Ok(()) => return Ok(()),
            Err(Cancelled::Condition(0)) | Err(Cancelled::Conflict) => backoff(attempt).await,
            Err(Cancelled::Condition(_)) => return Err(StoreError::AlreadyExists(execution.id.clone())),
        }
    }
    Err(StoreError::Unavailable(format!(
        "tenant {}'s submissions kept racing; try again",
        execution.tenant_id
    )))
}

pub(super) async fn list(
    store: &DynamoStore,
    tenant_id: &str,
    status: Option<ExecutionStatus>,
    after: Option<&PageCursor>,
    limit: usize,
) -> Result<Vec<Execution>, StoreError> {
    let tenant_pk = tenant_pk(tenant_id);
    let start = after.map(|c| {
        let mut k = key(&c.id);
        k.insert("tenant_pk".into(), s(tenant_pk.clone()));
        k.insert("tenant_sk".into(), s(tenant_sk(c.created_at, &c.id)));
        k
    });
    let mut query = store
        .query_builder()
        .index_name(BY_TENANT)
        .key_condition_expression("tenant_pk = :tenant")
        .expression_attribute_values(":tenant", s(tenant_pk))
        .scan_index_forward(false)
        .set_exclusive_start_key(start);
    // DynamoDB limits before it filters: a filtered listing reads large pages (the cursor is
    // rebuilt from the last execution returned, so the rest is not lost).
    let page: fn(usize) -> i32 = match status {
        Some(_) => |_| 500,
        None => |left| left.clamp(1, 100) as i32,
    };
    if let Some(status) = status {
        query = query
            .filter_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.name()));
    }
    let items = store
        .query(
            query,
            Pages::Upto {
                wanted: limit,
                limit: page,
            },
        )
        .await?;
    let mut found = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
    found.truncate(limit);
    Ok(found)
}

pub(super) async fn get(store: &DynamoStore, id: &str) -> Result<Option<Execution>, StoreError> {
    store.get(pk(id), SK).await?.map(|item| from_item(&item)).transpose()
}

pub(super) async fn with_jobs(store: &DynamoStore, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError> {
    // `#EXEC` sorts before `JOB#`: one query from the partition's start reads both.
    let query = store
        .query_builder()
        .key_condition_expression("pk = :pk AND sk < :end")
        .expression_attribute_values(":pk", s(pk(id)))
        .expression_attribute_values(":end", s("JOB$"))
        .consistent_read(true);
    let mut execution = None;
    let mut found = Vec::new();
    for attrs in store.query(query, Pages::All).await? {
        match Item::new(&attrs).str("sk")? {
            SK => execution = Some(from_item(&attrs)?),
            sk if sk.starts_with(jobs::SK_PREFIX) => found.push(jobs::from_item(&attrs)?),
            _ => {}
        }
    }
    // A write landing between two pages could make counters and jobs disagree; pages only
    // occur past 1 MB, and the next read is whole again.
    Ok(execution.map(|e| (e, found)))
}

pub(super) async fn update(
    store: &DynamoStore,
    prev: &Execution,
    next: &Execution,
) -> Result<Write<Execution>, StoreError> {
    let mut stored = next.clone();
    stored.version = prev.version + 1;
    let mut builder = Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(&stored.id)))
        .condition_expression("version = :prev")
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#record", "record")
        .expression_attribute_values(":status", s(stored.status.name()))
        .expression_attribute_values(":version", n(stored.version))
        .expression_attribute_values(":record", s(encode(&stored)?))
        .expression_attribute_values(":prev", n(prev.version));
    let mut set = vec!["#status = :status", "version = :version", "#record = :record"];
    let mut remove = None;
    match stored.started_at {
        Some(at) => {
            set.push("started_at = :started");
            builder = builder.expression_attribute_values(":started", n(at));
        }
        None => remove = Some(" REMOVE started_at"),
    }
    if stored.status.is_terminal() {
        set.push("expires_at = :expires");
        builder =
            builder.expression_attribute_values(":expires", store.expiry(stored.completed_at.unwrap_or_else(now_ms)));
    }
    let expression = format!("SET {}{}", set.join(", "), remove.unwrap_or_default());
    let update = builder.update_expression(expression).build().map_err(unavailable)?;
    // Leaving flight frees a place in the tenant's admission count, in the same write.
    let leaves_flight = !prev.status.is_terminal() && stored.status.is_terminal();
    if leaves_flight {
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder()
                .update(admission::release(store, &stored.tenant_id)?)
                .build(),
        ];
        if store.transact_patiently(items).await?.is_err() {
            return Ok(Write::Stale);
        }
        // The counters job writes moved are what the stored record shows.
        let live = get(store, &stored.id).await?.ok_or_else(|| StoreError::Corrupt {
            key: stored.id.clone(),
            message: "vanished after an update".into(),
        })?;
        stored.open_jobs = live.open_jobs;
        stored.completed_jobs = live.completed_jobs;
        return Ok(Write::Applied(stored));
    }
    let Some(attrs) = store.apply(&update).await? else {
        return Ok(Write::Stale);
    };
    let live = Item::new(&attrs);
    stored.open_jobs = live.i64("open_jobs")? as u32;
    stored.completed_jobs = live.i64("completed_jobs")? as u32;
    Ok(Write::Applied(stored))
}

/// The update that moves an execution's counters by `delta`.
pub(super) fn counters_update(store: &DynamoStore, id: &str, delta: CounterDelta) -> Result<Update, StoreError> {
    Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(id)))
        .update_expression("ADD open_jobs :open, completed_jobs :completed")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":open", n(delta.open))
        .expression_attribute_values(":completed", n(delta.completed))
        .build()
        .map_err(unavailable)
}

/// The execution leaves `pending` when its first job starts. Not in the job's write: every
/// later start would fail that condition and cancel the transaction. Monotonic and repeated
/// by each start, so a crash between the two writes is repaired by the next (or made moot by
/// the execution's end).
pub(super) async fn start(store: &DynamoStore, id: &str, started_at: Option<Millis>) -> Result<(), StoreError> {
    let result = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(id)))
        .update_expression("SET #status = :processing, started_at = :started ADD version :one")
        .condition_expression("#status = :pending")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":processing", s(ExecutionStatus::Processing.name()))
        .expression_attribute_values(":pending", s(ExecutionStatus::Pending.name()))
        .expression_attribute_values(":started", started_at.map_or(AttributeValue::Null(true), n))
        .expression_attribute_values(":one", n(1))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_sort_keys_order_by_time_then_id() {
        assert!(tenant_sk(999, "z") < tenant_sk(1000, "a"));
        assert!(tenant_sk(1000, "a") < tenant_sk(1000, "b"));
    }
}
