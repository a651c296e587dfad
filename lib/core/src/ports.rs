//! The ports: what the engine needs from the world. Each has a local adapter (embedded
//! stack) and, later, an AWS one; one contract suite runs against both.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::domain::{Execution, ExecutionStatus, Job, JobKey, JobStatus, Millis, TimedWord, WebhookDelivery};
use crate::plan::{
    CaptionStyle, LayerParams, MediaKind, Operation, ProviderParams, Quality, ReframeMode, Secret, Transition,
};
// Providers name their models with these; validation owns them.
pub use crate::plan::{ModelInfo, DEFAULT_DEADLINE};

/// A body streamed in chunks, never held whole.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("execution {0} already exists")]
    AlreadyExists(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record {key}: {message}")]
    Corrupt { key: String, message: String },
    /// A tenant limit refused a new execution.
    #[error("{reason}")]
    LimitReached { reason: String, retry_after: Duration },
}

/// Per-tenant limits, checked in the same atomic step that creates an execution so that
/// concurrent submissions cannot overshoot them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// Executions pending or processing at once.
    pub max_in_flight: Option<u32>,
    /// Executions created in any 60 seconds.
    pub max_per_minute: Option<u32>,
}

impl Admission {
    /// The refusal of a new execution at `now` for a tenant with `in_flight` executions in
    /// flight and `recent` created in the minute before, the oldest of them at `oldest`; `None`
    /// if it is admitted. Adapters count; this decides, so that both say the same.
    pub fn refusal(&self, in_flight: u64, recent: u64, oldest: Option<Millis>, now: Millis) -> Option<StoreError> {
        if let Some(max) = self.max_in_flight {
            if in_flight >= u64::from(max) {
                return Some(StoreError::LimitReached {
                    reason: format!("{in_flight} executions are in flight; the limit is {max}"),
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        if let Some(max) = self.max_per_minute {
            if recent >= u64::from(max) {
                // The window has room again when its oldest submission leaves it.
                let window_start = now - 60_000;
                let wait = oldest.map_or(60_000, |at| at - window_start).max(1000);
                return Some(StoreError::LimitReached {
                    reason: format!("{recent} executions were submitted in the last minute; the limit is {max}"),
                    retry_after: Duration::from_millis(wait as u64),
                });
            }
        }
        None
    }
}

/// Where a page of executions ends: the next page starts after it (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: Millis,
    pub id: String,
}

/// The outcome of a conditional write.
#[derive(Debug)]
pub enum Write<T> {
    /// Written; the record as stored (version bumped).
    Applied(T),
    /// Someone else wrote first: re-read and decide again.
    Stale,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Writes an execution and all its jobs at once; fails if the id exists, or with
    /// `LimitReached` if the tenant is over an `admission` limit at `execution.created_at`.
    async fn create_execution(
        &self,
        execution: &Execution,
        jobs: &[Job],
        admission: Admission,
    ) -> Result<(), StoreError>;
    /// A tenant's executions, newest first, starting after `after`.
    async fn list_executions(
        &self,
        tenant_id: &str,
        status: Option<ExecutionStatus>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError>;
    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError>;
    /// The execution with every job, in one read (the status call).
    async fn execution_with_jobs(&self, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError>;
    async fn job(&self, key: &JobKey) -> Result<Option<Job>, StoreError>;
    /// Several jobs of one execution; missing ones are left out.
    async fn jobs(&self, execution_id: &str, job_ids: &[String]) -> Result<Vec<Job>, StoreError>;
    /// Writes `next` only if the stored job is still at `prev.version`, and moves the
    /// execution's counters by `CounterDelta::between(prev.status, next.status)` in the same
    /// atomic write.
    async fn update_job(&self, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError>;
    /// Marks the edge `parent → child` done, once: removes `parent` from the child's pending
    /// parents if it is still there. When that empties the set and the child is `waiting`, the
    /// child becomes `queued` (with `released_by = parent`) in the same atomic step. A repeat
    /// changes nothing and reports the child as it stands.
    async fn release_edge(&self, child: &JobKey, parent: &str, now: Millis) -> Result<EdgeRelease, StoreError>;
    /// Writes `next` only if the stored execution is still at `prev.version`.
    async fn update_execution(&self, prev: &Execution, next: &Execution) -> Result<Write<Execution>, StoreError>;
    /// Jobs awaiting a provider whose next poll is due at `now`, soonest first.
    async fn due_polls(&self, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError>;
    /// Jobs released (`queued`) before `before` and never claimed: their message may be lost.
    async fn stale_queued(&self, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError>;

    /// Asks to be told when `base` (a job of another execution) ends; idempotent.
    async fn add_watcher(&self, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError>;
    /// The watchers of one job of an execution, or of all its jobs (`None`).
    async fn watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<Vec<JobKey>, StoreError>;

    /// Stores a webhook message unless one with its id exists; true if this call stored it.
    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError>;
    async fn delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError>;
    /// Writes `next` only if the stored delivery is still at `prev.version`.
    async fn update_delivery(
        &self,
        prev: &WebhookDelivery,
        next: &WebhookDelivery,
    ) -> Result<Write<WebhookDelivery>, StoreError>;
    /// An execution's webhook messages (its own and its jobs').
    async fn deliveries(&self, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Pending deliveries whose next attempt is due at `now`, soonest first.
    async fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError>;
}

/// A request budget that every process calling one provider account shares: at most `limit`
/// calls in any `window` per scope (an account of a provider). Locally one process owns it;
/// on AWS the functions share it through DynamoDB.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Takes one call from `scope`'s budget (`Ok(Ok)`), or says how long until one frees
    /// (`Ok(Err(wait))`).
    async fn take(&self, scope: &str, limit: u32, window: Duration) -> Result<Result<(), Duration>, StoreError>;
}

/// An API key as stored: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// The key's first characters, to tell keys apart in listings.
    pub prefix: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Where API keys live.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key with this id; false if there is none or it was revoked already.
    async fn revoke_key(&self, id: &str, now: Millis) -> Result<bool, StoreError>;
}

/// The child of a released edge, as it stands after the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRelease {
    /// This call released the edge (false: an earlier call did). A store whose release takes
    /// two writes reports a repeat that finishes a crashed release as the release.
    pub removed: bool,
    pub status: JobStatus,
    pub released_by: Option<String>,
    pub queued_at: Option<Millis>,
}

/// Work on a queue. Each names a record to look at; the handler decides from the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Message {
    /// Move this job on (job queue).
    Job(JobKey),
    /// Carry out this execution's cancellation (job queue).
    Cancel { execution_id: String },
    /// Attempt this webhook delivery if it is due (webhook queue).
    Webhook { delivery_id: String },
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Message,
    /// Opaque handle for ack/retry, valid until the visibility timeout ends.
    pub receipt: String,
    pub receive_count: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("unreadable message body: {0}")]
    Malformed(String),
}

/// At-least-once delivery with delays and a visibility timeout (SQS semantics).
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, messages: &[Message], delay: Duration) -> Result<(), QueueError>;
    /// Up to `max` messages, hidden from others for `visibility`; waits up to `wait` for one.
    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;
    /// Makes the message visible again after `delay` (SQS ChangeMessageVisibility).
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob at {0}")]
    NotFound(String),
    #[error("blob store failed: {0}")]
    Io(String),
    /// A range that covers none of the blob's bytes (HTTP 416).
    #[error("the range asked for lies outside the blob's {size} bytes")]
    RangeNotSatisfiable { size: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub key: String,
    pub size: u64,
    pub content_type: String,
}

/// A URL that reads a blob from outside this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub url: String,
    /// Whether hosts anywhere (a hosted provider) can read it, not only this machine's: false
    /// for a server without a public URL, which serves outputs at its listen address.
    pub anywhere: bool,
}

/// One range of a blob a reader asks for (HTTP's `Range: bytes=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From this byte to the end.
    From(u64),
    /// From the first to the last byte given, inclusive.
    Span(u64, u64),
    /// The last this many bytes.
    Last(u64),
}

impl ByteRange {
    /// The first and last byte it covers in a blob of `size` bytes; `None` if it covers none.
    pub fn within(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        match self {
            ByteRange::From(first) => (first <= last).then_some((first, last)),
            ByteRange::Span(first, end) => (first <= end && first <= last).then_some((first, end.min(last))),
            ByteRange::Last(n) => (n > 0).then(|| (size.saturating_sub(n), last)),
        }
    }
}

/// A blob, or one range of it, being read, with what serving it over HTTP needs.
pub struct BlobRead {
    pub body: ByteStream,
    /// The whole blob's size.
    pub size: u64,
    /// The first and last byte `body` holds, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// As stored, where the store keeps it.
    pub content_type: Option<String>,
    /// Changes whenever the content does (quoted, as HTTP sends it).
    pub etag: String,
}

#[async_trait]
pub trait Blobs: Send + Sync {
    /// Stores a stream under `key` chunk by chunk; a failed stream leaves nothing behind.
    async fn put(&self, key: &str, content_type: &str, body: ByteStream) -> Result<StoredBlob, BlobError>;
    async fn get(&self, key: &str) -> Result<ByteStream, BlobError>;
    /// The blob, or one `range` of it, for serving it over HTTP.
    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError>;
    /// A URL this node's own tools read the blob at (ffmpeg, a provider in this process).
    async fn url(&self, key: &str) -> Result<String, BlobError>;
    /// A URL another process or machine reads the blob at (clients, hosted providers), signed
    /// and expiring; `None` when nothing serves this store (`reelay run`).
    async fn public_url(&self, key: &str) -> Result<Option<PublicUrl>, BlobError>;
}

/// Time, as the engine sees it. Tests drive a manual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// What probing a media file found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInfo {
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size_bytes: u64,
    /// Word timings the file carries (speech providers tag their audio with them).
    pub words: Option<Vec<TimedWord>>,
}

/// A media input resolved to something ffmpeg can read.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedItem {
    pub url: String,
    pub kind: MediaKind,
    pub duration: Option<f64>,
    pub offset: Option<f64>,
    pub volume: Option<f64>,
}

