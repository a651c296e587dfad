//! The engine: submits executions and moves every job along its states, each move a
//! conditional write, so that any handler may run twice (at-least-once delivery) or crash
//! at any point and a retry finishes the work.

mod base_jobs;
mod cancel;
mod lifecycle;
mod media_jobs;
mod provider_jobs;
mod registry;
mod submit;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use registry::Providers;

pub use cancel::{CancelError, Cancelled};

use crate::domain::{Execution, ExecutionStatus, Job, JobKey, JobStatus, Millis};
use crate::outbound::AddressPolicy;
use crate::plan::{Params, PlanError, PlanLimits};
use crate::ports::{
    Admission, BlobError, Blobs, Clock, Media, Message, ProviderStatus, Queue, QueueError, Store, StoreError, Write,
};
use crate::secrets::Sealer;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a claimed job is held before another runner may take it over.
    pub lease: Duration,
    /// Attempts at a job whose work fails for a passing reason.
    pub max_attempts: u32,
    /// First delay before retrying a passing failure; doubles per attempt.
    pub retry_base: Duration,
    /// First poll of a polling model after submit; then × 1.5 up to `poll_max`.
    pub poll_first: Duration,
    pub poll_max: Duration,
    /// A webhook model is polled too, after this grace, since webhooks get lost.
    pub webhook_grace: Duration,
    /// A `queued` job nobody claimed for this long has its message sent again by the sweep.
    pub stale_queued_after: Duration,
    /// A retried completion re-sends a child it released only if the child has waited this
    /// long unclaimed (its send may have been lost in a crash). Sooner, the first send is
    /// presumed in flight: re-sending on every repeat would multiply messages down a chain.
    /// Keep it below the queue's visibility timeout, after which the retry comes.
    pub resend_after: Duration,
    pub limits: PlanLimits,
    /// Per-tenant limits on new executions.
    pub admission: Admission,
    /// Which webhook URLs a submission may give (checked again at each connection).
    pub outbound_addresses: AddressPolicy,
    /// This server's public base URL (`https://api.example.com`): providers call back at
    /// `{base}/api/webhooks/job/{record}?token=…`. Unset: no callbacks, polling only.
    pub callback_base: Option<String>,
    /// Events kept for slow observers before the oldest are dropped for them.
    pub event_buffer: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lease: Duration::from_secs(600),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            poll_first: Duration::from_secs(5),
            poll_max: Duration::from_secs(300),
            webhook_grace: Duration::from_secs(60),
            stale_queued_after: Duration::from_secs(300),
            resend_after: Duration::from_secs(20),
            limits: PlanLimits::default(),
            admission: Admission {
                max_in_flight: Some(100),
                max_per_minute: Some(120),
            },
            outbound_addresses: AddressPolicy::strict(),
            callback_base: None,
            event_buffer: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("no job {0:?}")]
    JobNotFound(JobKey),
    #[error("the callback token does not match job {0:?}")]
    BadToken(JobKey),
    #[error("job {0:?} kept changing under us; try again")]
    Contention(JobKey),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the plan is invalid ({} problems)", .0.len())]
    Invalid(Vec<PlanError>),
    /// The `baseExecutionId` names no execution of this tenant.
    #[error("no execution {0} to build on")]
    BaseNotFound(String),
    #[error("{reason}")]
    Limited { reason: String, retry_after: Duration },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitReached { reason, retry_after } => SubmitError::Limited { reason, retry_after },
            e => SubmitError::Engine(e.into()),
        }
    }
}

impl From<QueueError> for SubmitError {
    fn from(e: QueueError) -> Self {
        SubmitError::Engine(e.into())
    }
}

/// Why a provider callback was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRejected {
    #[error(transparent)]
    Callback(#[from] crate::ports::CallbackError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for CallbackRejected {
    fn from(e: StoreError) -> Self {
        CallbackRejected::Engine(e.into())
    }
}

