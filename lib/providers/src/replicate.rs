//! Replicate: predictions over its HTTP API.
//!
//! - **Create.** Official models by name (`POST /v1/models/{owner}/{name}/predictions`),
//!   others by version (`POST /v1/predictions` with `version`), as the registry entry says.
//!   The job's callback URL (its query string carries our token) is the prediction's
//!   `webhook`, for the `completed` event only. Creates spend the account's budget (600 a
//!   minute) first, so jobs wait rather than meet 429s. With `prefer_wait`, a prediction
//!   done within that many seconds answers in the create itself.
//! - **Webhooks** are Standard Webhooks, signed with the account's secret
//!   (`GET /v1/webhooks/default/secret`), cached and fetched again once when a signature
//!   does not match (the secret may have rotated). Only the terminal webhook is retried by
//!   Replicate and duplicates happen, so the engine keeps polling behind them.
//! - **Outputs** are any JSON: a URL, a list of URLs (the first is taken), or an object (a
//!   Whisper transcript), which becomes a `data:application/json` URI so the transcript is
//!   stored like any output. Replicate deletes outputs an hour after a prediction ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Value};

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, ProviderParams, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    RateBudget, Submission,
};
use reelay_core::time::parse_iso8601;
use reelay_core::webhooks::signature::{check_timestamp, verify_standard, SignatureError};

use crate::http::{data_uri_type, HttpClient};
use crate::rate::{account, RateLimiter};
use crate::registry::{self, Field, FieldType, Lit, Mapping, ModelSpec, Unified};

const MINUTE: u64 = 60;

/// Seedance and MiniMax both take 5 to 10 minutes for a clip on a busy day; a job still
/// running after half an hour is stuck.
const VIDEO_DEADLINE: Duration = Duration::from_secs(30 * MINUTE);

const SEEDANCE_RATIOS: &[&str] = &["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"];
const NANO_BANANA_RATIOS: &[&str] = &[
    "match_input_image",
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
];

/// What the SDK's mapping of Google's image models does (`google/nano-banana`, `-pro`): an
/// image-only job still sends a prompt, `""`; a seed is never sent (`-pro`'s `resolution`
/// goes to its field of that name).
const NANO_BANANA_MAPPING: &[Mapping] = &[
    Mapping::field(Unified::Prompt, "prompt"),
    Mapping::field(Unified::Image, "image_input"),
    Mapping::field(Unified::AspectRatio, "aspect_ratio"),
    Mapping::field(Unified::OutputFormat, "output_format"),
    Mapping::dropped(Unified::Seed),
];
const EMPTY_PROMPT: &[(&str, Lit)] = &[("prompt", Lit::Str(""))];

/// A transcription model: a video's audio track is transcribed too.
const TRANSCRIPT_DEADLINE: Duration = Duration::from_secs(30 * MINUTE);

