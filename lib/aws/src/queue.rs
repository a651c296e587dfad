//! The queue port on an SQS standard queue.
//!
//! * `send` goes out in `SendMessageBatch` calls of up to 10 entries; entries SQS reports as
//!   failed through no fault of ours are sent again (a few attempts), and any still failing
//!   fail the call.
//! * Delays are `DelaySeconds`, whole seconds rounded up, **capped at SQS's 900 s (15 min)**:
//!   a longer delay makes the message visible after 15 minutes. Callers that need longer (the
//!   engine's timers do not) must re-delay the message when it comes back early.
//! * `receive` long-polls for up to 20 s (`WaitTimeSeconds`, whole seconds rounded down; less
//!   than one second is a short poll), at most 10 messages, with the given visibility timeout
//!   (rounded up to whole seconds, at most 12 h). `ApproximateReceiveCount` is the delivery's
//!   `receive_count`.
//! * `ack` is `DeleteMessage`; `retry_later(delay)` is `ChangeMessageVisibility` (delay
//!   rounded up to whole seconds, at most 12 h).
//! * A body that is not a serialised [`Message`] can be handled by no one: like the SQLite
//!   queue, it is deleted and logged, and the receive returns the readable rest.
//!
//! SQS standard queues deliver at least once and order only best-effort, so this adapter does
//! not promise the SQLite queue's strict ordering or stale-receipt behaviour.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use reelay_core::ports::{Delivery, Message, Queue, QueueError};

use crate::sdk_message;

/// Most entries in one `SendMessageBatch` and messages in one `ReceiveMessage`.
const BATCH: usize = 10;
/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// How many times a batch entry SQS failed (not our fault) is sent in all.
const SEND_ATTEMPTS: usize = 4;

/// Where the queue is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSettings {
    pub queue_url: String,
    /// Another SQS endpoint (moto, LocalStack); `None` for AWS's.
    pub endpoint_url: Option<String>,
}

/// The [`Queue`] port on one SQS standard queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

fn unavailable<E: std::error::Error>(err: E) -> QueueError {
    QueueError::Unavailable(sdk_message(&err))
}

/// Whole seconds, rounded up, at most `max`.
fn ceil_secs(d: Duration, max: Duration) -> i32 {
    let d = d.min(max);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs as i32
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, settings: SqsSettings) -> SqsQueue {
        let mut builder = aws_sdk_sqs::config::Builder::from(config);
        if let Some(endpoint) = &settings.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        SqsQueue::from_client(Client::from_conf(builder.build()), settings.queue_url)
    }

    pub fn from_client(client: Client, queue_url: String) -> SqsQueue {
        SqsQueue { client, queue_url }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends one batch (≤ 10), resending the entries SQS failed on its side.
    async fn send_batch(&self, bodies: &[String], delay_seconds: i32) -> Result<(), QueueError> {
        let mut pending: Vec<(String, &String)> = bodies.iter().enumerate().map(|(i, b)| (i.to_string(), b)).collect();
        for attempt in 1..=SEND_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body.as_str())
                        .delay_seconds(delay_seconds)
                        .build()
                        .map_err(unavailable)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            let failed = out.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(ours) = failed.iter().find(|f| f.sender_fault()) {
                return Err(QueueError::Unavailable(format!(
                    "SQS refused a message: {} {}",
                    ours.code(),
                    ours.message().unwrap_or_default()
                )));
            }
            if attempt == SEND_ATTEMPTS {
                let first = &failed[0];
                return Err(QueueError::Unavailable(format!(
                    "SQS failed {} of {} messages after {SEND_ATTEMPTS} attempts: {} {}",
                    failed.len(),
                    pending.len(),
                    first.code(),
                    first.message().unwrap_or_default()
                )));
            }
            tracing::warn!(
                failed = failed.len(),
                attempt,
                "SQS failed batch entries; sending them again"
            );
            pending.retain(|(id, _)| failed.iter().any(|f| f.id() == id));
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, messages: &[Message], delay: Duration) -> Result<(), QueueError> {
        if delay > MAX_DELAY {
            tracing::warn!(?delay, "SQS delays are at most 15 minutes: capping");
        }
        let delay_seconds = ceil_secs(delay, MAX_DELAY);
        let bodies = messages
            .iter()
            .map(|m| serde_json::to_string(m).map_err(|e| QueueError::Malformed(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        for batch in bodies.chunks(BATCH) {
            self.send_batch(batch, delay_seconds).await?;
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, BATCH) as i32;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(ceil_secs(visibility, MAX_VISIBILITY))
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(unavailable)?;
        let mut deliveries = Vec::new();
        for m in out.messages() {
            let Some(receipt) = m.receipt_handle() else {
                continue;
            };
            let body = m.body().unwrap_or_default();
            match serde_json::from_str::<Message>(body) {
                Ok(message) => {
                    let receive_count = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1);
                    deliveries.push(Delivery {
                        message,
                        receipt: receipt.to_string(),
                        receive_count,
                    });
                }
                Err(e) => {
                    // Unreadable bodies cannot be handled by anyone: drop them, loudly.
                    tracing::error!(message_id = m.message_id(), error = %e, "dropping an unreadable queue message");
                    self.ack(receipt).await?;
                }
            }
        }
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(ceil_secs(delay, MAX_VISIBILITY))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_cap() {
        assert_eq!(ceil_secs(Duration::ZERO, MAX_DELAY), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1), MAX_DELAY), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2), MAX_DELAY), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3600), MAX_DELAY), 900);
        assert_eq!(ceil_secs(Duration::from_secs(86_400), MAX_VISIBILITY), 43_200);
    }
}