impl From<QueueError> for CallbackRejected {
    fn from(e: QueueError) -> Self {
        CallbackRejected::Engine(e.into())
    }
}

/// What the queue should do with the message that was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Delete it.
    Done,
    /// Make it visible again after this delay.
    RetryAfter(Duration),
}

/// A state change, for in-process observers (`reelay run`'s live lines, waiting clients).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Job {
        key: JobKey,
        status: JobStatus,
        /// When the change was written (observers may read it later).
        at: std::time::Instant,
    },
    ExecutionEnded {
        id: String,
        status: ExecutionStatus,
    },
}

/// Where a provider's answer came from: its callback is checked against the job's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    Webhook { token: &'a str },
    Poll,
}

/// What became of a provider's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The terminal answer was recorded and the job sent on to finish.
    Outcome,
    /// Still running: next poll scheduled.
    Rescheduled,
    /// The job had moved on already (duplicate or late answer): nothing changed.
    Ignored,
}

impl Recorded {
    pub fn name(self) -> &'static str {
        match self {
            Recorded::Outcome => "outcome",
            Recorded::Rescheduled => "rescheduled",
            Recorded::Ignored => "ignored",
        }
    }
}

pub struct Engine {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    blobs: Arc<dyn Blobs>,
    media: Arc<dyn Media>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    webhook_queue: Arc<dyn Queue>,
    sealer: Sealer,
    settings: EngineSettings,
    events: broadcast::Sender<Event>,
}

/// The ports an engine runs on.
pub struct Ports {
    pub store: Arc<dyn Store>,
    /// Job messages (and cancellations).
    pub queue: Arc<dyn Queue>,
    /// Client-webhook deliveries.
    pub webhook_queue: Arc<dyn Queue>,
    /// Seals secrets before they are stored.
    pub sealer: Sealer,
    pub blobs: Arc<dyn Blobs>,
    pub media: Arc<dyn Media>,
    pub providers: Providers,
    pub clock: Arc<dyn Clock>,
}

/// How many times a handler re-reads after losing a conditional write before giving up
/// (the message is then retried by the queue).
pub(crate) const MAX_RACES: usize = 16;

