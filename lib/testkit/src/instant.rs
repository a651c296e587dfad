//! Instant stand-ins for the provider, media, scene and blob ports, for benchmarks and engine tests:
//! where the engine's own cost and correctness are what is measured, not ffmpeg's.
//! They count the work they are given, so a test can prove no job's work ran twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;

use reelay_core::domain::{Completion, JobKey};
use reelay_core::plan::{MediaKind, Operation, Quality, Secret};
use reelay_core::ports::{
    Artifact, BlobError, BlobRead, Blobs, ByteRange, ByteStream, Callback, CallbackError, Media, MediaError, MediaInfo,
    MediaTask, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus, PublicUrl, SceneCode, SceneError,
    SceneFrame, SceneRunner, StoredBlob, Submission, DEFAULT_DEADLINE,
};

/// What model `inline` answers: this many `a`s, more than a job record should hold.
pub const INLINE_OUTPUT_BYTES: usize = 40 << 10;

/// Provider `instant`: model `done` answers a submit with a finished result; model `inline`
/// too, with its output inline in a `data:` URI (as speech providers answer); model `later`
/// finishes only when polled; model `never` never finishes. Jobs whose id is in `failing`
/// fail. `throttle(n)` makes the next `n` submits answer as over the rate limit;
/// `lose_answers(n)` makes the next `n` submits arrive but answer nothing; `blind()` makes
/// `find` know nothing (a provider that cannot be asked).
pub struct InstantProvider {
    models: Vec<ModelInfo>,
    failing: HashSet<String>,
    throttled: Mutex<u32>,
    lost_answers: Mutex<u32>,
    blind: std::sync::atomic::AtomicBool,
    cancels: Mutex<Vec<String>>,
    submits: Mutex<HashMap<JobKey, u32>>,
    by_token: Mutex<HashMap<String, String>>,
    /// The provider key each job was submitted with.
    api_keys: Mutex<HashMap<JobKey, Option<String>>>,
}

impl InstantProvider {
    pub fn new(failing: impl IntoIterator<Item = String>) -> Self {
        let model = |id: &str, completion| ModelInfo {
            id: id.into(),
            operations: vec![Operation::Generate],
            output: MediaKind::Video,
            completion,
            deadline: DEFAULT_DEADLINE,
        };
        InstantProvider {
            models: vec![
                model("done", Completion::Polling),
                model("inline", Completion::Polling),
                model("later", Completion::Polling),
                model("never", Completion::Polling),
            ],
            failing: failing.into_iter().collect(),
            throttled: Mutex::new(0),
            lost_answers: Mutex::new(0),
            blind: std::sync::atomic::AtomicBool::new(false),
            cancels: Mutex::new(Vec::new()),
            submits: Mutex::new(HashMap::new()),
            by_token: Mutex::new(HashMap::new()),
            api_keys: Mutex::new(HashMap::new()),
        }
    }

