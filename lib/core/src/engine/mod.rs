//! The engine: submits executions and moves every job along its states, each move a
//! conditional write, so that any handler may run twice (at-least-once delivery) or crash
//! at any point and a retry finishes the work.

mod lifecycle;
mod media_jobs;
mod provider_jobs;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use registry::Providers;

use crate::domain::{Execution, ExecutionStatus, Job, JobKey, JobStatus, Millis};
use crate::plan::{parse_request, ExecutionRequest, PlanError, PlanLimits};
use crate::ports::{BlobError, Blobs, Clock, Media, Message, ProviderStatus, Queue, QueueError, Store, StoreError};

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
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        SubmitError::Engine(e.into())
    }
}

impl From<QueueError> for SubmitError {
    fn from(e: QueueError) -> Self {
        SubmitError::Engine(e.into())
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

pub struct Engine {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    blobs: Arc<dyn Blobs>,
    media: Arc<dyn Media>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    settings: EngineSettings,
    events: broadcast::Sender<Event>,
}

/// The ports an engine runs on.
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub blobs: Arc<dyn Blobs>,
    pub media: Arc<dyn Media>,
    pub providers: Providers,
    pub clock: Arc<dyn Clock>,
}

/// How many times a handler re-reads after losing a conditional write before giving up
/// (the message is then retried by the queue).
const MAX_RACES: usize = 16;

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

    /// Validates a request body and starts the execution it describes.
    pub async fn submit(&self, tenant_id: &str, body: &[u8]) -> Result<Execution, SubmitError> {
        let request = parse_request(body, &self.providers, self.settings.limits).map_err(SubmitError::Invalid)?;
        self.start(tenant_id, request).await
    }

    pub async fn start(&self, tenant_id: &str, request: ExecutionRequest) -> Result<Execution, SubmitError> {
        if request.base_execution_id.is_some() {
            return Err(SubmitError::Invalid(vec![PlanError::new(
                "unsupported_option",
                "`baseExecutionId` is not supported by this server yet",
            )
            .field("baseExecutionId")]));
        }
        let now = self.now();
        let id = uuid::Uuid::now_v7().to_string();
        let specs = request.plan.jobs;
        let jobs = Job::for_plan(&id, &specs, now);
        let final_job = specs.last().map(|s| s.id.clone()).unwrap_or_default();
        let execution = Execution {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            status: ExecutionStatus::Pending,
            created_at: now,
            started_at: None,
            completed_at: None,
            total_jobs: jobs.len() as u32,
            open_jobs: jobs.len() as u32,
            completed_jobs: 0,
            final_job,
            result: None,
            outputs: Default::default(),
            error: None,
            webhook: request.webhook,
            base_execution_id: None,
            version: 0,
        };
        self.store.create_execution(&execution, &jobs).await?;
        let roots: Vec<Message> = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| Message::Job(j.key()))
            .collect();
        // A crash before this send leaves the roots `queued`: the stale sweep re-sends them.
        self.queue.send(&roots, Duration::ZERO).await?;
        Ok(execution)
    }

    /// Moves the job a message names as far as it can go now.
    pub async fn handle(&self, message: &Message) -> Result<Handled, EngineError> {
        let Message::Job(key) = message;
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
            // A duplicate or early message: the job is released by its last parent.
            JobStatus::Waiting => Ok(Some(Handled::Done)),
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
                self.finalize_if_idle(&job.execution_id).await?;
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

    /// Re-sends messages for jobs released long ago and never claimed (a lost send).
    pub async fn sweep_stale(&self, limit: usize) -> Result<usize, EngineError> {
        let before = self.now() - self.settings.stale_queued_after.as_millis() as i64;
        let keys = self.store.stale_queued(before, limit).await?;
        let messages: Vec<Message> = keys.into_iter().map(Message::Job).collect();
        self.queue.send(&messages, Duration::ZERO).await?;
        Ok(messages.len())
    }
}

#[cfg(test)]
mod tests;
