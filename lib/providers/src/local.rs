//! `local`: a stand-in for remote AI models that renders real media with ffmpeg, offline.
//! It behaves like a remote asynchronous provider: `submit` answers at once with a job id,
//! the work finishes later (after a configurable delay), and the result arrives either by
//! a webhook (models marked so) or by being polled. Its jobs live in files, so like a real
//! provider it keeps working on them while reelay restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use reelay_core::domain::{Completion, JobKey};
use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::{parse_resolution, AspectRatio, MediaKind, MediaRef, Operation, ProviderParams, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    Submission, DEFAULT_DEADLINE,
};
use reelay_core::scenes::SceneBrief;
use reelay_media::{Replacement, WorkPool};

use crate::http::HttpClient;

/// A callback as a provider would POST it: which job, its token, and the outcome.
#[derive(Debug, Clone)]
pub struct ProviderWebhook {
    pub job: JobKey,
    pub token: String,
    pub status: ProviderStatus,
    /// A polling model's job ended: the host polls it now rather than take this as its
    /// answer (the model still answers by being polled, but not a backoff later).
    pub poll_now: bool,
}

#[derive(Debug, Clone)]
pub struct LocalProviderSettings {
    /// Where the provider keeps its jobs and outputs.
    pub workdir: PathBuf,
    /// How long a job "runs" before rendering starts (stands in for model time).
    pub delay: Duration,
    /// The Python whose `pocketsphinx` the `transcribe` model runs.
    pub python: String,
    /// Where an input may be fetched from: on AWS a parent's output reaches this provider as
    /// a presigned S3 URL, fetched through the same guard as every outbound request.
    pub outbound: AddressPolicy,
    /// Bounds the renders, with the node's other media work (the "thinking" delay and input
    /// downloads take no slot).
    pub pool: WorkPool,
}

pub struct LocalProvider {
    /// Fetches inputs given by URL (presigned S3 URLs on AWS).
    http: HttpClient,
    settings: LocalProviderSettings,
    models: Vec<ModelInfo>,
    webhooks: mpsc::UnboundedSender<ProviderWebhook>,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Itself, for the render tasks it spawns.
    this: Weak<LocalProvider>,
}

/// What a job asked for, written when it is accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocalJob {
    job: JobKey,
    token: String,
    model: String,
    kind: MediaKind,
    prompt: String,
    duration: f64,
    width: u32,
    height: u32,
    /// What the `audio` model says (`text`, else the prompt); a tone when empty.
    #[serde(default)]
    text: String,
    /// The `transcribe` and `remove-*` models' input: a reelay output, as a `file://` URL on
    /// the embedded stack or a presigned URL on AWS.
    #[serde(default)]
    input: Option<String>,
    /// Test hook: a job whose params carry `"fail": "<reason>"` fails with that reason.
    fail: Option<String>,
    webhook: bool,
}

fn model(id: &str, operation: Operation, output: MediaKind, completion: Completion) -> ModelInfo {
    ModelInfo {
        id: id.into(),
        operations: vec![operation],
        output,
        completion,
        deadline: DEFAULT_DEADLINE,
    }
}

