//! SQS batches through a [`MessageHandler`] (the engine for the job and media queues, the
//! dispatcher for the webhook queue), reporting partial batch failures
//! (`ReportBatchItemFailures`).
//!
//! Per record, in its own span (message id, receive count):
//! * `Handled::Done`: success; the event source mapping deletes the message.
//! * `Handled::RetryAfter(d)` (a rate limit, a job held elsewhere, a retry's backoff): the
//!   message is sent again with delay `d` and the record reported done. A fresh message
//!   starts a fresh receive count, so a job that waits often never reaches the dead-letter
//!   queue. (Should the send fail, the record's visibility becomes `d` and it is kept.)
//! * a handler error: the record's visibility becomes a backoff growing with the receive
//!   count (as the embedded workers wait), and it is kept: a message that fails every time
//!   ends in the dead-letter queue.
//! * a body that is no [`Message`]: reported failed, untouched: the queue's redrive policy
//!   moves it to the dead-letter queue after its receives, where it can be looked at.
//!
//! The whole batch fails only when every record does. Records run concurrently, at most
//! `concurrency` at once.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};
use tracing::Instrument;

use reelay_core::ports::{Message, Queue};
use reelay_core::worker::{backoff, MessageHandler};
use reelay_core::Handled;

/// Records handled at once unless set otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

pub struct BatchHandler {
    handler: Arc<dyn MessageHandler>,
    queue: Arc<dyn Queue>,
    concurrency: usize,
}

