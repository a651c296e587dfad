//! Rate budget windows, the [`RateBudget`] port: `RATE#{scope}` / `W#{window number}`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use reelay_core::ports::{RateBudget, StoreError};

use super::item::{key, n, Attrs, Item};
use super::transactions::backoff;
use super::{now_ms, unavailable, DynamoStore, RACE_ATTEMPTS};

fn window_sk(number: i64) -> String {
    format!("W#{number}")
}

/// A window's count of calls; none yet without its item.
fn calls(item: Option<&Attrs>) -> Result<i64, StoreError> {
    Ok(item
        .map(|i| Item::new(i).opt_i64("calls"))
        .transpose()?
        .flatten()
        .unwrap_or(0))
}

/// A provider's rate budget shared by every function: a counter per scope and fixed window,
/// moved by a conditional `ADD`, and the previous window's count carried in proportion to
/// how much of it still lies within one window of now (the sliding-window estimate). A take
/// costs one read and one conditional write; racing takers never pass the limit together.
#[async_trait]
impl RateBudget for DynamoStore {
    async fn take(&self, scope: &str, limit: u32, window: Duration) -> Result<Result<(), Duration>, StoreError> {
        let width = (window.as_millis() as i64).max(1);
        let pk = format!("RATE#{scope}");
        for attempt in 0..RACE_ATTEMPTS {
            let now = now_ms();
            let number = now / width;
            let into = (now - number * width) as f64 / width as f64;
            let previous = calls(self.get(pk.clone(), &window_sk(number - 1)).await?.as_ref())?;
            // Rounded up: the estimate never lets a burst at a window's turn through twice.
            let carried = (previous as f64 * (1.0 - into)).ceil() as i64;
            let allowed = i64::from(limit) - carried;
            let refused = |current: i64| Ok(Err(rate_wait(previous, current, i64::from(limit), into, width)));
            if allowed <= 0 {
                return refused(0);
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), &window_sk(number))))
                .update_expression("ADD calls :one SET expires_at = :expires")
                .condition_expression("attribute_not_exists(calls) OR calls < :allowed")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":allowed", n(allowed))
                // Kept while it can still be the previous window, then deleted by TTL.
                .expression_attribute_values(":expires", n((number + 2) * width / 1000 + 1))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(f) => return refused(calls(f.item.as_ref())?),
                    other if attempt + 1 < RACE_ATTEMPTS && other.is_transaction_conflict_exception() => {
                        backoff(attempt).await
                    }
                    other => return Err(unavailable(other)),
                },
            }
        }
        Err(StoreError::Unavailable(format!("rate budget {scope} kept racing")))
    }
}

/// How long until one more call fits: until the carried share of the previous window
/// (`previous` calls) and this window's `current` calls are below `limit`, `into` of the way
/// through a window of `width` ms.
fn rate_wait(previous: i64, current: i64, limit: i64, into: f64, width: i64) -> Duration {
    // Within this window: the carried share must fall to `limit - current - 1` or less.
    let room = limit - current - 1;
    let fraction = if room >= 0 && previous > 0 {
        (1.0 - room as f64 / previous as f64).max(into) - into
    } else if room >= 0 {
        0.0
    } else {
        // This window alone is full: in the next one, it is the previous window.
        let next_room = limit - 1;
        (1.0 - into) + (1.0 - next_room as f64 / current.max(1) as f64).max(0.0)
    };
    Duration::from_millis(((fraction * width as f64).ceil() as u64).clamp(1, 2 * width as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_waits_last_until_one_more_call_fits() {
        let w = 60_000;
        // 10 carried in full at the window's start, limit 10: wait a tenth of the window.
        assert_eq!(rate_wait(10, 0, 10, 0.0, w), Duration::from_millis(6_000));
        // The window itself full halfway through: its rest, then a tenth of the next.
        assert_eq!(rate_wait(0, 10, 10, 0.5, w), Duration::from_millis(36_000));
        // Room already (a race lost to a write that came and went): the shortest wait.
        assert_eq!(rate_wait(0, 3, 10, 0.2, w), Duration::from_millis(1));
    }
}
