//! Batch reads and deletes: many keys at once, 100 (reads) or 25 (deletes) a request, with
//! what DynamoDB leaves unprocessed tried again.

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, WriteRequest};
use reelay_core::ports::StoreError;

use super::item::Attrs;
use super::transactions::backoff;
use super::{sdk_message, unavailable, DynamoStore, RACE_ATTEMPTS};

impl DynamoStore {
    /// The items at `keys` (consistent reads, 100 keys a request, unprocessed keys retried);
    /// missing ones are left out, in no particular order.
    pub(super) async fn batch_get(&self, keys: Vec<Attrs>) -> Result<Vec<Attrs>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(unavailable)?;
                let result = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                items.extend(
                    result
                        .responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default(),
                );
                if let Some(left) = result.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = left.keys;
                    if !pending.is_empty() {
                        backoff(1).await;
                    }
                }
            }
        }
        Ok(items)
    }

    /// Deletes the items at `keys`, best effort: a failure is logged, and what is left the
    /// stale sweep finds (its only callers clean up jobs whose execution was never created).
    pub(super) async fn delete_keys(&self, keys: Vec<Attrs>) {
        for chunk in keys.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .filter_map(|k| {
                    let delete = DeleteRequest::builder().set_key(Some(k.clone())).build().ok()?;
                    Some(WriteRequest::builder().delete_request(delete).build())
                })
                .collect();
            let mut pending = Some(requests);
            for attempt in 0..RACE_ATTEMPTS {
                let Some(requests) = pending.take().filter(|r| !r.is_empty()) else {
                    break;
                };
                match self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                {
                    Ok(out) => {
                        pending = out.unprocessed_items.and_then(|mut u| u.remove(&self.table));
                        if pending.as_ref().is_some_and(|p| !p.is_empty()) {
                            backoff(attempt).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %sdk_message(&e), "could not delete the jobs of an execution not created");
                        break;
                    }
                }
            }
        }
    }
}