/// A media operation with every input resolved to a readable URL.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaTask {
    Merge {
        items: Vec<ResolvedItem>,
        transition: Option<Transition>,
    },
    Reframe {
        input: String,
        width: u32,
        height: u32,
        mode: ReframeMode,
    },
    /// Layers composited in one filter graph, every medium resolved to a URL.
    Layer(LayerParams<String>),
    /// Captions burned into `video`, in the same pass that reads it.
    Captions {
        video: String,
        words: CaptionWords,
        style: Box<CaptionStyle>,
    },
    /// Edits run as one: `start`'s output goes through each of `then` in turn, encoded once
    /// (a chain of media jobs whose intermediate outputs nobody else reads: `engine/fusion.rs`).
    /// `start` is a merge, a reframe or captions.
    Chain {
        start: Box<MediaTask>,
        then: Vec<MediaStep>,
    },
    /// A video re-packed to stream (its index moved to the front), the streams copied as
    /// they are: a rendered scene's upload.
    FastStart { input: String },
    /// A removed background finished (`crate::background`): `input`'s background keyed out
    /// by `key`'s colour (`None`: its alpha channel), laid on `fill` (`None`: transparent).
    Background {
        input: String,
        still: bool,
        key: Option<[u8; 3]>,
        fill: Option<[u8; 3]>,
    },
}