    /// The next `n` submits are refused as over the rate limit.
    pub fn throttle(&self, n: u32) {
        *self.throttled.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    /// The next `n` submits arrive (and run) but their answers are lost.
    pub fn lose_answers(&self, n: u32) {
        *self.lost_answers.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    /// From now on `find` finds nothing and says it cannot tell.
    pub fn blind(&self) {
        self.blind.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The provider jobs asked to cancel, in order.
    pub fn cancels(&self) -> Vec<String> {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times each job was submitted.
    pub fn submits(&self) -> HashMap<JobKey, u32> {
        self.submits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The provider key a job was last submitted with (`None` inside: submitted without one).
    pub fn api_key(&self, job: &JobKey) -> Option<Option<String>> {
        self.api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(job)
            .cloned()
    }

    fn outcome(&self, provider_job_id: &str) -> ProviderStatus {
        let job_id = provider_job_id.rsplit_once('/').map_or(provider_job_id, |(_, j)| j);
        if provider_job_id.ends_with("#never") {
            ProviderStatus::Pending
        } else if self.failing.contains(job_id) {
            ProviderStatus::Failed {
                message: format!("{job_id} was told to fail"),
            }
        } else {
            ProviderStatus::Succeeded {
                output_url: format!("instant://{provider_job_id}.mp4"),
                content_type: Some("video/mp4".into()),
            }
        }
    }
}

#[async_trait]
impl Provider for InstantProvider {
    fn name(&self) -> &str {
        "instant"
    }

    fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Its token map knows every submit that arrived (unless told to be blind).
    fn reconciles(&self) -> bool {
        !self.blind.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        {
            let mut throttled = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            if *throttled > 0 {
                *throttled -= 1;
                return Err(ProviderError::RateLimited {
                    retry_after: Some(std::time::Duration::from_secs(1)),
                });
            }
        }
        *self
            .submits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(request.job.clone())
            .or_default() += 1;
        self.api_keys.lock().unwrap_or_else(|p| p.into_inner()).insert(
            request.job.clone(),
            request.api_key.as_ref().map(|k| k.expose().to_string()),
        );
        let mut id = format!("{}/{}", request.job.execution_id, request.job.job_id);
        if request.params.model_id == "never" {
            id.push_str("#never");
        }
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.token.clone(), id.clone());
        let finished = match request.params.model_id.as_str() {
            "done" => Some(self.outcome(&id)),
            "inline" => Some(ProviderStatus::Succeeded {
                output_url: format!("data:audio/mpeg,{}", "a".repeat(INLINE_OUTPUT_BYTES)),
                content_type: Some("audio/mpeg".into()),
            }),
            _ => None,
        };
        {
            let mut lost = self.lost_answers.lock().unwrap_or_else(|p| p.into_inner());
            if *lost > 0 {
                *lost -= 1;
                return Err(ProviderError::Uncertain("the answer was lost".into()));
            }
        }
        Ok(Submission {
            provider_job_id: id,
            finished,
        })
    }

    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        if !self.reconciles() {
            return Ok(None);
        }
        let id = self
            .by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request.token)
            .cloned();
        Ok(id.map(|provider_job_id| Submission {
            provider_job_id,
            finished: None,
        }))
    }

    async fn status(&self, provider_job_id: &str, _key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        Ok(self.outcome(provider_job_id))
    }

    async fn cancel(&self, provider_job_id: &str, _key: Option<&Secret>) -> Result<(), ProviderError> {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(provider_job_id.to_string());
        Ok(())
    }

    /// An inline output's data (unencoded), else `instant`.
    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        let body = match output_url.strip_prefix("data:").and_then(|d| d.split_once(',')) {
            Some((_, data)) => bytes::Bytes::from(data.to_string()),
            None => bytes::Bytes::from_static(b"instant"),
        };
        Ok(Box::pin(futures::stream::iter([Ok(body)])))
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        Err(CallbackError::Unauthorized(
            "the instant provider never calls back".into(),
        ))
    }
}

/// Media that is done at once: an empty MP4-labelled artifact.
#[derive(Default)]
pub struct InstantMedia {
    runs: Mutex<u64>,
}

impl InstantMedia {
    pub fn runs(&self) -> u64 {
        *self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Media for InstantMedia {
    async fn run(&self, _task: MediaTask, _quality: Quality) -> Result<Artifact, MediaError> {
        *self.runs.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Ok(Artifact {
            body: Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(b"media"))])),
            content_type: "video/mp4".into(),
            extension: "mp4".into(),
            info: MediaInfo {
                duration: Some(1.0),
                width: Some(16),
                height: Some(9),
                size_bytes: 5,
                words: None,
            },
        })
    }

    async fn probe(&self, _url: &str) -> Result<MediaInfo, MediaError> {
        Ok(MediaInfo {
            duration: Some(1.0),
            width: Some(16),
            height: Some(9),
            size_bytes: 7,
            words: None,
        })
    }
}

/// Blobs that are read and forgotten (their size is kept).
#[derive(Default)]
pub struct NullBlobs;

#[async_trait]
impl Blobs for NullBlobs {
    async fn put(&self, key: &str, content_type: &str, mut body: ByteStream) -> Result<StoredBlob, BlobError> {
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            size += chunk.map_err(|e| BlobError::Io(e.to_string()))?.len() as u64;
        }
        Ok(StoredBlob {
            key: key.to_string(),
            size,
            content_type: content_type.to_string(),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        Err(BlobError::NotFound(key.to_string()))
    }

    async fn read(&self, key: &str, _range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        Err(BlobError::NotFound(key.to_string()))
    }

    async fn url(&self, key: &str) -> Result<String, BlobError> {
        Ok(format!("null://{key}"))
    }

    async fn public_url(&self, _key: &str) -> Result<Option<PublicUrl>, BlobError> {
        Ok(None)
    }
}

/// A scene runner that runs nothing: code containing `REFUSE: <reason>` fails the checks,
/// code containing `RAISE: <reason>` fails its render for the code's sake, and any other
/// code renders to a few bytes. It counts its renders.
#[derive(Default)]
pub struct InstantScenes {
    renders: Mutex<u64>,
}

impl InstantScenes {
    pub fn renders(&self) -> u64 {
        *self.renders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The text after `marker` on its line, if the code has it.
fn marked<'a>(code: &'a SceneCode, marker: &str) -> Option<&'a str> {
    let at = code.source.find(marker)? + marker.len();
    code.source[at..].lines().next().map(str::trim)
}

#[async_trait]
impl SceneRunner for InstantScenes {
    async fn check(&self, code: &SceneCode) -> Result<(), SceneError> {
        match marked(code, "REFUSE:") {
            Some(reason) => Err(SceneError::Code(reason.to_string())),
            None => Ok(()),
        }
    }

    async fn render(&self, code: &SceneCode, frame: SceneFrame) -> Result<Artifact, SceneError> {
        *self.renders.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if let Some(reason) = marked(code, "RAISE:") {
            return Err(SceneError::Code(reason.to_string()));
        }
        Ok(Artifact {
            body: Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(b"scene"))])),
            content_type: "video/mp4".into(),
            extension: "mp4".into(),
            info: MediaInfo {
                duration: Some(5.0),
                width: Some(frame.width),
                height: Some(frame.height),
                size_bytes: 5,
                words: None,
            },
        })
    }
}