/// Replicate's models, with their input schemas as Replicate documents them. A model that is
/// not official is called by its `version`; a job may name another version
/// (`owner/name:version`), which then runs with the same schema.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        id: "bytedance/seedance-1-pro",
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: VIDEO_DEADLINE,
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("image", FieldType::Url),
            Field::optional("last_frame_image", FieldType::Url),
            Field::optional("duration", FieldType::IntRange(2, 12)),
            Field::optional("resolution", FieldType::OneOf(&["480p", "720p", "1080p"])),
            Field::optional("aspect_ratio", FieldType::OneOf(SEEDANCE_RATIOS)),
            Field::optional("fps", FieldType::OneOfInt(&[24])),
            Field::optional("camera_fixed", FieldType::Boolean),
            Field::optional("seed", FieldType::Integer),
        ],
        // The SDK leaves `audio` out: seedance makes no sound.
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Image, "image"),
            Mapping::field(Unified::StartImage, "image"),
            Mapping::field(Unified::EndImage, "last_frame_image"),
            Mapping::field(Unified::Duration, "duration"),
            Mapping::field(Unified::Resolution, "resolution"),
            Mapping::field(Unified::AspectRatio, "aspect_ratio"),
            Mapping::field(Unified::Seed, "seed"),
            Mapping::translated(
                Unified::CameraMotion,
                "camera_fixed",
                &[("fixed", Lit::Bool(true)), ("dynamic", Lit::Bool(false))],
            ),
            Mapping::dropped(Unified::Audio),
        ],
        defaults: &[("camera_fixed", Lit::Bool(false))],
        variants: &[],
    },
    ModelSpec {
        id: "minimax/video-01",
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: VIDEO_DEADLINE,
        // Always 6 s at 720p: the SDK drops the duration, size and ratio it is sent.
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("prompt_optimizer", FieldType::Boolean),
            Field::optional("first_frame_image", FieldType::Url),
            Field::optional("subject_reference", FieldType::Url),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Image, "first_frame_image"),
            Mapping::dropped(Unified::Duration),
            Mapping::dropped(Unified::Resolution),
            Mapping::dropped(Unified::AspectRatio),
            Mapping::dropped(Unified::Seed),
            Mapping::dropped(Unified::EndImage),
            Mapping::dropped(Unified::Audio),
            Mapping::dropped(Unified::CameraMotion),
        ],
        defaults: &[("prompt_optimizer", Lit::Bool(true))],
        variants: &[],
    },
    ModelSpec {
        id: "google/nano-banana",
        version: None,
        operations: &[Operation::GenerateImage],
        output: MediaKind::Image,
        completion: Completion::Webhook,
        deadline: Duration::from_secs(10 * MINUTE),
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("image_input", FieldType::UrlList(14)),
            Field::optional("aspect_ratio", FieldType::OneOf(NANO_BANANA_RATIOS)),
            Field::optional("output_format", FieldType::OneOf(&["jpg", "png"])),
        ],
        mapping: NANO_BANANA_MAPPING,
        defaults: EMPTY_PROMPT,
        variants: &[],
    },
    ModelSpec {
        id: "google/nano-banana-pro",
        version: None,
        operations: &[Operation::GenerateImage],
        output: MediaKind::Image,
        completion: Completion::Webhook,
        deadline: Duration::from_secs(10 * MINUTE),
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("image_input", FieldType::UrlList(14)),
            Field::optional("aspect_ratio", FieldType::OneOf(NANO_BANANA_RATIOS)),
            Field::optional("resolution", FieldType::OneOf(&["1K", "2K", "4K"])),
            Field::optional("output_format", FieldType::OneOf(&["jpg", "png"])),
            Field::optional(
                "safety_filter_level",
                FieldType::OneOf(&["block_low_and_above", "block_medium_and_above", "block_only_high"]),
            ),
        ],
        mapping: NANO_BANANA_MAPPING,
        defaults: EMPTY_PROMPT,
        variants: &[],
    },
    ModelSpec {
        id: "bytedance/seedream-4",
        version: None,
        operations: &[Operation::GenerateImage],
        output: MediaKind::Image,
        completion: Completion::Webhook,
        deadline: Duration::from_secs(10 * MINUTE),
        // `width` and `height` count only with `size: custom`; Replicate checks that pairing.
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("size", FieldType::OneOf(&["1K", "2K", "4K", "custom"])),
            Field::optional(
                "aspect_ratio",
                FieldType::OneOf(&[
                    "match_input_image",
                    "1:1",
                    "4:3",
                    "3:4",
                    "16:9",
                    "9:16",
                    "3:2",
                    "2:3",
                    "21:9",
                ]),
            ),
            Field::optional("width", FieldType::IntRange(1024, 4096)),
            Field::optional("height", FieldType::IntRange(1024, 4096)),
            Field::optional("sequential_image_generation", FieldType::OneOf(&["disabled", "auto"])),
            Field::optional("max_images", FieldType::IntRange(1, 15)),
            Field::optional("enhance_prompt", FieldType::Boolean),
            Field::optional("image_input", FieldType::UrlList(10)),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Image, "image_input"),
            Mapping::field(Unified::AspectRatio, "aspect_ratio"),
            Mapping::dropped(Unified::OutputFormat),
            Mapping::dropped(Unified::Seed),
        ],
        defaults: EMPTY_PROMPT,
        variants: &[],
    },
    // Cuts the subject out of a still: a transparent PNG. The SDK runs it as `generateImage`.
    ModelSpec {
        id: "codeplugtech/background_remover",
        version: Some("37ff2aa89897c0de4a140a3d50969dc62b663ea467e1e2bde18008e3d3731b2b"),
        operations: &[Operation::GenerateImage, Operation::RemoveImageBackground],
        output: MediaKind::Image,
        completion: Completion::Webhook,
        deadline: Duration::from_secs(10 * MINUTE),
        fields: &[Field::required("image", FieldType::Url)],
        // The PNG's alpha is the matte; reelay lays it on a colour when asked.
        mapping: &[
            Mapping::field(Unified::Image, "image"),
            Mapping::dropped(Unified::Seed),
            Mapping::dropped(Unified::OutputType),
            Mapping::dropped(Unified::BackgroundColor),
        ],
        defaults: &[],
        variants: &[],
    },
    ModelSpec {
        id: "arielreplicate/robust_video_matting",
        version: Some("73d2128a371922d5d1abf0712a1d974be0e4e2358cc1218e4e34714767232bac"),
        operations: &[Operation::RemoveBackground],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: VIDEO_DEADLINE,
        fields: &[
            Field::required("input_video", FieldType::Url),
            Field::optional(
                "output_type",
                FieldType::OneOf(&["green-screen", "alpha-mask", "foreground-mask"]),
            ),
        ],
        mapping: &[
            Mapping::field(Unified::Video, "input_video"),
            // A transparent output is keyed from the green screen by reelay afterwards.
            Mapping::translated(
                Unified::OutputType,
                "output_type",
                &[("transparent", Lit::Str("green-screen"))],
            ),
            Mapping::dropped(Unified::BackgroundColor),
        ],
        defaults: &[("output_type", Lit::Str("green-screen"))],
        variants: &[],
    },
    // Green screen only, which reelay keys to a colour or transparency: it has no mattes.
    ModelSpec {
        id: "nateraw/video-background-remover",
        version: Some("ac5c138171b04413a69222c304f67c135e259d46089fc70ef12da685b3c604aa"),
        operations: &[Operation::RemoveBackground],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: VIDEO_DEADLINE,
        fields: &[Field::required("video", FieldType::Url)],
        mapping: &[
            Mapping::field(Unified::Video, "video"),
            Mapping::dropped_if(Unified::OutputType, &["green-screen", "transparent"]),
            Mapping::dropped(Unified::BackgroundColor),
        ],
        defaults: &[],
        variants: &[],
    },
    ModelSpec {
        id: "openai/whisper",
        version: Some("8099696689d249cf8b122d833c36ac3f75505c666a395ca40ef26f68e7d3d16e"),
        operations: &[Operation::Transcribe],
        output: MediaKind::Transcript,
        completion: Completion::Webhook,
        deadline: TRANSCRIPT_DEADLINE,
        fields: &[
            Field::required("audio", FieldType::Url),
            Field::optional(
                "model",
                FieldType::OneOf(&["tiny", "base", "small", "medium", "large-v1", "large-v2", "large-v3"]),
            ),
            Field::optional("transcription", FieldType::OneOf(&["plain text", "srt", "vtt"])),
            Field::optional("translate", FieldType::Boolean),
            Field::optional("language", FieldType::String),
            Field::optional("word_timestamps", FieldType::Boolean),
            Field::optional("temperature", FieldType::Number),
            Field::optional("patience", FieldType::Number),
            Field::optional("suppress_tokens", FieldType::String),
            Field::optional("initial_prompt", FieldType::String),
            Field::optional("condition_on_previous_text", FieldType::Boolean),
            Field::optional("temperature_increment_on_fallback", FieldType::Number),
            Field::optional("compression_ratio_threshold", FieldType::Number),
            Field::optional("logprob_threshold", FieldType::Number),
            Field::optional("no_speech_threshold", FieldType::Number),
        ],
        mapping: &[
            Mapping::field(Unified::Audio, "audio"),
            Mapping::field(Unified::Video, "audio"),
            Mapping::field(Unified::Prompt, "initial_prompt"),
        ],
        // Subtitles need each word's time.
        defaults: &[("word_timestamps", Lit::Bool(true))],
        variants: &[],
    },
    ModelSpec {
        id: "vaibhavs10/incredibly-fast-whisper",
        version: Some("3ab86df6c8f54c11309d4d1f930ac292bad43ace52d10c80d87eb258b3c9f79c"),
        operations: &[Operation::Transcribe],
        output: MediaKind::Transcript,
        completion: Completion::Webhook,
        deadline: TRANSCRIPT_DEADLINE,
        fields: &[
            Field::required("audio", FieldType::Url),
            Field::optional("task", FieldType::OneOf(&["transcribe", "translate"])),
            // A language name, or "None" to detect it.
            Field::optional("language", FieldType::String),
            Field::optional("timestamp", FieldType::OneOf(&["chunk", "word"])),
            Field::optional("batch_size", FieldType::Integer),
            Field::optional("diarise_audio", FieldType::Boolean),
            Field::optional("hf_token", FieldType::String),
        ],
        mapping: &[
            Mapping::field(Unified::Audio, "audio"),
            Mapping::field(Unified::Video, "audio"),
        ],
        defaults: &[("timestamp", Lit::Str("word")), ("language", Lit::Str("None"))],
        variants: &[],
    },
];

