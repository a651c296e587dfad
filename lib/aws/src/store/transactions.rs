//! Conditional writes: transactions (and how their cancellations read), lone conditional
//! updates, and the pause before a write that lost a race tries again.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use reelay_core::ports::StoreError;

use super::item::Attrs;
use super::{unavailable, DynamoStore, RACE_ATTEMPTS};

/// How a transaction's cancellation came about, from its per-item `CancellationReasons`.
#[derive(Debug)]
pub(super) enum Cancelled {
    /// The item at this index failed its condition.
    Condition(usize),
    /// Another transaction touched the same items at once: try again.
    Conflict,
}

/// Sorts a failed `TransactWriteItems` into a condition failure (which item), a conflict, or
/// an error.
fn classify(err: SdkError<TransactWriteItemsError>) -> Result<Cancelled, StoreError> {
    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
        let codes: Vec<&str> = e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
            return Ok(Cancelled::Condition(i));
        }
        if codes.contains(&"TransactionConflict") {
            return Ok(Cancelled::Conflict);
        }
    }
    Err(unavailable(err))
}

/// A short randomised pause before retrying a lost race.
pub(super) async fn backoff(attempt: usize) {
    // 5 ms doubling to about a second: enough for a few dozen racing writers to take turns.
    let cap = 5u64 << attempt.min(8);
    tokio::time::sleep(Duration::from_millis(1 + rand::random_range(0..cap))).await;
}

impl DynamoStore {
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Cancelled>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => classify(e).map(Err),
        }
    }

    /// `transact`, tried again while it only conflicts with other transactions; the index of
    /// the item whose condition failed, if one did.
    pub(super) async fn transact_patiently(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), usize>, StoreError> {
        for attempt in 0..RACE_ATTEMPTS {
            match self.transact(items.clone()).await? {
                Ok(()) => return Ok(Ok(())),
                Err(Cancelled::Condition(i)) => return Ok(Err(i)),
                Err(Cancelled::Conflict) => backoff(attempt).await,
            }
        }
        Err(StoreError::Unavailable(
            "a write kept conflicting with others; try again".into(),
        ))
    }

    /// Runs one conditional update alone; `None` if its condition failed, else the item as
    /// written. An update the SDK retried after its first try was applied (the answer was
    /// lost) fails its own version condition: the item already holding this update's
    /// `:version` and `:record` counts as applied.
    pub(super) async fn apply(&self, update: &Update) -> Result<Option<Attrs>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key.clone()))
            .update_expression(update.update_expression.clone())
            .set_condition_expression(update.condition_expression.clone())
            .set_expression_attribute_names(update.expression_attribute_names.clone())
            .set_expression_attribute_values(update.expression_attribute_values.clone())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(f) => {
                    let ours = |name: &str| {
                        let value = update.expression_attribute_values.as_ref().and_then(|v| v.get(name));
                        value.is_some() && f.item.as_ref().and_then(|i| i.get(&name[1..])) == value
                    };
                    Ok((ours(":version") && ours(":record")).then(|| f.item.clone().unwrap_or_default()))
                }
                other => Err(unavailable(other)),
            },
        }
    }
}
