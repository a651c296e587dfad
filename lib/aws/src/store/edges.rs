//! Edges between jobs. Within an execution, a job's `pending` set holds the parents not yet
//! released (the dependency gate); across executions, a watcher item
//! `EXEC#{base id}` / `WATCH#...` names a job that waits on a job of another execution.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use reelay_core::domain::{JobKey, JobStatus, Millis};
use reelay_core::ports::{EdgeRelease, StoreError};

use super::item::{self, n, s, Attrs, Item};
use super::{executions, jobs, now_ms, schedule, unavailable, DynamoStore};

/// A watcher's sort key: length-prefixed parts, so no job id can make two watchers collide,
/// and `watch_prefix(base_job)` selects exactly one base job's watchers.
fn watch_sk(base_job: &str, watcher: &JobKey) -> String {
    format!(
        "{}{}:{}{}",
        watch_prefix(base_job),
        watcher.execution_id.len(),
        watcher.execution_id,
        watcher.job_id
    )
}

/// What every watcher's sort key starts with.
const WATCH: &str = "WATCH#";

fn watch_prefix(base_job: &str) -> String {
    format!("{WATCH}{}:{base_job}", base_job.len())
}

fn has_pending(attrs: &Attrs) -> bool {
    matches!(attrs.get("pending"), Some(AttributeValue::Ss(set)) if !set.is_empty())
}

pub(super) async fn release(
    store: &DynamoStore,
    child: &JobKey,
    parent: &str,
    now: Millis,
) -> Result<EdgeRelease, StoreError> {
    let item_key = jobs::key(&child.execution_id, &child.job_id);
    // Step 1, the gate: removes the edge once (a repeat fails the condition) and notes who
    // removed last.
    let removed = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(item_key.clone()))
        .update_expression("SET last_released = :p DELETE pending :parent")
        .condition_expression("attribute_exists(pk) AND contains(pending, :p)")
        .expression_attribute_values(":parent", AttributeValue::Ss(vec![parent.to_string()]))
        .expression_attribute_values(":p", s(parent))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    let (removed, item) = match removed {
        Ok(out) => (true, out.attributes.unwrap_or_default()),
        Err(e) => match e.into_service_error() {
            UpdateItemError::ConditionalCheckFailedException(f) => match f.item {
                Some(item) => (false, item),
                None => {
                    return Err(StoreError::Corrupt {
                        key: child.job_id.clone(),
                        message: "edge to a job that does not exist".into(),
                    })
                }
            },
            other => return Err(unavailable(other)),
        },
    };
    let status = jobs::from_item(&item)?;
    // Step 2: the last edge gone and the child still waiting, the parent that removed it
    // queues the child. Its repeat may too, so a crash between the steps is repaired by that
    // parent's retry; nobody else's release does it. A repeat that queues the child reports
    // the release as its own (`removed`), so that the engine sends its message.
    let last = Item::new(&item).opt_s("last_released") == Some(parent);
    if has_pending(&item) || status.status != JobStatus::Waiting || !last {
        return Ok(EdgeRelease {
            removed,
            status: status.status,
            released_by: status.released_by,
            queued_at: status.queued_at,
        });
    }
    let queued = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(item_key))
        .update_expression(
            "SET #status = :queued, queued_at = :now, released_by = :parent, sched_pk = :kind, sched_at = :now ADD version :one",
        )
        .condition_expression("attribute_not_exists(pending) AND #status = :waiting AND last_released = :parent")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":queued", s(JobStatus::Queued.name()))
        .expression_attribute_values(":waiting", s(JobStatus::Waiting.name()))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":parent", s(parent))
        .expression_attribute_values(":kind", s(schedule::QUEUED))
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    let (queued_here, item) = match queued {
        Ok(out) => (true, out.attributes.unwrap_or_default()),
        Err(e) => match e.into_service_error() {
            // Another release queued it (or the job moved on) meanwhile: report it as it is.
            UpdateItemError::ConditionalCheckFailedException(f) => (false, f.item.unwrap_or_default()),
            other => return Err(unavailable(other)),
        },
    };
    let job = jobs::from_item(&item)?;
    Ok(EdgeRelease {
        removed: removed || queued_here,
        status: job.status,
        released_by: job.released_by,
        queued_at: job.queued_at,
    })
}

pub(super) async fn add_watcher(store: &DynamoStore, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError> {
    let mut item = item::key(executions::pk(&base.execution_id), &watch_sk(&base.job_id, watcher));
    item.insert("base_job".into(), s(base.job_id.as_str()));
    item.insert("watcher_execution".into(), s(watcher.execution_id.as_str()));
    item.insert("watcher_job".into(), s(watcher.job_id.as_str()));
    // Watching outlives neither execution's retention by much: both end within it.
    item.insert("expires_at".into(), store.expiry(now_ms() + 7 * 24 * 3600 * 1000));
    store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn watchers(
    store: &DynamoStore,
    execution_id: &str,
    job_id: Option<&str>,
) -> Result<Vec<JobKey>, StoreError> {
    let prefix = job_id.map_or_else(|| WATCH.to_string(), watch_prefix);
    let items = store.query_prefix(executions::pk(execution_id), &prefix).await?;
    let mut out: Vec<JobKey> = Vec::new();
    for item in &items {
        let item = Item::new(item);
        let watcher = JobKey {
            execution_id: item.str("watcher_execution")?.to_string(),
            job_id: item.str("watcher_job")?.to_string(),
        };
        // A job watching several jobs of the execution is one watcher of it.
        if !out.contains(&watcher) {
            out.push(watcher);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watcher_keys_never_collide_and_prefixes_select_one_base_job() {
        let w = |e: &str, j: &str| JobKey {
            execution_id: e.into(),
            job_id: j.into(),
        };
        // Without lengths, ("a", "b1" + "c") and ("a", "b" + "1c") would read the same.
        assert_ne!(watch_sk("a", &w("b1", "c")), watch_sk("a", &w("b", "1c")));
        assert_ne!(watch_sk("a#1", &w("x", "y")), watch_sk("a", &w("#1x", "y")));
        assert!(watch_sk("job", &w("e", "j")).starts_with(&watch_prefix("job")));
        assert!(!watch_sk("job2", &w("e", "j")).starts_with(&watch_prefix("job")));
    }
}