impl LocalProvider {
    /// Returns the provider and the receiving end of its webhooks, which the host delivers
    /// to the engine as the provider-callback route would.
    pub fn new(
        mut settings: LocalProviderSettings,
    ) -> std::io::Result<(Arc<LocalProvider>, mpsc::UnboundedReceiver<ProviderWebhook>)> {
        std::fs::create_dir_all(&settings.workdir)?;
        // Canonical, so output URLs can be checked to lie inside it.
        settings.workdir = settings.workdir.canonicalize()?;
        let (webhooks, receiver) = mpsc::unbounded_channel();
        let mut models = vec![
            model("video", Operation::Generate, MediaKind::Video, Completion::Webhook),
            model(
                "video-polling",
                Operation::Generate,
                MediaKind::Video,
                Completion::Polling,
            ),
            model("image", Operation::GenerateImage, MediaKind::Image, Completion::Webhook),
            model(
                "image-polling",
                Operation::GenerateImage,
                MediaKind::Image,
                Completion::Polling,
            ),
            model("audio", Operation::GenerateAudio, MediaKind::Audio, Completion::Polling),
            model(
                "transcribe",
                Operation::Transcribe,
                MediaKind::Transcript,
                Completion::Polling,
            ),
            // A stand-in for lip sync, so that the SDK's `lipSync()` runs offline: like the
            // models above it renders a clip of its own, and leaves its input as it is.
            model("lipsync", Operation::LipSync, MediaKind::Video, Completion::Webhook),
            // Background removers that really key their input, when it is one of the local
            // renders (whose backdrop is a known flat colour): a green screen, or a PNG with
            // alpha, as the hosted models give; the engine finishes colours and transparency.
            model(
                "remove-background",
                Operation::RemoveBackground,
                MediaKind::Video,
                Completion::Webhook,
            ),
            model(
                "remove-image-background",
                Operation::RemoveImageBackground,
                MediaKind::Image,
                Completion::Webhook,
            ),
        ];
        // Writes scene code from templates (`scene_templates.rs`), so a workflow runs with no
        // LLM account; it answers at once, inline.
        models.push(model(
            SCENE_CODE_MODEL,
            Operation::GenerateSceneCode,
            MediaKind::Code,
            Completion::Polling,
        ));
        let http = HttpClient::guarded(settings.outbound.clone()).map_err(std::io::Error::other)?;
        let provider = Arc::new_cyclic(|this| LocalProvider {
            http,
            settings,
            models,
            webhooks,
            running: Mutex::new(HashMap::new()),
            this: this.clone(),
        });
        Ok((provider, receiver))
    }

