//! The queue runner loop and the timer, over the ports. The embedded stack runs them as
//! tasks; on AWS the same `process` runs inside the SQS-triggered Lambdas.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use async_trait::async_trait;

use crate::engine::{Engine, EngineError};
use crate::ports::{Delivery, Message, Queue};
use crate::webhooks::{DispatchError, Dispatcher};

/// What the queue should do with the message that was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Delete it.
    Done,
    /// Make it visible again after this delay.
    RetryAfter(Duration),
}

/// Why a message was not handled: the queue brings it back after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// What consumes one queue: the engine (job queue) or the webhook dispatcher.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, message: &Message) -> Result<Handled, HandleError>;
}

#[async_trait]
impl MessageHandler for Engine {
    async fn handle(&self, message: &Message) -> Result<Handled, HandleError> {
        Ok(Engine::handle(self, message).await?)
    }
}

/// The job queue's handler on a runner that leaves media work to another (AWS's job runner,
/// sized for provider calls, beside the media runner): the engine, with a media job's message
/// forwarded to `media_queue`, whose runner has the memory and CPUs for ffmpeg. Only that hop
/// is added: releases and sweeps send to the job queue as ever, and a retry comes back on the
/// queue its message came from.
pub struct MediaForwarding {
    engine: Arc<Engine>,
    media_queue: Arc<dyn Queue>,
}

impl MediaForwarding {
    pub fn new(engine: Arc<Engine>, media_queue: Arc<dyn Queue>) -> MediaForwarding {
        MediaForwarding { engine, media_queue }
    }
}

#[async_trait]
impl MessageHandler for MediaForwarding {
    async fn handle(&self, message: &Message) -> Result<Handled, HandleError> {
        Ok(self.engine.handle_on(message, Some(self.media_queue.as_ref())).await?)
    }
}

#[async_trait]
impl MessageHandler for Dispatcher {
    async fn handle(&self, message: &Message) -> Result<Handled, HandleError> {
        Ok(Dispatcher::handle(self, message).await?)
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Runner tasks pulling the queue.
    pub concurrency: usize,
    /// Messages taken per receive.
    pub batch: usize,
    pub visibility: Duration,
    /// Longest wait of one receive for a message.
    pub wait: Duration,
    /// Period of the timer (provider polls and the stale sweep).
    pub tick: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 4,
            batch: 8,
            visibility: Duration::from_secs(60),
            wait: Duration::from_millis(500),
            tick: Duration::from_secs(1),
        }
    }
}

/// The wait before a message whose handling failed comes back: 2, 4, … 64 s by receive count,
/// so a failing store is not hammered.
pub fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.min(6))
}

/// Handles one delivery and tells the queue what became of it.
pub async fn process(handler: &dyn MessageHandler, queue: &dyn Queue, delivery: &Delivery) {
    let outcome = match handler.handle(&delivery.message).await {
        Ok(Handled::Done) => queue.ack(&delivery.receipt).await,
        Ok(Handled::RetryAfter(delay)) => queue.retry_later(&delivery.receipt, delay).await,
        Err(e) => {
            // The queue keeps the message, and brings it back after the backoff.
            let delay = backoff(delivery.receive_count);
            tracing::warn!(error = %e, ?delay, "message handling failed; will retry");
            queue.retry_later(&delivery.receipt, delay).await
        }
    };
    if let Err(e) = outcome {
        // The visibility timeout brings the message back anyway.
        tracing::warn!(error = %e, "could not settle a message with the queue");
    }
}

/// Runs `settings.concurrency` runners until `shutdown` turns true.
pub async fn run_workers(
    handler: Arc<dyn MessageHandler>,
    queue: Arc<dyn Queue>,
    settings: WorkerSettings,
    shutdown: watch::Receiver<bool>,
) {
    let mut runners = tokio::task::JoinSet::new();
    for _ in 0..settings.concurrency.max(1) {
        let (handler, queue, settings, mut shutdown) =
            (handler.clone(), queue.clone(), settings.clone(), shutdown.clone());
        runners.spawn(async move {
            while !*shutdown.borrow() {
                let received = tokio::select! {
                    r = queue.receive(settings.batch, settings.visibility, settings.wait) => r,
                    _ = shutdown.changed() => break,
                };
                match received {
                    Ok(deliveries) => {
                        for delivery in &deliveries {
                            process(handler.as_ref(), queue.as_ref(), delivery).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "queue receive failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
    while runners.join_next().await.is_some() {}
}

/// One tick of the schedule: poll due provider jobs, re-send lost releases and webhook sends.
pub async fn tick(engine: &Engine, dispatcher: &Dispatcher) {
    const BATCH: usize = 100;
    if let Err(e) = engine.poll_due(BATCH).await {
        tracing::warn!(error = %e, "provider poll tick failed");
    }
    if let Err(e) = engine.sweep_stale(BATCH).await {
        tracing::warn!(error = %e, "stale sweep failed");
    }
    if let Err(e) = dispatcher.sweep(BATCH).await {
        tracing::warn!(error = %e, "webhook sweep failed");
    }
}

/// Plays the schedule every `settings.tick` until `shutdown`.
pub async fn run_timer(
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(settings.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = interval.tick() => tick(&engine, &dispatcher).await,
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_stays() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(64));
    }
}
