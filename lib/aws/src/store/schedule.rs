//! The sparse `schedule` index: items due at some time carry `sched_pk` (their kind) and
//! `sched_at` (when, in ms), so a tick reads O(due items). Due polls and the stale-queued
//! sweep (which also deletes the remains of creations that died half-way) read it here;
//! due deliveries read it in [`super::deliveries`].

use std::collections::HashSet;

use reelay_core::domain::{Job, JobKey, JobStatus, Millis};
use reelay_core::ports::StoreError;

use super::item::{key, n, s, Item};
use super::{executions, jobs, now_ms, DynamoStore, Pages};

pub(super) const INDEX: &str = "schedule";
/// A job awaiting its provider, to poll.
pub(super) const POLL: &str = "POLL";
/// A queued job, to send again if it stays queued.
pub(super) const QUEUED: &str = "QUEUED";
/// A webhook delivery's next attempt.
pub(super) const DELIVERY: &str = "DELIVERY";

/// How long jobs without their execution are left alone before they count as the remains of
/// a creation that died half-way (creating even the largest plan takes seconds).
const ORPHAN_AFTER_MS: i64 = 60 * 60 * 1000;

/// Where a job stands on the `schedule` index (`sched_pk`, `sched_at`), if anywhere.
pub(super) fn entry_of(job: &Job) -> Option<(&'static str, Millis)> {
    let poll = (job.status == JobStatus::AwaitingProvider)
        .then(|| job.provider.as_ref().and_then(|p| p.next_poll_at))
        .flatten();
    match (poll, job.status, job.queued_at) {
        (Some(at), _, _) => Some((POLL, at)),
        (None, JobStatus::Queued, Some(at)) => Some((QUEUED, at)),
        _ => None,
    }
}

/// The keys of `kind`'s schedule entries due at `now`, soonest first.
pub(super) async fn due(
    store: &DynamoStore,
    kind: &str,
    now: Millis,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let query = store
        .query_builder()
        .index_name(INDEX)
        .key_condition_expression("sched_pk = :kind AND sched_at <= :now")
        .expression_attribute_values(":kind", s(kind))
        .expression_attribute_values(":now", n(now));
    let pages = Pages::Upto {
        wanted: limit,
        limit: |left| left.min(1000) as i32,
    };
    store
        .query(query, pages)
        .await?
        .iter()
        .map(|item| {
            let item = Item::new(item);
            Ok((item.str("pk")?.to_string(), item.str("sk")?.to_string()))
        })
        .collect()
}

pub(super) async fn due_polls(store: &DynamoStore, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
    let keys = due(store, POLL, now, limit).await?;
    Ok(keys.iter().filter_map(|(pk, sk)| jobs::key_of(pk, sk)).collect())
}

pub(super) async fn stale_queued(store: &DynamoStore, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
    // The index's condition is inclusive; the port's cutoff is not.
    let keys = due(store, QUEUED, before - 1, limit).await?;
    let mut stale = Vec::with_capacity(keys.len());
    let (mut live, mut orphans) = (HashSet::new(), HashSet::new());
    for key in keys.iter().filter_map(|(pk, sk)| jobs::key_of(pk, sk)) {
        // Stale jobs are rare: checking that their execution exists costs little.
        if !live.contains(&key.execution_id) && !orphans.contains(&key.execution_id) {
            let Some(job) = jobs::get(store, &key).await? else {
                continue;
            };
            if is_orphan(store, &key.execution_id, job.queued_at.unwrap_or(before)).await? {
                orphans.insert(key.execution_id.clone());
            } else {
                live.insert(key.execution_id.clone());
            }
        }
        if live.contains(&key.execution_id) {
            stale.push(key);
        }
    }
    Ok(stale)
}

/// Whether `execution_id`'s queued job at `queued_at` is the remains of a creation that died
/// half-way: no execution, long after. Such remains are deleted here, all of them.
async fn is_orphan(store: &DynamoStore, execution_id: &str, queued_at: Millis) -> Result<bool, StoreError> {
    if store.get(executions::pk(execution_id), executions::SK).await?.is_some() {
        return Ok(false);
    }
    if queued_at > now_ms() - ORPHAN_AFTER_MS {
        // Perhaps still being created: its stale jobs wait.
        return Ok(true);
    }
    let items = store
        .query_prefix(executions::pk(execution_id), jobs::SK_PREFIX)
        .await?;
    tracing::warn!(execution = %execution_id, jobs = items.len(), "deleting the jobs of an execution never created");
    let keys = items
        .iter()
        .filter_map(|i| Some(key(i.get("pk")?.as_s().ok()?.clone(), i.get("sk")?.as_s().ok()?)))
        .collect();
    store.delete_keys(keys).await;
    Ok(true)
}
