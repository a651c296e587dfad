//! The engine: submits executions and moves every job along its states, each move a
//! conditional write, so that any handler may run twice (at-least-once delivery) or crash
//! at any point and a retry finishes the work.
//!
//! One job's life, stage by stage (each file's doc says what comes before and after it):
//!
//! 1. `admission.rs`: a request is validated and admitted; its jobs are stored, its roots queued.
//! 2. `dispatch.rs`: a job message is read and the job moved on by its status; a queued job is claimed.
//! 3. The claimed job's work, by kind:
//!    - `provider_submit.rs`: a provider job is submitted, once (intent first, reconciled on retry);
//!    - `provider_wait.rs`: its answer comes by callback or poll, or its deadline passes;
//!    - `provider_output.rs`: the answer is acted on: the output copied in, or the job failed
//!      (a large inline answer is stored already, as it is recorded);
//!    - `media_jobs.rs`: a merge or reframe runs here (ffmpeg) and its artifact is stored;
//!    - `base_jobs.rs`: a job reused from a base execution takes its twin's output, waiting if need be.
//! 4. `settle.rs`: work that did not finish becomes a retry, a wait, or the job's failure.
//! 5. `completion.rs`: the job completes (children released) or fails (descendants skipped).
//! 6. `ending.rs`: the job's webhook; the execution ends once no job is open, and its webhook.
//!
//! A code-to-video scene's steps after its code job: `scene_jobs.rs` (validate, render,
//! upload); a refused code goes back to its code job through `repair.rs`.
//!
//! At any point, `cancel.rs` stops an execution's open jobs. Beside the stages:
//! `outputs.rs` (where a job's output is kept, what it records, how children read it),
//! `provider_call.rs` (what the provider stages share) and `registry.rs` (the providers).

mod admission;
mod base_jobs;
mod cancel;
mod completion;
mod dispatch;
mod ending;
mod fusion;
mod media_jobs;
mod outputs;
mod provider_call;
mod provider_output;
mod provider_submit;
mod provider_wait;
mod registry;
mod repair;
mod scene_jobs;
mod settle;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use admission::SubmitError;
pub use cancel::{CancelError, Cancelled};
pub use outputs::OutputRefused;
pub(crate) use provider_call::constant_time_eq;
pub use provider_wait::{CallbackRejected, Recorded, Via};
pub use registry::Providers;

use crate::domain::{ExecutionStatus, JobKey, JobStatus, Millis};
use crate::outbound::AddressPolicy;
use crate::plan::Operation;
use crate::plan::PlanLimits;
use crate::ports::{Admission, BlobError, Blobs, Clock, Media, Queue, QueueError, SceneRunner, Store, StoreError};
use crate::secrets::Sealer;
use crate::signed_urls::UrlSigner;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a claimed job is held before another runner may take it over.
    pub lease: Duration,
    /// Attempts at a job whose work fails for a passing reason.
    pub max_attempts: u32,
    /// First delay before retrying a passing failure; doubles per attempt.
    pub retry_base: Duration,
    /// Operations retried otherwise (the workflow's steps: longer, capped backoffs).
    pub step_retries: BTreeMap<Operation, RetryPolicy>,
    /// How many times a scene's refused code is written again before the scene fails.
    pub scene_repairs: u32,
    /// The provider and model that write workflows' scene code.
    pub scene_writer: (String, String),
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
    /// The largest output of an earlier job handed to a hosted provider inline, as a `data:`
    /// URI, when no public URL serves it (Replicate and fal take data URIs of a few MB).
    pub inline_input_max_bytes: u64,
    /// Events kept for slow observers before the oldest are dropped for them.
    pub event_buffer: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lease: Duration::from_secs(600),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            step_retries: RetryPolicy::workflow_defaults(),
            scene_repairs: 2,
            scene_writer: ("local".into(), "scene-code".into()),
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
            inline_input_max_bytes: 10 * 1024 * 1024,
            event_buffer: 4096,
        }
    }
}

/// How a passing failure is retried: up to `max_attempts` attempts, waiting `base`, then
/// twice as long each time, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The workflow's steps: code generation 3 attempts, render and upload 5; 30 s, 60 s,
    /// 120 s, 240 s, capped at 300 s.
    pub fn workflow_defaults() -> BTreeMap<Operation, RetryPolicy> {
        let policy = |max_attempts| RetryPolicy {
            max_attempts,
            base: Duration::from_secs(30),
            cap: Duration::from_secs(300),
        };
        BTreeMap::from([
            (Operation::GenerateSceneCode, policy(3)),
            (Operation::RenderScene, policy(5)),
            (Operation::UploadScene, policy(5)),
        ])
    }

    /// The wait before the attempt after `attempt` (from 1).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        (self.base.saturating_mul(factor)).min(self.cap)
    }
}

impl EngineSettings {
    /// How `operation`'s passing failures are retried.
    pub fn retry_policy(&self, operation: Operation) -> RetryPolicy {
        self.step_retries.get(&operation).copied().unwrap_or(RetryPolicy {
            max_attempts: self.max_attempts,
            base: self.retry_base,
            cap: Duration::MAX,
        })
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

pub struct Engine {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    blobs: Arc<dyn Blobs>,
    media: Arc<dyn Media>,
    scenes: Arc<dyn SceneRunner>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    webhook_queue: Arc<dyn Queue>,
    sealer: Sealer,
    /// Checks the signed URLs of outputs this node serves itself (`/api/files/…`).
    url_signer: UrlSigner,
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
    /// Checks and renders generated scene code (a sandbox).
    pub scenes: Arc<dyn SceneRunner>,
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
            scenes: ports.scenes,
            providers: ports.providers,
            clock: ports.clock,
            webhook_queue: ports.webhook_queue,
            url_signer: UrlSigner::new(&ports.sealer),
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
}