/// An edit that follows another in a [`MediaTask::Chain`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaStep {
    Reframe {
        width: u32,
        height: u32,
        mode: ReframeMode,
    },
    Captions {
        words: CaptionWords,
        style: Box<CaptionStyle>,
    },
}

/// A caption job's words: at hand, or in a file the Media port reads (a transcript as JSON,
/// SRT or WebVTT, or speech whose `comment` tag carries its word timings).
#[derive(Debug, Clone, PartialEq)]
pub enum CaptionWords {
    Words(Vec<TimedWord>),
    File(String),
}

/// A finished artifact: its bytes (deleted when the stream is dropped) and its probe.
pub struct Artifact {
    pub body: ByteStream,
    pub content_type: String,
    pub extension: String,
    pub info: MediaInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The inputs cannot make this output (bad media, impossible request): retrying won't help.
    #[error("{0}")]
    Invalid(String),
    #[error("media tool failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait Media: Send + Sync {
    /// Runs `task`, its picture encoded at `quality` (where it encodes one).
    async fn run(&self, task: MediaTask, quality: Quality) -> Result<Artifact, MediaError>;
    async fn probe(&self, url: &str) -> Result<MediaInfo, MediaError>;
}

/// A provider job to start. Inputs are resolved to URLs.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub job: JobKey,
    pub operation: Operation,
    pub params: ProviderParams,
    /// Carried to the provider so that its callback and a reconciliation can find us.
    pub token: String,
    /// The key sent with the request, if any; else the provider's configured one.
    pub api_key: Option<Secret>,
    /// Where the provider should call back (`…/api/webhooks/job/{record}?token=…`), for
    /// models that complete by webhook on a server that can be reached.
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub provider_job_id: String,
    /// A provider that can answer synchronously (Replicate's `Prefer: wait`) gives the
    /// final status here; the engine then skips waiting for a webhook or a poll.
    pub finished: Option<ProviderStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderStatus {
    Pending,
    Succeeded {
        /// An http(s) URL, or a `data:` URI (small outputs, transcripts as JSON).
        output_url: String,
        content_type: Option<String>,
    },
    Failed {
        message: String,
    },
}

