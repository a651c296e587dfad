//! A tenant's admission record, `TENANT#{tenant}` / `#ADMISSION`: how many of its executions
//! are in flight and, under a per-minute limit, when its last minute's submissions came.
//! Creating an execution counts it (see [`update`]); its end frees the place ([`release`]).

use aws_sdk_dynamodb::types::{AttributeValue, Update};

use reelay_core::domain::Execution;
use reelay_core::ports::{Admission, StoreError};

use super::executions::tenant_pk;
use super::item::{key, n, Item};
use super::{unavailable, DynamoStore};

const SK: &str = "#ADMISSION";

/// Reads the tenant's admission record and refuses over a limit; returns the update that
/// counts the new execution, conditional on nobody else having counted one meanwhile.
pub(super) async fn update(
    store: &DynamoStore,
    execution: &Execution,
    admission: Admission,
) -> Result<Update, StoreError> {
    let pk = tenant_pk(&execution.tenant_id);
    let item = store.get(pk.clone(), SK).await?.unwrap_or_default();
    let item = Item::new(&item);
    let version = item.opt_i64("version")?;
    let in_flight = item.opt_i64("in_flight")?.unwrap_or(0);
    if admission.max_per_minute.is_none() {
        // Only a count: conditional on its value, not on the record's version, so that
        // concurrent submissions do not race each other.
        if let Some(refusal) = admission.refusal(in_flight.max(0) as u64, 0, None, execution.created_at) {
            return Err(refusal);
        }
        let mut builder = Update::builder()
            .table_name(&store.table)
            .set_key(Some(key(pk, SK)))
            .update_expression("ADD in_flight :one")
            .expression_attribute_values(":one", n(1));
        if let Some(max) = admission.max_in_flight {
            builder = builder
                .condition_expression("attribute_not_exists(in_flight) OR in_flight < :max")
                .expression_attribute_values(":max", n(max));
        }
        return builder.build().map_err(unavailable);
    }
    // Submissions of the last minute, as (millisecond, entry), oldest first. A number set
    // holds each value once: same-millisecond submissions are told apart by a fraction.
    let mut recent: Vec<(i64, String)> = match item.attrs.get("recent") {
        Some(AttributeValue::Ns(values)) => values
            .iter()
            .filter_map(|v| Some((v.split('.').next()?.parse().ok()?, v.clone())))
            .collect(),
        _ => Vec::new(),
    };
    recent.retain(|(at, _)| *at > execution.created_at - 60_000);
    recent.sort_unstable();
    if let Some(refusal) = admission.refusal(
        in_flight.max(0) as u64,
        recent.len() as u64,
        recent.first().map(|(at, _)| *at),
        execution.created_at,
    ) {
        return Err(refusal);
    }
    let mut entries: Vec<String> = recent.into_iter().map(|(_, entry)| entry).collect();
    let mut mine = execution.created_at.to_string();
    let mut bump = 1;
    while entries.contains(&mine) {
        // Ends in 1: no trailing zero for DynamoDB to normalise into another's value.
        mine = format!("{}.{bump}1", execution.created_at);
        bump += 1;
    }
    entries.push(mine);
    let (condition, expected) = match version {
        Some(v) => ("version = :seen", n(v)),
        None => ("attribute_not_exists(version)", AttributeValue::Null(true)),
    };
    let mut builder = Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(pk, SK)))
        .update_expression("SET recent = :recent ADD in_flight :one, version :one")
        .condition_expression(condition)
        .expression_attribute_values(":recent", AttributeValue::Ns(entries))
        .expression_attribute_values(":one", n(1));
    if version.is_some() {
        builder = builder.expression_attribute_values(":seen", expected);
    }
    builder.build().map_err(unavailable)
}

/// The update that frees an ending execution's place in its tenant's in-flight count.
/// Unconditional: a tenant without an admission record (a table older than them) must still
/// end its executions.
pub(super) fn release(store: &DynamoStore, tenant_id: &str) -> Result<Update, StoreError> {
    Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(tenant_pk(tenant_id), SK)))
        .update_expression("ADD in_flight :minus")
        .expression_attribute_values(":minus", n(-1))
        .build()
        .map_err(unavailable)
}
