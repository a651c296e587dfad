//! Webhook deliveries: `DELIVERY#{id}` / `#DELIVERY`, on the `schedule` index while an
//! attempt is due, and a pointer `EXEC#{execution}` / `DELIVERY#{id}` in their execution's
//! partition to list them by.

use reelay_core::domain::{DeliveryState, Millis, WebhookDelivery};
use reelay_core::ports::{StoreError, Write};

use super::item::{self, encode, n, s, Attrs, Item};
use super::{executions, now_ms, schedule, unavailable, DynamoStore};

const PREFIX: &str = "DELIVERY#";
const SK: &str = "#DELIVERY";

/// The delivery's partition key; also its pointer's sort key.
fn pk(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn key(id: &str) -> Attrs {
    item::key(pk(id), SK)
}

fn from_item(attrs: &Attrs) -> Result<WebhookDelivery, StoreError> {
    let item = Item::new(attrs);
    let mut delivery: WebhookDelivery = item.record()?;
    delivery.version = item.i64("version")? as u64;
    Ok(delivery)
}

pub(super) async fn create(store: &DynamoStore, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
    let mut record = key(&delivery.id);
    record.insert("version".into(), n(delivery.version));
    record.insert("record".into(), s(encode(delivery)?));
    if let (DeliveryState::Pending, Some(at)) = (delivery.state, delivery.next_attempt_at) {
        record.insert("sched_pk".into(), s(schedule::DELIVERY));
        record.insert("sched_at".into(), n(at));
    }
    let mut pointer = item::key(executions::pk(&delivery.execution_id), &pk(&delivery.id));
    // Deliveries end within about a day of being made.
    pointer.insert(
        "expires_at".into(),
        store.expiry(delivery.created_at + 2 * 24 * 3600 * 1000),
    );
    let items = vec![store.new_item(record)?, store.new_item(pointer)?];
    Ok(store.transact_patiently(items).await?.is_ok())
}

pub(super) async fn get(store: &DynamoStore, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
    store.get(pk(id), SK).await?.map(|item| from_item(&item)).transpose()
}

pub(super) async fn update(
    store: &DynamoStore,
    prev: &WebhookDelivery,
    next: &WebhookDelivery,
) -> Result<Write<WebhookDelivery>, StoreError> {
    let mut stored = next.clone();
    stored.version = prev.version + 1;
    let mut update = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(&stored.id)))
        .condition_expression("version = :prev")
        .expression_attribute_names("#record", "record")
        .expression_attribute_values(":prev", n(prev.version))
        .expression_attribute_values(":version", n(stored.version))
        .expression_attribute_values(":record", s(encode(&stored)?));
    let expression = match (stored.state, stored.next_attempt_at) {
        (DeliveryState::Pending, Some(at)) => {
            update = update
                .expression_attribute_values(":kind", s(schedule::DELIVERY))
                .expression_attribute_values(":at", n(at));
            "SET version = :version, #record = :record, sched_pk = :kind, sched_at = :at"
        }
        (DeliveryState::Pending, None) => "SET version = :version, #record = :record REMOVE sched_pk, sched_at",
        _ => {
            let ended = stored.delivered_at.unwrap_or_else(now_ms);
            update = update.expression_attribute_values(":expires", store.expiry(ended));
            "SET version = :version, #record = :record, expires_at = :expires REMOVE sched_pk, sched_at"
        }
    };
    match update.update_expression(expression).send().await {
        Ok(_) => Ok(Write::Applied(stored)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(Write::Stale)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// The execution's deliveries, by id: its pointers, then the deliveries they name.
pub(super) async fn of_execution(store: &DynamoStore, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
    let pointers = store.query_prefix(executions::pk(execution_id), PREFIX).await?;
    let keys = pointers
        .iter()
        .filter_map(|p| Item::new(p).opt_s("sk")?.strip_prefix(PREFIX).map(key))
        .collect();
    let mut out = store
        .batch_get(keys)
        .await?
        .iter()
        .map(from_item)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The ids of deliveries with an attempt due at `now`, soonest first.
pub(super) async fn due(store: &DynamoStore, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
    let keys = schedule::due(store, schedule::DELIVERY, now, limit).await?;
    Ok(keys
        .into_iter()
        .filter_map(|(pk, _)| pk.strip_prefix(PREFIX).map(str::to_string))
        .collect())
}