/// A provider's callback, verified: which of its jobs, and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub provider_job_id: String,
    pub status: ProviderStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A bad token or signature, or a stale timestamp: answered 401, nothing changes.
    #[error("callback refused: {0}")]
    Unauthorized(String),
    /// Signed, but not a body this provider sends.
    #[error("unreadable callback: {0}")]
    Malformed(String),
    /// Could not check it now (a signing key could not be fetched): the provider retries.
    #[error("callback not checked: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused for good (bad input, safety filter): fail the job.
    #[error("{0}")]
    Fatal(String),
    /// Try again later (5xx, timeouts), after `retry_after` when the provider said.
    #[error("provider temporarily unavailable: {message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Over the provider's rate limit (its 429, or our own count of its limit): wait, without
    /// using up one of the job's attempts.
    #[error("provider rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    /// The request went out but no answer came back (a timeout, a reset): a submit may have
    /// been accepted, so it is not simply repeated (see `Provider::reconciles`).
    #[error("no answer from the provider: {0}")]
    Uncertain(String),
}

/// A provider. Calls after `submit` take the key the job was submitted with (`None`: the
/// provider's configured key), so a job paid with a client's key is read with it too.
#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    fn models(&self) -> &[ModelInfo];
    /// The model a job's `modelId` names. Most providers know each model by one id; Replicate
    /// also takes `owner/name:version`.
    fn model(&self, model_id: &str) -> Option<&ModelInfo> {
        self.models().iter().find(|m| m.id == model_id)
    }
    /// Problems of a job's params against its model's input schema, as `(field, message)`
    /// (checked when the plan is submitted, so they answer 400).
    fn check_params(&self, _params: &ProviderParams) -> Vec<(String, String)> {
        Vec::new()
    }
    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError>;
    /// Finds a job submitted earlier for `request` (same token), if it reached the provider.
    /// Called before a retried submit.
    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError>;
    /// Whether `find`'s `None` means "the earlier submit did not arrive". When it cannot
    /// (no lookup by anything of ours), a submit whose answer was lost is not repeated: the
    /// engine waits for the provider's callback to adopt it, or fails the job.
    fn reconciles(&self) -> bool {
        false
    }
    /// Whether it runs in this process and reads blob-store files itself (`local`); a hosted
    /// provider gets each input at a URL it can fetch, or inline as a `data:` URI.
    fn reads_files(&self) -> bool {
        false
    }
    async fn status(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<ProviderStatus, ProviderError>;
    async fn cancel(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<(), ProviderError>;
    /// Streams an output the provider produced (an http(s) URL or a `data:` URI).
    async fn download(&self, output_url: &str, key: Option<&Secret>) -> Result<ByteStream, ProviderError>;
    /// Checks a callback's signature (the route already checked the job's token) and reads it.
    /// `headers` have lower-case names.
    async fn verify_callback(&self, headers: &[(String, String)], body: &[u8]) -> Result<Callback, CallbackError>;
    /// Whether a verified callback naming `callback_job_id` is about the job recorded as
    /// `provider_job_id`: the same id, unless a provider records more than its callbacks name
    /// (fal records `{owner}/{app}|{request_id}` to rebuild its URLs; its webhook names the
    /// request id alone).
    fn is_same_job(&self, provider_job_id: &str, callback_job_id: &str) -> bool {
        provider_job_id == callback_job_id
    }
}

/// Generated Manim code, and the `Scene` subclass it must define.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneCode {
    pub source: String,
    pub class_name: String,
}

/// The frame a scene renders at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneFrame {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SceneError {
    /// The code's fault (refused by the checks; raised, looped or overran a limit while
    /// rendering): not retried, but handed back to code generation as feedback.
    #[error("{0}")]
    Code(String),
    /// The machine's fault (the renderer was killed, the disk is full, a tool is missing):
    /// retried like any passing failure.
    #[error("{0}")]
    Machine(String),
}

/// Runs generated scene code: checks it without running it, and renders it in a sandbox
/// (its own process and folder, no network, no secrets, limits on CPU, memory, file size
/// and wall-clock time).
#[async_trait]
pub trait SceneRunner: Send + Sync {
    /// Static checks: syntax, the one expected `Scene` subclass, allowed imports only, no
    /// file, process, network or dynamic-code calls, size limits. `Code` names what is wrong.
    async fn check(&self, code: &SceneCode) -> Result<(), SceneError>;
    /// Renders the scene to an MP4, probed.
    async fn render(&self, code: &SceneCode, frame: SceneFrame) -> Result<Artifact, SceneError>;
}
