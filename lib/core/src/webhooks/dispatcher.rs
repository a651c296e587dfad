//! Delivering webhook messages: one attempt per due delivery, claimed by a conditional
//! write first (so duplicate queue messages do not post twice), judged, and rescheduled on
//! the retry schedule until delivered, refused, or dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::schedule::{judge, RetrySchedule, Verdict};
use super::signature;
use super::transport::{OutboundRequest, WebhookTransport};
use crate::domain::{DeliveryState, WebhookDelivery};
use crate::ports::{Clock, Message, Queue, QueueError, Store, StoreError, Write};
use crate::secrets::Sealer;
use crate::worker::Handled;

/// Why a webhook message was not handled: the queue brings it back.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("delivery {0} kept changing under us; try again")]
    Contention(String),
}

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub schedule: RetrySchedule,
    /// How long one attempt may take; an attempt is held this long (plus a margin) before
    /// another sender may take it over.
    pub attempt_timeout: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            schedule: RetrySchedule::default(),
            attempt_timeout: Duration::from_secs(20),
        }
    }
}

/// The longest delay a queue message can carry (SQS: 15 minutes); longer waits are re-armed.
const MAX_MESSAGE_DELAY: Duration = Duration::from_secs(900);

/// How many times a delivery is re-read after losing its claim to another sender before the
/// message is left to the queue's retry.
const MAX_RACES: usize = 16;

pub struct Dispatcher {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    transport: Arc<dyn WebhookTransport>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        transport: Arc<dyn WebhookTransport>,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        settings: DispatchSettings,
    ) -> Self {
        Dispatcher {
            store,
            queue,
            transport,
            sealer,
            clock,
            settings,
        }
    }

    /// Handles a message of the webhook queue.
    pub async fn handle(&self, message: &Message) -> Result<Handled, DispatchError> {
        match message {
            Message::Webhook { delivery_id } => self.deliver(delivery_id).await,
            other => {
                tracing::warn!(?other, "a job message reached the webhook queue; dropped");
                Ok(Handled::Done)
            }
        }
    }

    /// Makes the attempt that is due, if one is.
    pub async fn deliver(&self, id: &str) -> Result<Handled, DispatchError> {
        for _ in 0..MAX_RACES {
            let Some(delivery) = self.store.delivery(id).await? else {
                return Ok(Handled::Done);
            };
            if delivery.state != DeliveryState::Pending {
                return Ok(Handled::Done);
            }
            let now = self.clock.now();
            let due = delivery.next_attempt_at.unwrap_or(now);
            if due > now {
                let wait = Duration::from_millis((due - now) as u64);
                return Ok(Handled::RetryAfter(wait.min(MAX_MESSAGE_DELAY)));
            }
            let hold = self.settings.attempt_timeout + Duration::from_secs(30);
            let mut claim = delivery.clone();
            claim.attempts += 1;
            claim.next_attempt_at = Some(now + hold.as_millis() as i64);
            match self.store.update_delivery(&delivery, &claim).await? {
                Write::Applied(claimed) => return self.attempt(claimed).await,
                Write::Stale => continue,
            }
        }
        Err(DispatchError::Contention(id.to_string()))
    }

    async fn attempt(&self, claimed: WebhookDelivery) -> Result<Handled, DispatchError> {
        let secret = match claimed.secret.as_ref().map(|s| self.sealer.open(s)).transpose() {
            Ok(secret) => secret,
            Err(e) => {
                // Sending unsigned would mislead the receiver; this needs an operator.
                let mut next = claimed.clone();
                next.state = DeliveryState::Failed;
                next.next_attempt_at = None;
                next.last_error = Some(e.to_string());
                self.store.update_delivery(&claimed, &next).await?;
                return Ok(Handled::Done);
            }
        };
        let now = self.clock.now();
        let body = Bytes::from(claimed.body.clone());
        let headers = signature::headers(secret.as_ref().map(|s| s.expose()), &claimed.id, now / 1000, &body);
        let result = self
            .transport
            .post(OutboundRequest {
                url: claimed.url.clone(),
                headers,
                body,
            })
            .await;
        let verdict = judge(&result);
        let now = self.clock.now();
        let mut next = claimed.clone();
        next.last_status_code = result.as_ref().ok().map(|a| a.status);
        next.last_error = match (&result, &verdict) {
            (_, Verdict::Delivered) => None,
            (Ok(answer), Verdict::Gone) => Some(format!("the receiver answered {}: stopped for good", answer.status)),
            (Ok(answer), _) => Some(format!("the receiver answered {}", answer.status)),
            (Err(e), _) => Some(e.to_string()),
        };
        next.next_attempt_at = None;
        let mut resend = None;
        match verdict {
            Verdict::Delivered => {
                next.state = DeliveryState::Delivered;
                next.delivered_at = Some(now);
            }
            Verdict::Gone | Verdict::GiveUp => next.state = DeliveryState::Failed,
            Verdict::Retry { retry_after } => match self.settings.schedule.next_delay(claimed.attempts, retry_after) {
                Some(delay) => {
                    next.next_attempt_at = Some(now + delay.as_millis() as i64);
                    resend = Some(delay.min(MAX_MESSAGE_DELAY));
                }
                None => {
                    next.state = DeliveryState::Dead;
                    tracing::warn!(delivery = %claimed.id, attempts = claimed.attempts, "webhook dead-lettered after its last attempt");
                }
            },
        }
        tracing::info!(delivery = %claimed.id, attempt = claimed.attempts, state = next.state.name(), status = ?next.last_status_code, "webhook attempt");
        // Stale: our hold lapsed and another sender took over; its write stands.
        if let Write::Applied(_) = self.store.update_delivery(&claimed, &next).await? {
            if let Some(delay) = resend {
                let message = Message::Webhook {
                    delivery_id: claimed.id.clone(),
                };
                self.queue.send(&[message], delay).await?;
            }
        }
        Ok(Handled::Done)
    }

    /// Re-sends messages for deliveries due for over a minute (a lost send, or a wait longer
    /// than a queue delay); returns how many.
    pub async fn sweep(&self, limit: usize) -> Result<usize, DispatchError> {
        let before = self.clock.now() - 60_000;
        let ids = self.store.due_deliveries(before, limit).await?;
        let messages: Vec<Message> = ids
            .into_iter()
            .map(|delivery_id| Message::Webhook { delivery_id })
            .collect();
        self.queue.send(&messages, Duration::ZERO).await?;
        Ok(messages.len())
    }
}