/// A model id as a job names it, `owner/name` or `owner/name:version`: its registry entry and
/// the version to call (`None`: the official model's latest).
pub fn resolve(model_id: &str) -> Option<(&'static ModelSpec, Option<&str>)> {
    match model_id.split_once(':') {
        None => registry::find(MODELS, model_id).map(|spec| (spec, spec.version)),
        Some((name, version)) if is_version(version) => registry::find(MODELS, name).map(|spec| (spec, Some(version))),
        Some(_) => None,
    }
}

/// A Replicate version id: 64 hex digits.
fn is_version(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[derive(Debug, Clone)]
pub struct ReplicateSettings {
    /// `https://api.replicate.com`.
    pub base_url: String,
    /// The account's API token. A key sent with the request wins over it.
    pub api_key: Option<Secret>,
    /// Creates allowed per account in a window: Replicate's 600 a minute.
    pub create_limit: (usize, Duration),
    /// `Prefer: wait=N` on creates (1 to 50 s, under our 60 s call timeout): a prediction
    /// done within N seconds is answered by the create itself. `None`: answer at once.
    pub prefer_wait: Option<u32>,
    /// How far a webhook's timestamp may be from now (Replicate sets none; 300 s is the
    /// Standard Webhooks advice).
    pub webhook_tolerance: Duration,
    /// How far back `find` lists predictions for a create whose answer was lost.
    pub find_window: Duration,
}

impl ReplicateSettings {
    pub fn new(api_key: Option<Secret>) -> Self {
        ReplicateSettings {
            base_url: "https://api.replicate.com".into(),
            api_key,
            create_limit: (600, Duration::from_secs(60)),
            prefer_wait: None,
            webhook_tolerance: Duration::from_secs(300),
            find_window: Duration::from_secs(3600),
        }
    }
}

/// A prediction as Replicate sends it (create, read, list, webhook).
#[derive(Debug, Clone, Deserialize)]
struct Prediction {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    data_removed: Option<bool>,
    /// Listings may carry it (unconfirmed); `find` matches on it when they do.
    #[serde(default)]
    webhook: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    results: Vec<Prediction>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SigningSecret {
    key: String,
}

impl Prediction {
    fn status(&self) -> ProviderStatus {
        match self.status.as_str() {
            "succeeded" => match self.output.as_ref().filter(|o| !o.is_null()) {
                Some(output) => output_status(output),
                None if self.data_removed == Some(true) => ProviderStatus::Failed {
                    message: "Replicate removed this prediction's output (it deletes outputs an hour after a \
                              prediction ends)"
                        .into(),
                },
                None => ProviderStatus::Failed {
                    message: "the Replicate prediction succeeded without an output".into(),
                },
            },
            "failed" => ProviderStatus::Failed {
                message: match &self.error {
                    Some(Value::String(e)) if !e.trim().is_empty() => e.clone(),
                    Some(e) if !e.is_null() => e.to_string(),
                    _ => "the Replicate prediction failed".into(),
                },
            },
            "canceled" => ProviderStatus::Failed {
                message: "the prediction was canceled at Replicate".into(),
            },
            "aborted" => ProviderStatus::Failed {
                message: "Replicate aborted the prediction before it started".into(),
            },
            // `starting`, `processing`, and any status added later.
            _ => ProviderStatus::Pending,
        }
    }

    /// The status if the prediction has ended (`None` while it runs).
    fn finished(&self) -> Option<ProviderStatus> {
        Some(self.status()).filter(|s| *s != ProviderStatus::Pending)
    }
}

/// A model's output as the engine takes it: a URL (the first of a list) or a `data:` URI
/// passes as it is; anything else (a transcript object, text) becomes a JSON `data:` URI.
fn output_status(output: &Value) -> ProviderStatus {
    let is_url = |s: &str| s.starts_with("https://") || s.starts_with("http://") || s.starts_with("data:");
    let url = match output {
        Value::String(s) if is_url(s) => Some(s.as_str()),
        Value::Array(items) => items.first().and_then(Value::as_str).filter(|s| is_url(s)),
        _ => None,
    };
    match url {
        Some(url) => ProviderStatus::Succeeded {
            output_url: url.to_string(),
            content_type: data_uri_type(url),
        },
        None if output.as_array().is_some_and(Vec::is_empty) => ProviderStatus::Failed {
            message: "the Replicate prediction succeeded with an empty output".into(),
        },
        None => {
            let bytes = serde_json::to_vec(output).unwrap_or_default();
            ProviderStatus::Succeeded {
                output_url: format!(
                    "data:application/json;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                ),
                content_type: Some("application/json".into()),
            }
        }
    }
}

/// The wait a 429 without `Retry-After` names in its detail, as Django REST framework words
/// it: "Request was throttled. Expected available in 2 seconds."
fn throttle_wait(body: &Value) -> Option<Duration> {
    let detail = body["detail"].as_str()?;
    let after = detail.split("available in ").nth(1)?;
    let secs: f64 = after.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The `token` query parameter of a callback URL.
fn token_of(url: &str) -> Option<&str> {
    url.split_once('?')?
        .1
        .split(['&', '#'])
        .find_map(|pair| pair.strip_prefix("token="))
}

/// A webhook signing secret of one account.
struct CachedSecret {
    key: String,
    fetched: Instant,
}

/// A secret older than this is fetched again at the account's next create, so a rotated
/// secret of an account we only know through a client's key is picked up.
const SECRET_MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one fetch of the secret per this on signature mismatches, so that forged
/// webhooks cannot make us call Replicate at their pace.
const SECRET_REFETCH_EVERY: Duration = Duration::from_secs(10);
/// Replicate's clock and ours may differ; `find` looks this much further back.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// `find` gives up (and the job retries later) rather than page through more than this.
const MAX_FIND_PAGES: usize = 200;

/// A prediction `find` has seen listed.
struct Listed {
    created_ms: i64,
    prediction: Prediction,
}

/// What listing one account's predictions has shown, shared by its `find`s so that each
/// scan reads only what is new since the previous one.
#[derive(Default)]
struct Scan {
    seen: HashMap<String, Listed>,
    /// Every prediction created between `floor` (ms) and the start of the last complete
    /// scan is in `seen`.
    floor: Option<i64>,
    began: Option<Instant>,
}

pub struct ReplicateProvider {
    settings: ReplicateSettings,
    http: HttpClient,
    models: Vec<ModelInfo>,
    creates: RateLimiter,
    /// Webhook secrets by account (`rate::account`): keys themselves are not kept.
    secrets: Mutex<HashMap<String, CachedSecret>>,
    last_refetch: Mutex<Option<Instant>>,
    scans: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Scan>>>>,
    /// Predictions known to be a job's (its create answered, or `find` adopted them), by id:
    /// the job's token. `find` never gives one job another's prediction.
    owners: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for ReplicateProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicateProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ReplicateProvider {
    /// Counts the create limit in `budget` (shared by every process using the account).
    pub fn with_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.creates = self.creates.shared(budget);
        self
    }

    pub fn new(mut settings: ReplicateSettings) -> Result<Self, ProviderError> {
        settings.base_url = settings.base_url.trim_end_matches('/').to_string();
        settings.prefer_wait = settings.prefer_wait.map(|w| w.clamp(1, 50));
        Ok(ReplicateProvider {
            creates: RateLimiter::new("replicate/creates", settings.create_limit.0, settings.create_limit.1),
            models: MODELS.iter().map(ModelSpec::info).collect(),
            http: HttpClient::new()?,
            settings,
            secrets: Mutex::new(HashMap::new()),
            last_refetch: Mutex::new(None),
            scans: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// The key a call uses: the job's, else the configured one.
    fn key<'a>(&'a self, key: Option<&'a Secret>) -> Result<&'a Secret, ProviderError> {
        key.or(self.settings.api_key.as_ref()).ok_or_else(|| {
            ProviderError::Fatal("no Replicate API token: configure one, or send one with the request".into())
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    /// The registry entry of a job's model, and the version to call.
    fn spec(model_id: &str) -> Result<(&'static ModelSpec, Option<&str>), ProviderError> {
        resolve(model_id).ok_or_else(|| ProviderError::Fatal(format!("replicate has no model `{model_id}`")))
    }

    /// The create's path and body for a request: by version (`POST /v1/predictions`) when
    /// the model or the job names one, else the official model's latest.
    fn create_call(&self, request: &ProviderRequest) -> Result<(String, Value), ProviderError> {
        let (spec, version) = Self::spec(&request.params.model_id)?;
        let input = spec.input(&request.params).map_err(|problems| {
            let listed: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            ProviderError::Fatal(format!("invalid input for `{}`: {}", spec.id, listed.join("; ")))
        })?;
        let mut body = json!({ "input": input });
        if let Some(webhook) = &request.callback_url {
            body["webhook"] = json!(webhook);
            body["webhook_events_filter"] = json!(["completed"]);
        }
        let path = match version {
            Some(version) => {
                body["version"] = json!(version);
                "/v1/predictions".to_string()
            }
            None => format!("/v1/models/{}/predictions", spec.id),
        };
        Ok((path, body))
    }

    fn own(&self, prediction_id: &str, token: &str) {
        let mut owners = lock(&self.owners);
        let window = self.settings.find_window + CLOCK_SKEW;
        owners.retain(|_, (_, at)| at.elapsed() < window);
        owners.insert(prediction_id.to_string(), (token.to_string(), Instant::now()));
    }

    /// Fetches the account's webhook secret (`GET /v1/webhooks/default/secret`) and caches it.
    async fn fetch_secret(&self, key: &Secret) -> Result<String, ProviderError> {
        let request = self
            .http
            .inner()
            .get(self.url("/v1/webhooks/default/secret"))
            .bearer_auth(key.expose());
        let secret: SigningSecret = self.http.json(request, "replicate webhook secret").await?;
        lock(&self.secrets).insert(
            account(Some(key)),
            CachedSecret {
                key: secret.key.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(secret.key)
    }

    /// Makes sure the webhooks of predictions created with `key` can be checked: with a
    /// client's key, this is the only time we can fetch its account's secret.
    async fn remember_secret(&self, key: &Secret) {
        let fresh = lock(&self.secrets)
            .get(&account(Some(key)))
            .is_some_and(|s| s.fetched.elapsed() < SECRET_MAX_AGE);
        if !fresh {
            if let Err(e) = self.fetch_secret(key).await {
                // Its webhook will be refused; polling completes the job all the same.
                tracing::warn!(error = %e, "could not fetch Replicate's webhook secret");
            }
        }
    }

    /// The configured account's secret fetched again, unless one was fetched moments ago.
    async fn refetch_secret(&self) -> Result<Option<String>, ProviderError> {
        let Some(key) = &self.settings.api_key else {
            return Ok(None);
        };
        {
            let mut last = lock(&self.last_refetch);
            if last.is_some_and(|t| t.elapsed() < SECRET_REFETCH_EVERY) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        self.fetch_secret(key).await.map(Some)
    }

    fn scan_of(&self, key: &Secret) -> Arc<tokio::sync::Mutex<Scan>> {
        lock(&self.scans).entry(account(Some(key))).or_default().clone()
    }

    /// Brings `scan` up to date: lists predictions newest first until it meets one an
    /// earlier complete scan saw, or one created before `since` (ms).
    async fn rescan(&self, scan: &mut Scan, key: &Secret, since: i64) -> Result<(), ProviderError> {
        let began = Instant::now();
        // An older floor is needed: page down to it without stopping at what was seen.
        let deeper = scan.floor.is_none_or(|floor| since < floor);
        let mut found = Vec::new();
        let mut url = self.url("/v1/predictions");
        for _ in 0..MAX_FIND_PAGES {
            let request = self.http.inner().get(&url).bearer_auth(key.expose());
            let page: Page = self.http.json(request, "replicate list").await?;
            let mut done = page.next.is_none();
            for prediction in page.results {
                let created_ms = prediction
                    .created_at
                    .as_deref()
                    .and_then(parse_iso8601)
                    .unwrap_or(i64::MAX);
                if created_ms < since || (!deeper && scan.seen.contains_key(&prediction.id)) {
                    done = true;
                    continue;
                }
                found.push(Listed { created_ms, prediction });
            }
            match page.next {
                // Our key goes with it: follow only Replicate's own pages.
                Some(next) if !next.starts_with(&format!("{}/", self.settings.base_url)) => {
                    return Err(ProviderError::Retryable {
                        message: "replicate list: a next page on another host".into(),
                        retry_after: None,
                    })
                }
                Some(next) if !done => url = next,
                _ => {
                    // Only a complete scan counts: a partial one would leave a gap below it.
                    scan.seen
                        .extend(found.into_iter().map(|l| (l.prediction.id.clone(), l)));
                    scan.floor = Some(if deeper { since } else { scan.floor.unwrap_or(since) });
                    scan.began = Some(began);
                    let horizon = now_ms() - (self.settings.find_window + CLOCK_SKEW).as_millis() as i64;
                    scan.seen.retain(|_, l| l.created_ms >= horizon);
                    scan.floor = scan.floor.map(|f| f.max(horizon));
                    return Ok(());
                }
            }
        }
        Err(ProviderError::Retryable {
            message: format!("replicate list: more than {MAX_FIND_PAGES} pages of recent predictions"),
            retry_after: None,
        })
    }

    /// Whether a listed prediction is the one `request` created.
    fn is_ours(
        &self,
        listed: &Prediction,
        request: &ProviderRequest,
        (spec, version): (&ModelSpec, Option<&str>),
        input: &Value,
    ) -> bool {
        if let Some(webhook) = &listed.webhook {
            return token_of(webhook) == Some(request.token.as_str());
        }
        let same_model = match version {
            Some(version) => listed.version.as_deref() == Some(version),
            None => listed.model.as_deref() == Some(spec.id),
        };
        let owned_by_other = lock(&self.owners)
            .get(&listed.id)
            .is_some_and(|(token, _)| *token != request.token);
        same_model && !owned_by_other && listed.input.as_ref() == Some(input)
    }
}

#[async_trait]
impl Provider for ReplicateProvider {
    fn name(&self) -> &str {
        "replicate"
    }

    fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// `owner/name:version` is the model `owner/name`, run at that version.
    fn model(&self, model_id: &str) -> Option<&ModelInfo> {
        let (spec, _) = resolve(model_id)?;
        self.models.iter().find(|m| m.id == spec.id)
    }

    /// Its prediction listing is the lookup (`find`'s doc says where it falls short).
    fn reconciles(&self) -> bool {
        true
    }

    fn check_params(&self, params: &ProviderParams) -> Vec<(String, String)> {
        resolve(&params.model_id)
            .map(|(spec, _)| spec.check(params))
            .unwrap_or_default()
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let (path, body) = self.create_call(&request)?;
        let key = self.key(request.api_key.as_ref())?;
        if request.callback_url.is_some() {
            self.remember_secret(key).await;
        }
        self.creates.take(request.api_key.as_ref()).await?;
        let mut call = self
            .http
            .inner()
            .post(self.url(&path))
            .bearer_auth(key.expose())
            .json(&body);
        if let Some(wait) = self.settings.prefer_wait {
            call = call.header("Prefer", format!("wait={wait}"));
        }
        let answer = self.http.answer(call, "replicate create").await?;
        if !answer.status.is_success() {
            return Err(match answer.error("replicate create") {
                ProviderError::RateLimited { retry_after: None } => ProviderError::RateLimited {
                    retry_after: throttle_wait(&answer.json()),
                },
                other => other,
            });
        }
        // Created, but unreadable: a retry's `find` adopts it.
        let prediction: Prediction = serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Retryable {
            message: format!("replicate create: unreadable answer: {e}"),
            retry_after: None,
        })?;
        self.own(&prediction.id, &request.token);
        Ok(Submission {
            finished: prediction.finished(),
            provider_job_id: prediction.id,
        })
    }

    /// Finds the prediction `request` created, if a create reached Replicate: lists the
    /// account's predictions newest first and takes the one whose `webhook` carries the
    /// request's token or, when listings leave webhooks out (unconfirmed), the first of the
    /// same model with the identical input that no other job of this process owns. The engine
    /// asks before every submit, so one scan serves concurrent calls and reads only what was
    /// created since the last: about one list page per batch.
    ///
    /// What stays unreconciled:
    /// - creates older than `find_window` (1 h), or than the execution (its id is a UUIDv7),
    ///   less a minute for clock skew: they are not looked for;
    /// - without webhooks in listings: a prediction whose input Replicate already removed (an
    ///   hour after it ended) is not recognised, and jobs of different processes with
    ///   identical inputs may both adopt one prediction (same input, equivalent output);
    /// - a create still on its way when the list is read, which takes a create that our
    ///   60 s call timeout gave up on and Replicate had not yet received.
    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        let called = Instant::now();
        let (spec, version) = Self::spec(&request.params.model_id)?;
        let Ok(input) = self.create_call(request).map(|(_, body)| body["input"].clone()) else {
            // Its input cannot be made, so it was never created.
            return Ok(None);
        };
        let key = self.key(request.api_key.as_ref())?;
        let window_start = now_ms() - self.settings.find_window.as_millis() as i64;
        let execution_start = uuid::Uuid::parse_str(&request.job.execution_id)
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix())
            .map_or(window_start, |(secs, nanos)| {
                secs as i64 * 1000 + (nanos / 1_000_000) as i64
            });
        let since = execution_start.max(window_start) - CLOCK_SKEW.as_millis() as i64;
        let scan = self.scan_of(key);
        let mut scan = scan.lock().await;
        // A scan that began after this call covers every create made before it.
        let current = scan.began.is_some_and(|b| b >= called) && scan.floor.is_some_and(|f| f <= since);
        if !current {
            self.rescan(&mut scan, key, since).await?;
        }
        let mut ours: Vec<&Listed> = scan
            .seen
            .values()
            .filter(|l| l.created_ms >= since && self.is_ours(&l.prediction, request, (spec, version), &input))
            .collect();
        // The first create, should a retry have made more.
        ours.sort_by_key(|l| l.created_ms);
        let Some(found) = ours.first() else {
            return Ok(None);
        };
        self.own(&found.prediction.id, &request.token);
        Ok(Some(Submission {
            provider_job_id: found.prediction.id.clone(),
            finished: found.prediction.finished(),
        }))
    }

    async fn status(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        let path = prediction_path(provider_job_id, "")?;
        let request = self
            .http
            .inner()
            .get(self.url(&path))
            .bearer_auth(self.key(key)?.expose());
        let prediction: Prediction = self.http.json(request, "replicate read").await?;
        Ok(prediction.status())
    }

    async fn cancel(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<(), ProviderError> {
        let path = prediction_path(provider_job_id, "/cancel")?;
        let request = self
            .http
            .inner()
            .post(self.url(&path))
            .bearer_auth(self.key(key)?.expose());
        self.http.send(request, "replicate cancel").await.map(|_| ())
    }

    /// Outputs on `replicate.delivery` need no key; files served by the API itself do. The
    /// key is never sent to any other host.
    async fn download(&self, output_url: &str, key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        let mut headers = HeaderMap::new();
        if output_url.starts_with(&format!("{}/", self.settings.base_url)) {
            let value = HeaderValue::from_str(&format!("Bearer {}", self.key(key)?.expose()))
                .map_err(|_| ProviderError::Fatal("the Replicate API token is not a valid header value".into()))?;
            headers.insert(AUTHORIZATION, value);
        }
        self.http.download(output_url, headers).await.map_err(|e| match e {
            ProviderError::Fatal(message) if !output_url.starts_with("data:") => ProviderError::Fatal(format!(
                "could not copy Replicate's output ({message}); Replicate deletes outputs an hour after a \
                 prediction ends, so it has most likely expired"
            )),
            other => other,
        })
    }

    async fn verify_callback(&self, headers: &[(String, String)], body: &[u8]) -> Result<Callback, CallbackError> {
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let (Some(id), Some(timestamp), Some(signatures)) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ) else {
            return Err(CallbackError::Unauthorized(
                "missing webhook-id, webhook-timestamp or webhook-signature".into(),
            ));
        };
        let now = (now_ms() / 1000, self.settings.webhook_tolerance.as_secs() as i64);
        let refused = |e: SignatureError| CallbackError::Unauthorized(e.to_string());
        check_timestamp(timestamp, now.0, now.1).map_err(refused)?;
        let verify = |secret: &str| verify_standard(secret, id, timestamp, signatures, body, now.0, now.1);
        let known: Vec<String> = lock(&self.secrets).values().map(|s| s.key.clone()).collect();
        if !known.iter().any(|secret| verify(secret).is_ok()) {
            // Never fetched, or rotated since: fetch the configured account's once more.
            match self.refetch_secret().await {
                Ok(Some(secret)) => verify(&secret).map_err(refused)?,
                Ok(None) => return Err(refused(SignatureError::Mismatch)),
                Err(e) if known.is_empty() => {
                    return Err(CallbackError::Unavailable(format!(
                        "cannot fetch the signing secret: {e}"
                    )))
                }
                Err(_) => return Err(refused(SignatureError::Mismatch)),
            }
        }
        let prediction: Prediction = serde_json::from_slice(body)
            .map_err(|e| CallbackError::Malformed(format!("not a Replicate prediction: {e}")))?;
        Ok(Callback {
            status: prediction.status(),
            provider_job_id: prediction.id,
        })
    }
}

/// `/v1/predictions/{id}{suffix}`, for ids Replicate could have made (never a path of our choosing).
fn prediction_path(id: &str, suffix: &str) -> Result<String, ProviderError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ProviderError::Fatal(format!("`{id}` is not a Replicate prediction id")));
    }
    Ok(format!("/v1/predictions/{id}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::domain::JobKey;
    use reelay_core::plan::{AspectRatio, MediaRef};

    fn prediction(value: Value) -> Prediction {
        serde_json::from_value(value).unwrap()
    }

    fn params(model: &str) -> ProviderParams {
        ProviderParams::prompt("replicate", model, "a fox")
    }

    fn request(params: ProviderParams, callback: Option<&str>) -> ProviderRequest {
        ProviderRequest {
            job: JobKey {
                execution_id: "e".into(),
                job_id: "j".into(),
            },
            operation: Operation::Generate,
            params,
            token: "t0k".into(),
            api_key: None,
            callback_url: callback.map(str::to_string),
        }
    }

    #[test]
    fn outputs_of_every_shape() {
        let done = |output: Value| prediction(json!({"id": "p", "status": "succeeded", "output": output})).status();
        assert_eq!(
            done(json!("https://replicate.delivery/x/out.mp4")),
            ProviderStatus::Succeeded {
                output_url: "https://replicate.delivery/x/out.mp4".into(),
                content_type: None
            }
        );
        assert_eq!(
            done(json!(["https://r.d/1.png", "https://r.d/2.png"])),
            ProviderStatus::Succeeded {
                output_url: "https://r.d/1.png".into(),
                content_type: None
            }
        );
        assert_eq!(
            done(json!("data:image/png;base64,iVBO")),
            ProviderStatus::Succeeded {
                output_url: "data:image/png;base64,iVBO".into(),
                content_type: Some("image/png".into())
            }
        );
        let ProviderStatus::Succeeded {
            output_url,
            content_type,
        } = done(json!({"transcription": "hello", "segments": []}))
        else {
            panic!("an object is an output")
        };
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let b64 = output_url.strip_prefix("data:application/json;base64,").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            json!({"transcription": "hello", "segments": []})
        );
        assert!(matches!(done(json!([])), ProviderStatus::Failed { .. }));
        assert!(matches!(done(Value::Null), ProviderStatus::Failed { .. }));
        let removed = prediction(json!({"id": "p", "status": "succeeded", "output": null, "data_removed": true}));
        assert!(matches!(removed.status(), ProviderStatus::Failed { message } if message.contains("an hour")));
    }

    #[test]
    fn statuses() {
        let status = |s: &str, error: Value| prediction(json!({"id": "p", "status": s, "error": error})).status();
        assert_eq!(status("starting", Value::Null), ProviderStatus::Pending);
        assert_eq!(status("processing", Value::Null), ProviderStatus::Pending);
        assert_eq!(status("queued-someday", Value::Null), ProviderStatus::Pending);
        assert_eq!(
            status("failed", json!("CUDA out of memory")),
            ProviderStatus::Failed {
                message: "CUDA out of memory".into()
            }
        );
        assert!(
            matches!(status("canceled", Value::Null), ProviderStatus::Failed { message } if message.contains("canceled"))
        );
        assert!(
            matches!(status("aborted", Value::Null), ProviderStatus::Failed { message } if message.contains("aborted"))
        );
        assert_eq!(prediction(json!({"id": "p", "status": "processing"})).finished(), None);
    }

    #[test]
    fn creates_by_model_name_or_by_version() {
        let provider = ReplicateProvider::new(ReplicateSettings::new(None)).unwrap();
        let mut p = params("bytedance/seedance-1-pro");
        p.duration = Some(5.0);
        p.aspect_ratio = Some(AspectRatio { w: 9, h: 16 });
        p.inputs
            .insert("image".into(), MediaRef::Url("https://x/first.png".into()));
        let (path, body) = provider
            .create_call(&request(p, Some("https://us/api/webhooks/job/r?token=t0k")))
            .unwrap();
        assert_eq!(path, "/v1/models/bytedance/seedance-1-pro/predictions");
        assert_eq!(
            body,
            json!({"input": {"prompt": "a fox", "duration": 5, "aspect_ratio": "9:16", "image": "https://x/first.png",
                             "camera_fixed": false},
                   "webhook": "https://us/api/webhooks/job/r?token=t0k", "webhook_events_filter": ["completed"]})
        );
        let whisper = |model: &str| {
            let mut p = params(model);
            p.prompt = None;
            p.inputs.insert("audio".into(), MediaRef::Url("https://x/a.mp3".into()));
            provider.create_call(&request(p, None))
        };
        let (path, body) = whisper("openai/whisper").unwrap();
        assert_eq!(path, "/v1/predictions");
        assert_eq!(body["version"], WHISPER_VERSION);
        assert_eq!(
            body["input"],
            json!({"audio": "https://x/a.mp3", "word_timestamps": true})
        );
        assert!(body.get("webhook").is_none());
        // Bad input is the job's fault, named field by field.
        let mut p = params("bytedance/seedance-1-pro");
        p.duration = Some(15.0);
        let Err(ProviderError::Fatal(message)) = provider.create_call(&request(p, None)) else {
            panic!("seedance makes at most 12 s")
        };
        assert!(message.contains("duration"), "{message}");
    }

    const WHISPER_VERSION: &str = "8099696689d249cf8b122d833c36ac3f75505c666a395ca40ef26f68e7d3d16e";

    #[test]
    fn a_version_in_the_id_is_the_models_entry_run_at_that_version() {
        let provider = ReplicateProvider::new(ReplicateSettings::new(None)).unwrap();
        let pinned = format!("openai/whisper:{WHISPER_VERSION}");
        let other = format!("openai/whisper:{}", "ab".repeat(32));
        for id in [pinned.as_str(), other.as_str()] {
            assert_eq!(provider.model(id).map(|m| m.id.as_str()), Some("openai/whisper"));
        }
        let call = |id: &str| {
            let mut p = params(id);
            p.prompt = None;
            p.inputs
                .insert("videoUrl".into(), MediaRef::Url("https://x/v.mp4".into()));
            provider.create_call(&request(p, None))
        };
        let (path, body) = call(&other).unwrap();
        assert_eq!(
            (path.as_str(), &body["version"]),
            ("/v1/predictions", &json!("ab".repeat(32)))
        );
        assert_eq!(body["input"]["audio"], "https://x/v.mp4");
        // An official model named with a version runs that version too.
        let seedance = params(&format!("bytedance/seedance-1-pro:{}", "cd".repeat(32)));
        let (path, body) = provider.create_call(&request(seedance, None)).unwrap();
        assert_eq!(path, "/v1/predictions");
        assert_eq!(body["version"], "cd".repeat(32));
        for unknown in [
            "openai/whisper:latest".to_string(),
            "openai/whisperer".into(),
            format!("acme/x:{WHISPER_VERSION}"),
        ] {
            assert!(provider.model(&unknown).is_none(), "{unknown}");
        }
        assert_eq!(
            resolve(
                "vaibhavs10/incredibly-fast-whisper:3ab86df6c8f54c11309d4d1f930ac292bad43ace52d10c80d87eb258b3c9f79c"
            )
            .map(|(spec, _)| spec.id),
            Some("vaibhavs10/incredibly-fast-whisper")
        );
    }

    /// The model's input for unified `params` (and the raw `options`).
    fn input(model: &str, edit: impl FnOnce(&mut ProviderParams)) -> Value {
        let mut p = params(model);
        edit(&mut p);
        let (spec, _) = resolve(model).unwrap();
        Value::Object(spec.input(&p).unwrap_or_else(|e| panic!("{model}: {e:?}")))
    }

    fn url(s: &str) -> MediaRef {
        MediaRef::Url(s.into())
    }

    #[test]
    fn seedance_as_the_sdk_maps_it() {
        let got = input("bytedance/seedance-1-pro", |p| {
            p.duration = Some(5.0);
            p.resolution = Some("1080p".into());
            p.seed = Some(7);
            p.inputs.insert("image".into(), url("https://x/image.png"));
            p.inputs.insert("startImage".into(), url("https://x/start.png"));
            p.inputs.insert("endImage".into(), url("https://x/end.png"));
            p.inputs.insert("audio".into(), url("https://x/voice.mp3"));
            p.options.insert("cameraMotion".into(), json!("fixed"));
        });
        assert_eq!(
            got,
            json!({"prompt": "a fox", "duration": 5, "resolution": "1080p", "seed": 7,
                   "image": "https://x/start.png", "last_frame_image": "https://x/end.png", "camera_fixed": true})
        );
        let got = input("bytedance/seedance-1-pro", |p| {
            p.options.insert("cameraMotion".into(), json!("dynamic"));
            // The docs' camelCase options.
            p.options.insert("lastFrameImage".into(), json!("https://x/last.png"));
        });
        assert_eq!(got["camera_fixed"], false);
        assert_eq!(got["last_frame_image"], "https://x/last.png");
        assert_eq!(
            input("bytedance/seedance-1-pro", |p| {
                p.options.insert("cameraFixed".into(), json!(true));
            })["camera_fixed"],
            true
        );
    }

    #[test]
    fn minimax_always_optimizes_the_prompt_and_drops_what_it_cannot_take() {
        let got = input("minimax/video-01", |p| {
            p.duration = Some(10.0);
            p.aspect_ratio = Some(AspectRatio { w: 16, h: 9 });
            p.seed = Some(1);
            p.options.insert("cameraMotion".into(), json!("fixed"));
        });
        assert_eq!(got, json!({"prompt": "a fox", "prompt_optimizer": true}));
        let got = input("minimax/video-01", |p| {
            p.options.insert("promptOptimizer".into(), json!(false));
        });
        assert_eq!(got["prompt_optimizer"], false);
    }

    #[test]
    fn google_image_models_take_a_list_of_images_and_no_seed() {
        for model in ["google/nano-banana", "google/nano-banana-pro"] {
            let got = input(model, |p| {
                p.prompt = None;
                p.seed = Some(3);
                p.aspect_ratio = Some(AspectRatio { w: 4, h: 5 });
                p.inputs.insert("image".into(), url("https://x/in.png"));
                p.options.insert("outputFormat".into(), json!("png"));
            });
            assert_eq!(
                got,
                json!({"prompt": "", "image_input": ["https://x/in.png"], "aspect_ratio": "4:5", "output_format": "png"})
            );
            let got = input(model, |p| {
                p.options
                    .insert("image".into(), json!(["https://x/1.png", "https://x/2.png"]));
            });
            assert_eq!(got["image_input"], json!(["https://x/1.png", "https://x/2.png"]));
        }
        let got = input("google/nano-banana-pro", |p| p.resolution = Some("2K".into()));
        assert_eq!(got["resolution"], "2K");
    }

    #[test]
    fn seedream_takes_images_and_the_docs_camel_case_options() {
        let got = input("bytedance/seedream-4", |p| {
            p.aspect_ratio = Some(AspectRatio { w: 16, h: 9 });
            p.inputs.insert("image".into(), url("https://x/in.png"));
            p.options.insert("outputFormat".into(), json!("jpg"));
            p.options.insert("sequentialImageGeneration".into(), json!("auto"));
            p.options.insert("maxImages".into(), json!(4));
            p.options.insert("enhancePrompt".into(), json!(true));
            p.options.insert("size".into(), json!("2K"));
        });
        assert_eq!(
            got,
            json!({"prompt": "a fox", "image_input": ["https://x/in.png"], "aspect_ratio": "16:9",
                   "sequential_image_generation": "auto", "max_images": 4, "enhance_prompt": true, "size": "2K"})
        );
        let (spec, _) = resolve("bytedance/seedream-4").unwrap();
        let mut p = params("bytedance/seedream-4");
        p.options.insert("maxImages".into(), json!(16));
        assert_eq!(spec.check(&p)[0].0, "max_images");
    }

    #[test]
    fn background_removers_take_the_video_and_its_output_type() {
        let video = |p: &mut ProviderParams| {
            p.prompt = None;
            p.inputs.insert("video".into(), url("https://x/v.mp4"));
        };
        assert_eq!(
            input("arielreplicate/robust_video_matting", video),
            json!({"input_video": "https://x/v.mp4", "output_type": "green-screen"})
        );
        let got = input("arielreplicate/robust_video_matting", |p| {
            video(p);
            p.options.insert("outputType".into(), json!("alpha-mask"));
        });
        assert_eq!(got["output_type"], "alpha-mask");
        let got = input("arielreplicate/robust_video_matting", |p| {
            video(p);
            p.options.insert("outputType".into(), json!("transparent"));
            p.options.insert("backgroundColor".into(), json!("#102030"));
        });
        assert_eq!(got["output_type"], "green-screen");
        assert!(got.get("backgroundColor").is_none());
        let got = input("nateraw/video-background-remover", |p| {
            video(p);
            p.options.insert("outputType".into(), json!("transparent"));
        });
        assert_eq!(got, json!({"video": "https://x/v.mp4"}));
        let (spec, _) = resolve("nateraw/video-background-remover").unwrap();
        for matte in ["alpha-mask", "foreground-mask"] {
            let mut p = params("nateraw/video-background-remover");
            video(&mut p);
            p.options.insert("outputType".into(), json!(matte));
            assert_eq!(spec.check(&p)[0].0, "outputType", "{matte}");
        }
        let got = input("codeplugtech/background_remover", |p| {
            p.prompt = None;
            p.inputs.insert("image".into(), url("https://x/in.png"));
        });
        assert_eq!(got, json!({"image": "https://x/in.png"}));
    }

    #[test]
    fn whispers_ask_for_word_times() {
        let got = input("vaibhavs10/incredibly-fast-whisper", |p| {
            p.prompt = None;
            p.inputs.insert("audio".into(), url("https://x/a.mp3"));
        });
        assert_eq!(
            got,
            json!({"audio": "https://x/a.mp3", "timestamp": "word", "language": "None"})
        );
    }

    #[test]
    fn a_throttled_answer_names_its_wait() {
        let wait = |detail: &str| throttle_wait(&json!({ "detail": detail }));
        assert_eq!(
            wait("Request was throttled. Expected available in 2 seconds."),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait("Request was throttled. Expected available in 1 second."),
            Some(Duration::from_secs(1))
        );
        assert_eq!(wait("Request was throttled."), None);
        assert_eq!(throttle_wait(&Value::Null), None);
    }

    #[test]
    fn tokens_ride_on_callback_urls() {
        assert_eq!(token_of("https://us/api/webhooks/job/r?token=abc"), Some("abc"));
        assert_eq!(token_of("https://us/x?a=1&token=abc&b=2"), Some("abc"));
        assert_eq!(token_of("https://us/x?a=1"), None);
        assert_eq!(token_of("https://us/x"), None);
        assert!(prediction_path("../../v1/account", "").is_err());
        assert_eq!(
            prediction_path("ufawqhfynnddngldkgtslldrkq", "/cancel").unwrap(),
            "/v1/predictions/ufawqhfynnddngldkgtslldrkq/cancel"
        );
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let provider = ReplicateProvider::new(ReplicateSettings::new(Some(Secret::new("r8_secret_value")))).unwrap();
        assert!(!format!("{provider:?}").contains("r8_secret_value"));
    }

    #[test]
    fn every_model_is_well_formed() {
        registry::assert_well_formed(MODELS);
        assert!(MODELS.iter().filter_map(|m| m.version).all(is_version));
    }
}