impl Engine {
    pub fn new(ports: Ports, settings: EngineSettings) -> Engine {
        let (events, _) = broadcast::channel(settings.event_buffer.max(1));
        Engine {
            store: ports.store,
            queue: ports.queue,
            blobs: ports.blobs,
            media: ports.media,
            providers: ports.providers,
            clock: ports.clock,
            webhook_queue: ports.webhook_queue,
            sealer: ports.sealer,
            settings,
            events,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Signs the outputs' URLs anew for a reader: a presigned URL made when a job ended lapses
    /// with it, or earlier with the temporary credentials that signed it.
    pub async fn fresh_urls(&self, execution: &mut Execution, jobs: &mut [Job]) -> Result<(), EngineError> {
        let outputs = execution
            .result
            .iter_mut()
            .chain(execution.outputs.values_mut())
            .chain(jobs.iter_mut().filter_map(|j| j.output.as_mut()));
        for output in outputs {
            output.url = self.blobs.url(&output.key).await?;
        }
        Ok(())
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    fn emit_job(&self, key: JobKey, status: JobStatus) {
        // No subscriber is fine: events are for observers, never for correctness.
        let _ = self.events.send(Event::Job {
            key,
            status,
            at: std::time::Instant::now(),
        });
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Moves the job a message names as far as it can go now.
    pub async fn handle(&self, message: &Message) -> Result<Handled, EngineError> {
        let key = match message {
            Message::Job(key) => key,
            Message::Cancel { execution_id } => {
                self.carry_out_cancel(execution_id).await?;
                return Ok(Handled::Done);
            }
            Message::Webhook { .. } => {
                tracing::warn!("a webhook message reached the job queue; dropped");
                return Ok(Handled::Done);
            }
        };
        for _ in 0..MAX_RACES {
            let Some(job) = self.store.job(key).await? else {
                tracing::warn!(execution = %key.execution_id, job = %key.job_id, "message for an unknown job dropped");
                return Ok(Handled::Done);
            };
            if let Some(handled) = self.step(job).await? {
                return Ok(handled);
            }
        }
        Err(EngineError::Contention(key.clone()))
    }

    /// One step; `None` when a conditional write lost a race and the job must be re-read.
    async fn step(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let now = self.now();
        let held = |job: &Job| {
            let until = job.lease_until.unwrap_or(now);
            Handled::RetryAfter(Duration::from_millis((until - now).max(1) as u64))
        };
        match job.status {
            JobStatus::Waiting => match &job.spec.params {
                // A reference to a base job, told its twin ended (perhaps while it was parking).
                Params::Base(base) => {
                    let base = base.clone();
                    self.wake_if_twin_ended(job, &base).await
                }
                // A duplicate or early message: the job is released by its last parent.
                _ => Ok(Some(Handled::Done)),
            },
            JobStatus::Queued => self.claim_and_run(job).await,
            JobStatus::Running if job.lease_free(now) => self.claim_and_run(job).await,
            JobStatus::Running => Ok(Some(held(&job))),
            JobStatus::AwaitingProvider => {
                let has_outcome = job.provider.as_ref().is_some_and(|p| p.outcome.is_some());
                if !has_outcome {
                    // The webhook or the poller will send it on when the provider is done.
                    Ok(Some(Handled::Done))
                } else if job.lease_free(now) {
                    self.finish_provider_job(job).await
                } else {
                    Ok(Some(held(&job)))
                }
            }
            // Repeats of a finished job re-run what follows it: this is what repairs a crash
            // between the job's own write and the release of its children.
            JobStatus::Completed => {
                self.after_completed(&job).await?;
                Ok(Some(Handled::Done))
            }
            JobStatus::Failed => {
                self.after_failed(&job).await?;
                Ok(Some(Handled::Done))
            }
            JobStatus::Skipped | JobStatus::Cancelled => {
                self.finalize_if_idle(&job.execution_id, None).await?;
                Ok(Some(Handled::Done))
            }
        }
    }

    /// Records a provider's answer for a job, from its callback or from a poll.
    pub async fn provider_update(
        &self,
        key: &JobKey,
        via: Via<'_>,
        status: ProviderStatus,
    ) -> Result<Recorded, EngineError> {
        self.record_provider_status(key, via, status).await
    }

    /// Polls every provider job that is due; returns how many were polled.
    pub async fn poll_due(&self, limit: usize) -> Result<usize, EngineError> {
        self.poll_due_jobs(limit).await
    }

    /// Re-sends messages for jobs released long ago and never claimed (a lost send). Each is
    /// marked re-sent first (its `queued_at` moves to now), so under a backlog a job is sent
    /// again once per `stale_queued_after`, not at every tick.
    pub async fn sweep_stale(&self, limit: usize) -> Result<usize, EngineError> {
        let now = self.now();
        let before = now - self.settings.stale_queued_after.as_millis() as i64;
        let mut messages = Vec::new();
        for key in self.store.stale_queued(before, limit).await? {
            let Some(job) = self.store.job(&key).await? else {
                continue;
            };
            if job.status != JobStatus::Queued || job.queued_at.is_none_or(|at| at >= before) {
                continue;
            }
            let mut resent = job.clone();
            resent.queued_at = Some(now);
            // Stale: it moved meanwhile, and whoever moved it carries on.
            if let Write::Applied(_) = self.store.update_job(&job, &resent).await? {
                messages.push(Message::Job(key));
            }
        }
        self.queue.send(&messages, Duration::ZERO).await?;
        Ok(messages.len())
    }
}

#[cfg(test)]
mod tests;