    /// An input as a file: reelay's own blob (`file://`) as it is, anything else downloaded
    /// into the job's folder through the outbound address guard.
    async fn input_file(&self, dir: &Path, url: &str) -> Result<PathBuf, String> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(PathBuf::from(path));
        }
        let failed = |e: &dyn std::fmt::Display| format!("cannot read the input: {e}");
        let mut body = self
            .http
            .fetch(url, Default::default(), "input download")
            .await
            .map_err(|e| failed(&e))?;
        let path = dir.join("input");
        let mut file = tokio::fs::File::create(&path).await.map_err(|e| failed(&e))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(&e))?;
            file.write_all(&chunk).await.map_err(|e| failed(&e))?;
        }
        file.flush().await.map_err(|e| failed(&e))?;
        Ok(path)
    }

    fn job_dir(&self, id: &str) -> Result<PathBuf, ProviderError> {
        // Ids are ours (UUIDs); refuse anything else rather than touch a path it names.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(ProviderError::Fatal(format!("unknown local job {id}")));
        }
        Ok(self.settings.workdir.join("jobs").join(id))
    }

    fn token_file(&self, token: &str) -> PathBuf {
        self.settings.workdir.join("tokens").join(token)
    }

    fn output_path(dir: &Path, kind: MediaKind) -> PathBuf {
        dir.join(match kind {
            MediaKind::Image => "output.png",
            MediaKind::Audio => "output.m4a",
            MediaKind::Transcript => "output.json",
            MediaKind::Video => "output.mp4",
            MediaKind::Code => "output.py",
        })
    }

    /// Starts (or, after a restart, restarts) the render of a job unless it is running.
    fn spawn(&self, id: &str, job: LocalJob) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(id).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Some(me) = self.this.upgrade() else { return };
        let id_owned = id.to_string();
        let handle = tokio::spawn(async move { me.render(&id_owned, job).await });
        running.insert(id.to_string(), handle.abort_handle());
    }

    async fn render(&self, id: &str, job: LocalJob) {
        tokio::time::sleep(self.settings.delay).await;
        let Ok(dir) = self.job_dir(id) else { return };
        let out = Self::output_path(&dir, job.kind);
        let input = match &job.input {
            Some(url) => self.input_file(&dir, url).await.map(Some),
            None => Ok(None),
        };
        let slot = self.settings.pool.slot().await;
        let rendered = match (&job.fail, job.kind, input) {
            (Some(reason), _, _) => Err(reason.clone()),
            (None, _, Err(message)) => Err(message),
            (None, kind, Ok(input)) if job.model.starts_with("remove-") => match input {
                Some(input) => {
                    let still = kind == MediaKind::Image;
                    let keyed = Replacement {
                        still,
                        key: Some(reelay_media::BACKDROP),
                        fill: (!still).then_some(reelay_core::background::GREEN),
                    };
                    reelay_media::replace_background(&input, keyed, &out)
                        .await
                        .map_err(|e| e.to_string())
                }
                None => Err("the local background remover was given no input".into()),
            },
            (None, MediaKind::Image, _) => reelay_media::render_image(&job.prompt, job.width, job.height, &out)
                .await
                .map_err(|e| e.to_string()),
            (None, MediaKind::Audio, _) if !job.text.trim().is_empty() => {
                reelay_media::render_speech(&job.text, job.duration, &out)
                    .await
                    .map_err(|e| e.to_string())
            }
            (None, MediaKind::Audio, _) => reelay_media::render_audio(job.duration, &out)
                .await
                .map_err(|e| e.to_string()),
            (None, MediaKind::Transcript, Ok(input)) => match input {
                Some(input) => reelay_media::transcribe_speech(&self.settings.python, &input, &out)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("the local transcriber was given no audio or video".into()),
            },
            // Written at submit, never rendered (`write_scene_inline`).
            (None, MediaKind::Code, _) => Err("scene code is written at submit".into()),
            (None, MediaKind::Video, _) => {
                reelay_media::render_video(&job.prompt, job.duration, job.width, job.height, &out)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        drop(slot);
        let status = match rendered {
            Ok(()) => ProviderStatus::Succeeded {
                output_url: format!("file://{}", out.display()),
                content_type: Some(content_type(job.kind).into()),
            },
            Err(message) => {
                if let Err(e) = tokio::fs::write(dir.join("error"), &message).await {
                    tracing::warn!(error = %e, "local provider could not record a failure");
                }
                ProviderStatus::Failed { message }
            }
        };
        // The receiver may be gone (shutting down): polling covers it, as with a real provider.
        let _ = self.webhooks.send(ProviderWebhook {
            job: job.job.clone(),
            token: job.token.clone(),
            status,
            poll_now: !job.webhook,
        });
    }

    fn read_job(dir: &Path) -> Option<LocalJob> {
        let raw = std::fs::read(dir.join("request.json")).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

/// Where the `transcribe` and `remove-*` models read from: the first of the job's media
/// inputs, by its URL.
fn local_input(params: &ProviderParams) -> Result<Option<String>, ProviderError> {
    let Some(url) = ["audio", "audioUrl", "video", "videoUrl", "image", "url"]
        .iter()
        .find_map(|name| params.inputs.get(*name))
    else {
        return Ok(None);
    };
    match url {
        MediaRef::Url(url) => Ok(Some(url.clone())),
        MediaRef::Job(job) => Err(ProviderError::Fatal(format!(
            "the input of the local model is job `{job}`'s output, which was not resolved"
        ))),
    }
}

fn content_type(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image/png",
        MediaKind::Audio => "audio/mp4",
        MediaKind::Transcript => "application/json",
        MediaKind::Video => "video/mp4",
        MediaKind::Code => "text/x-python",
    }
}

/// The local writer's model of scene code.
pub const SCENE_CODE_MODEL: &str = "scene-code";

/// A scene written from the templates, answered inline.
fn write_scene_inline(params: &ProviderParams) -> Result<Submission, ProviderError> {
    use base64::Engine as _;
    let brief = SceneBrief::from_params(params).map_err(ProviderError::Fatal)?;
    let code = crate::scene_templates::write_scene(&brief);
    Ok(Submission {
        provider_job_id: uuid::Uuid::new_v4().to_string(),
        finished: Some(ProviderStatus::Succeeded {
            output_url: format!(
                "data:text/x-python;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(code)
            ),
            content_type: Some("text/x-python".into()),
        }),
    })
}

fn io(e: std::io::Error) -> ProviderError {
    ProviderError::Retryable {
        message: e.to_string(),
        retry_after: None,
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Its token files (instant: its token map) know every submit that arrived.
    fn reconciles(&self) -> bool {
        true
    }

    /// It runs in the process, beside the blob store.
    fn reads_files(&self) -> bool {
        true
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let model = self
            .models
            .iter()
            .find(|m| m.id == request.params.model_id)
            .ok_or_else(|| ProviderError::Fatal(format!("local has no model {}", request.params.model_id)))?;
        let p = &request.params;
        if model.id == SCENE_CODE_MODEL {
            return write_scene_inline(p);
        }
        let ratio = p.aspect_ratio.unwrap_or(AspectRatio { w: 16, h: 9 });
        let short_side = p.resolution.as_deref().and_then(parse_resolution).unwrap_or(720);
        let (width, height) = ratio.frame(short_side);
        let job = LocalJob {
            job: request.job.clone(),
            token: request.token.clone(),
            model: model.id.clone(),
            kind: model.output,
            prompt: p.prompt.clone().unwrap_or_default(),
            text: p
                .options
                .get("text")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or_else(|| p.prompt.clone())
                .unwrap_or_default(),
            input: local_input(p)?,
            duration: p.duration.unwrap_or(5.0),
            width,
            height,
            fail: p.options.get("fail").and_then(|v| v.as_str()).map(str::to_string),
            webhook: model.completion == Completion::Webhook,
        };
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.job_dir(&id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let body = serde_json::to_vec(&job).map_err(|e| ProviderError::Fatal(e.to_string()))?;
        tokio::fs::write(dir.join("request.json"), body).await.map_err(io)?;
        let tokens = self.settings.workdir.join("tokens");
        tokio::fs::create_dir_all(&tokens).await.map_err(io)?;
        tokio::fs::write(self.token_file(&request.token), &id)
            .await
            .map_err(io)?;
        self.spawn(&id, job);
        Ok(Submission {
            provider_job_id: id,
            finished: None,
        })
    }

    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        let token = request.token.as_str();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        match tokio::fs::read_to_string(self.token_file(token)).await {
            Ok(id) => Ok(Some(Submission {
                provider_job_id: id,
                finished: None,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn status(&self, provider_job_id: &str, _key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        let dir = self.job_dir(provider_job_id)?;
        let Some(job) = Self::read_job(&dir) else {
            return Err(ProviderError::Fatal(format!("unknown local job {provider_job_id}")));
        };
        if let Ok(message) = tokio::fs::read_to_string(dir.join("error")).await {
            return Ok(ProviderStatus::Failed { message });
        }
        if dir.join("cancelled").exists() {
            return Ok(ProviderStatus::Failed {
                message: "cancelled".into(),
            });
        }
        let out = Self::output_path(&dir, job.kind);
        if out.exists() {
            return Ok(ProviderStatus::Succeeded {
                output_url: format!("file://{}", out.display()),
                content_type: Some(content_type(job.kind).into()),
            });
        }
        // Still rendering, or the render died with a previous process: (re)start it.
        self.spawn(provider_job_id, job);
        Ok(ProviderStatus::Pending)
    }

    async fn cancel(&self, provider_job_id: &str, _key: Option<&Secret>) -> Result<(), ProviderError> {
        let dir = self.job_dir(provider_job_id)?;
        if let Some(handle) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(provider_job_id)
        {
            handle.abort();
        }
        tokio::fs::write(dir.join("cancelled"), b"").await.map_err(io)
    }

    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        if output_url.starts_with("data:") {
            return self.http.download(output_url, Default::default()).await;
        }
        let path = output_url
            .strip_prefix("file://")
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.settings.workdir))
            .ok_or_else(|| ProviderError::Fatal(format!("not a local provider output: {output_url}")))?;
        let file = tokio::fs::File::open(&path).await.map_err(io)?;
        Ok(Box::pin(ReaderStream::with_capacity(file, 256 * 1024)))
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        // Its webhooks reach the engine in process (`ProviderWebhook`), never over HTTP.
        Err(CallbackError::Unauthorized(
            "the local provider does not call back over HTTP".into(),
        ))
    }
}