impl BatchHandler {
    /// Handles the messages of `queue` (whose visibility it changes) with `handler`.
    pub fn new(handler: Arc<dyn MessageHandler>, queue: Arc<dyn Queue>) -> BatchHandler {
        BatchHandler {
            handler,
            queue,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> BatchHandler {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The Lambda handler (`service_fn(|event| handler.handle(event))`). Never an error: a
    /// failed record is reported in the answer.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        Ok(self.batch(event.payload).await)
    }

    pub async fn batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let failures: Vec<BatchItemFailure> = futures::stream::iter(event.records)
            .map(|record| self.record(record))
            .buffer_unordered(self.concurrency)
            .filter_map(|failure| async move { failure })
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    /// Handles one record; a failure to report, or `None` when it succeeded.
    async fn record(&self, record: SqsMessage) -> Option<BatchItemFailure> {
        // SQS always sets the id; without one the failure names nothing, which Lambda takes as
        // the whole batch failing: safe, since every message is then kept.
        let message_id = record.message_id.clone().unwrap_or_default();
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let span = tracing::info_span!("sqs_record", message_id = %message_id, receive_count);
        let failed = async {
            let body = record.body.as_deref().unwrap_or_default();
            let message = match serde_json::from_str::<Message>(body) {
                Ok(message) => message,
                Err(e) => {
                    // serde's message gives a position, never the body.
                    tracing::error!(error = %e, "unreadable message body: left for the dead-letter queue");
                    return true;
                }
            };
            let delay = match self.handler.handle(&message).await {
                Ok(Handled::Done) => return false,
                Ok(Handled::RetryAfter(delay)) => match self.queue.send(std::slice::from_ref(&message), delay).await {
                    Ok(()) => return false,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not send the message again; delaying it instead");
                        delay
                    }
                },
                Err(e) => {
                    let delay = backoff(receive_count);
                    tracing::warn!(error = %e, ?delay, "message handling failed; will retry");
                    delay
                }
            };
            match record.receipt_handle.as_deref() {
                Some(receipt) => {
                    if let Err(e) = self.queue.retry_later(receipt, delay).await {
                        // The queue's visibility timeout brings it back anyway.
                        tracing::warn!(error = %e, "could not delay the message");
                    }
                }
                None => tracing::warn!("record without a receipt handle: cannot delay it"),
            }
            true
        }
        .instrument(span)
        .await;
        failed.then(|| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failure
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use reelay_core::domain::JobKey;
    use reelay_core::ports::{Delivery, QueueError, StoreError};
    use reelay_core::worker::HandleError;
    use reelay_core::EngineError;

    use super::*;

    /// Job `done` succeeds, `later` asks to come back in 30 s, `broken` fails.
    struct FakeHandler;

    #[async_trait]
    impl MessageHandler for FakeHandler {
        async fn handle(&self, message: &Message) -> Result<Handled, HandleError> {
            match message {
                Message::Job(JobKey { job_id, .. }) if job_id == "done" => Ok(Handled::Done),
                Message::Job(JobKey { job_id, .. }) if job_id == "later" => {
                    Ok(Handled::RetryAfter(Duration::from_secs(30)))
                }
                Message::Webhook { .. } => Ok(Handled::Done),
                _ => Err(EngineError::Store(StoreError::Unavailable("throttled".into())).into()),
            }
        }
    }

    /// Records what the handler asked of the queue; sends fail when `sends_fail`.
    #[derive(Default)]
    struct FakeQueue {
        sends_fail: bool,
        sent: Mutex<Vec<(Message, Duration)>>,
        delayed: Mutex<Vec<(String, Duration)>>,
    }

    #[async_trait]
    impl Queue for FakeQueue {
        async fn send(&self, messages: &[Message], delay: Duration) -> Result<(), QueueError> {
            if self.sends_fail {
                return Err(QueueError::Unavailable("SQS is down".into()));
            }
            let mut sent = self.sent.lock().unwrap();
            sent.extend(messages.iter().map(|m| (m.clone(), delay)));
            Ok(())
        }
        async fn receive(&self, _: usize, _: Duration, _: Duration) -> Result<Vec<Delivery>, QueueError> {
            unreachable!("Lambda receives")
        }
        async fn ack(&self, _: &str) -> Result<(), QueueError> {
            unreachable!("the event source mapping deletes")
        }
        async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
            self.delayed.lock().unwrap().push((receipt.to_string(), delay));
            Ok(())
        }
    }

    fn fixture(name: &str) -> SqsEvent {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    type Outcome = (HashSet<String>, Vec<(String, Duration)>, Vec<(Message, Duration)>);

    /// The records reported failed, the visibility changes and the messages sent again.
    async fn run_with(event: SqsEvent, sends_fail: bool) -> Outcome {
        let queue = Arc::new(FakeQueue {
            sends_fail,
            ..FakeQueue::default()
        });
        let handler = BatchHandler::new(Arc::new(FakeHandler), queue.clone()).with_concurrency(2);
        let response = handler
            .handle(LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        let failed = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let mut delayed = queue.delayed.lock().unwrap().clone();
        delayed.sort();
        let sent = queue.sent.lock().unwrap().clone();
        (failed, delayed, sent)
    }

    async fn run(event: SqsEvent) -> Outcome {
        run_with(event, false).await
    }

    #[tokio::test]
    async fn only_the_records_not_done_are_reported_failed() {
        let (failed, delayed, sent) = run(fixture("sqs-job-batch.json")).await;
        assert_eq!(failed, HashSet::from(["malformed-2".to_string(), "broken-4".into()]));
        // The error's backoff (receive count 3: 8 s) sets the visibility; the unreadable body is
        // left as it is, for the dead-letter queue.
        assert_eq!(delayed, [("receipt-broken".to_string(), Duration::from_secs(8))]);
        // Retry-after is a fresh message, delayed: its receive count starts again.
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            matches!(&sent[0], (Message::Job(k), d) if k.job_id == "later" && *d == Duration::from_secs(30)),
            "{sent:?}"
        );
    }

    #[tokio::test]
    async fn a_retry_after_that_cannot_be_sent_delays_the_record_instead() {
        let (failed, delayed, sent) = run_with(fixture("sqs-job-batch.json"), true).await;
        assert!(sent.is_empty());
        assert!(failed.contains("later-3"), "{failed:?}");
        assert!(
            delayed.contains(&("receipt-later".to_string(), Duration::from_secs(30))),
            "{delayed:?}"
        );
    }

    #[tokio::test]
    async fn a_fully_handled_batch_reports_nothing() {
        let (failed, delayed, sent) = run(fixture("sqs-webhook-batch.json")).await;
        assert!(
            failed.is_empty() && delayed.is_empty() && sent.is_empty(),
            "{failed:?} {delayed:?}"
        );
        let mut event = fixture("sqs-job-batch.json");
        event.records.retain(|r| r.message_id.as_deref() == Some("done-1"));
        let (failed, _, _) = run(event).await;
        assert!(failed.is_empty(), "{failed:?}");
    }

    #[test]
    fn fixture_bodies_are_the_queue_port_messages() {
        let event = fixture("sqs-job-batch.json");
        let message: Message = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(
            message,
            Message::Job(JobKey {
                execution_id: "0190f5b2-8a4c-7d3e-9f10-2b3c4d5e6f70".into(),
                job_id: "done".into()
            })
        );
        let event = fixture("sqs-webhook-batch.json");
        let message: Message = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
        assert!(matches!(message, Message::Webhook { .. }), "{message:?}");
    }
}
