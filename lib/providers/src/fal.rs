//! fal, through its queue API. A job is a queue request: `POST {queue}/{model_id}` with the
//! model's own input (and `?fal_webhook=<callback>` for models that complete by webhook),
//! then `GET …/{owner}/{app}/requests/{id}/status` (202 while queued or running, 200 once
//! `COMPLETED`) and the result at `…/requests/{id}`. A failed request is `COMPLETED` too: its
//! result is the model's error (a 422 with `detail`). Webhooks are signed with Ed25519 by keys
//! fal publishes as a JWKS.
//!
//! A job's `provider_job_id` is `{owner}/{app}|{request_id}`: status, result and cancel live
//! under the app without the model's endpoint path, and `status` is given the id alone. fal's
//! webhook names the request id alone, hence `is_same_job`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, ProviderParams, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    RateBudget, Submission, DEFAULT_DEADLINE,
};

use crate::http::{error_message, HttpClient};
use crate::rate::RateLimiter;
use crate::registry::{self, Field, FieldType, Lit, Mapping, ModelSpec, Unified};

/// A webhook whose timestamp is further off than this is refused (a replay, or a bad clock).
const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// Kling's durations, in seconds, as the strings its schema takes.
const KLING_DURATION: FieldType = FieldType::OneOf(&["5", "10"]);

/// VEED Fabric makes a talking video from a still image and a voice track: the SDK's
/// `generate` with fabric, and a `lipSync` of a still. Only 480p and 720p: the SDK sends
/// 1080p, or nothing, as 720p.
const fn fabric(id: &'static str) -> ModelSpec {
    ModelSpec {
        id,
        version: None,
        operations: &[Operation::Generate, Operation::LipSync],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: DEFAULT_DEADLINE,
        fields: FABRIC_FIELDS,
        mapping: FABRIC_MAPPING,
        defaults: &[("resolution", Lit::Str("720p"))],
        variants: &[],
    }
}

const FABRIC_FIELDS: &[Field] = &[
    Field::required("image_url", FieldType::Url),
    Field::required("audio_url", FieldType::Url),
    Field::required("resolution", FieldType::OneOf(&["480p", "720p"])),
];
const FABRIC_MAPPING: &[Mapping] = &[
    Mapping::field(Unified::Image, "image_url"),
    Mapping::field(Unified::Audio, "audio_url"),
    Mapping::translated(Unified::Resolution, "resolution", &[("1080p", Lit::Str("720p"))]),
    // The rest of the SDK's unified video params mean nothing to it.
    Mapping::dropped(Unified::Prompt),
    Mapping::dropped(Unified::Duration),
    Mapping::dropped(Unified::AspectRatio),
    Mapping::dropped(Unified::Seed),
    Mapping::dropped(Unified::EndImage),
    Mapping::dropped(Unified::CameraMotion),
];

const NANO_BANANA_RATIOS: &[&str] = &["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"];

/// Google's image models on fal. With input images (`image_urls`, or the unified `image`) the
/// job goes to the model's `/edit` endpoint (`variants`), as fal serves edits there. fal says
/// `jpeg` where the SDK says `jpg`; a seed is never sent; `-pro`'s `resolution` goes to its
/// field of that name.
const fn nano_banana(
    id: &'static str,
    fields: &'static [Field],
    variants: &'static [(&'static str, &'static str)],
) -> ModelSpec {
    ModelSpec {
        id,
        version: None,
        operations: &[Operation::GenerateImage],
        output: MediaKind::Image,
        // Images take seconds: polled (see `find` for what that costs when a submit answer is lost).
        completion: Completion::Polling,
        deadline: Duration::from_secs(600),
        fields,
        mapping: NANO_BANANA_MAPPING,
        defaults: &[],
        variants,
    }
}

const NANO_BANANA_MAPPING: &[Mapping] = &[
    Mapping::field(Unified::Prompt, "prompt"),
    Mapping::field(Unified::AspectRatio, "aspect_ratio"),
    Mapping::field(Unified::Image, "image_urls"),
    Mapping::translated(Unified::OutputFormat, "output_format", &[("jpg", Lit::Str("jpeg"))]),
    Mapping::dropped(Unified::Seed),
];
const NANO_BANANA_PROMPT: Field = Field::required("prompt", FieldType::String);
const NANO_BANANA_IMAGES: Field = Field::optional("image_urls", FieldType::UrlList(14));
const NANO_BANANA_RATIO: Field = Field::optional("aspect_ratio", FieldType::OneOf(NANO_BANANA_RATIOS));
const NANO_BANANA_FORMAT: Field = Field::optional("output_format", FieldType::OneOf(&["jpeg", "png", "webp"]));
const NANO_BANANA_COUNT: Field = Field::optional("num_images", FieldType::IntRange(1, 4));
const SYNC_MODE: Field = Field::optional("sync_mode", FieldType::Boolean);

/// The fal models reelay knows, with their input schemas.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        id: "fal-ai/kling-video/v2.1/master/text-to-video",
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: DEFAULT_DEADLINE,
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("duration", KLING_DURATION),
            Field::optional("aspect_ratio", FieldType::OneOf(&["16:9", "9:16", "1:1"])),
            Field::optional("negative_prompt", FieldType::String),
            Field::optional("cfg_scale", FieldType::Number),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Duration, "duration"),
            Mapping::field(Unified::AspectRatio, "aspect_ratio"),
        ],
        defaults: &[],
        variants: &[],
    },
    ModelSpec {
        id: "fal-ai/kling-video/v2.1/standard/image-to-video",
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: DEFAULT_DEADLINE,
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::required("image_url", FieldType::Url),
            Field::optional("duration", KLING_DURATION),
            Field::optional("negative_prompt", FieldType::String),
            Field::optional("cfg_scale", FieldType::Number),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Image, "image_url"),
            Mapping::field(Unified::Duration, "duration"),
        ],
        defaults: &[],
        variants: &[],
    },
    fabric("veed/fabric-1.0"),
    fabric("veed/fabric-1.0/fast"),
    // Lip-syncs an existing video to a voice track: the SDK's chained `lipSync` form.
    ModelSpec {
        id: "veed/lipsync",
        version: None,
        operations: &[Operation::LipSync],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: DEFAULT_DEADLINE,
        fields: &[
            Field::required("video_url", FieldType::Url),
            Field::required("audio_url", FieldType::Url),
        ],
        mapping: &[
            Mapping::field(Unified::Video, "video_url"),
            Mapping::field(Unified::Audio, "audio_url"),
        ],
        defaults: &[],
        variants: &[],
    },
    ModelSpec {
        id: "fal-ai/flux/schnell",
        version: None,
        operations: &[Operation::GenerateImage],
        output: MediaKind::Image,
        completion: Completion::Polling,
        deadline: Duration::from_secs(600),
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional(
                "image_size",
                // A preset name or `{width, height}`.
                FieldType::Any,
            ),
            Field::optional("num_inference_steps", FieldType::Integer),
            Field::optional("seed", FieldType::Integer),
            Field::optional("num_images", FieldType::Integer),
            Field::optional("enable_safety_checker", FieldType::Boolean),
            Field::optional("output_format", FieldType::OneOf(&["jpeg", "png"])),
            Field::optional("sync_mode", FieldType::Boolean),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Seed, "seed"),
        ],
        defaults: &[],
        variants: &[],
    },
    nano_banana(
        "fal-ai/nano-banana",
        &[
            NANO_BANANA_PROMPT,
            NANO_BANANA_IMAGES,
            NANO_BANANA_RATIO,
            NANO_BANANA_FORMAT,
            NANO_BANANA_COUNT,
            SYNC_MODE,
        ],
        &[("image_urls", "fal-ai/nano-banana/edit")],
    ),
    nano_banana(
        "fal-ai/nano-banana-pro",
        &[
            NANO_BANANA_PROMPT,
            NANO_BANANA_IMAGES,
            NANO_BANANA_RATIO,
            Field::optional("resolution", FieldType::OneOf(&["1K", "2K", "4K"])),
            NANO_BANANA_FORMAT,
            NANO_BANANA_COUNT,
            SYNC_MODE,
        ],
        &[("image_urls", "fal-ai/nano-banana-pro/edit")],
    ),
];

#[derive(Debug, Clone)]
pub struct FalSettings {
    /// The queue API (`https://queue.fal.run`).
    pub queue_base: String,
    /// Where fal publishes its webhook signing keys.
    pub jwks_url: String,
    /// The account's key (`FAL_KEY`); a job's own key wins over it.
    pub key: Option<Secret>,
    /// Submissions per window per account, if set. fal caps running requests, not the submit
    /// rate (requests over the cap wait in its queue), so there is none by default; fal's own
    /// 429s are honoured all the same.
    pub rate_limit: Option<(usize, Duration)>,
    /// How long fetched signing keys are trusted (fal says at most 24 h).
    pub jwks_max_age: Duration,
    /// The least time between two key fetches caused by webhooks no known key verifies, so
    /// that forged calls cannot make us hammer the JWKS.
    pub jwks_min_refresh: Duration,
}

impl FalSettings {
    pub fn new(key: Option<Secret>) -> Self {
        FalSettings {
            queue_base: "https://queue.fal.run".into(),
            jwks_url: "https://rest.alpha.fal.ai/.well-known/jwks.json".into(),
            key,
            rate_limit: None,
            jwks_max_age: Duration::from_secs(24 * 3600),
            jwks_min_refresh: Duration::from_secs(60),
        }
    }
}

pub struct FalProvider {
    settings: FalSettings,
    http: HttpClient,
    models: Vec<ModelInfo>,
    limiter: Option<RateLimiter>,
    signing_keys: tokio::sync::Mutex<SigningKeys>,
}

/// fal's webhook keys as last fetched.
#[derive(Default)]
struct SigningKeys {
    keys: Vec<VerifyingKey>,
    fetched_at: Option<Instant>,
    /// The last fetch attempt, successful or not.
    tried_at: Option<Instant>,
}

impl SigningKeys {
    fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.keys.iter().any(|k| k.verify_strict(message, signature).is_ok())
    }
}

/// The submit answer (its `status_url`, `response_url` and `cancel_url` are the app's URLs
/// for this id, which `status` and `cancel` rebuild as fal-client does).
#[derive(Deserialize)]
struct Queued {
    request_id: String,
}

#[derive(Deserialize)]
struct QueueState {
    status: String,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WebhookBody {
    request_id: String,
    status: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    error: Option<String>,
    /// Why `payload` is missing (too big to send, say): the result endpoint still has it.
    #[serde(default)]
    payload_error: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
}

impl FalProvider {
    /// Counts the submit limit, if any, in `budget` (shared by every process using the account).
    pub fn with_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.limiter = self.limiter.map(|l| l.shared(budget));
        self
    }

    pub fn new(settings: FalSettings) -> Result<FalProvider, ProviderError> {
        Ok(FalProvider {
            http: HttpClient::new()?,
            models: MODELS.iter().map(ModelSpec::info).collect(),
            limiter: settings
                .rate_limit
                .map(|(limit, window)| RateLimiter::new("fal/submits", limit, window)),
            signing_keys: Default::default(),
            settings,
        })
    }

    fn key<'a>(&'a self, key: Option<&'a Secret>) -> Result<&'a Secret, ProviderError> {
        key.or(self.settings.key.as_ref()).ok_or_else(|| {
            ProviderError::Fatal("no fal key: configure one, or send one with the request (providerApiKeys.fal)".into())
        })
    }

    /// `{queue}/{owner}/{app}/requests/{id}`, the result URL the others hang from.
    fn request_url(&self, provider_job_id: &str) -> Option<(String, String)> {
        let (app, request_id) = provider_job_id.rsplit_once('|')?;
        let safe = |s: &str, extra: char| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || c == extra)
        };
        if !safe(app, '/') || !safe(request_id, '-') {
            return None;
        }
        let base = self.settings.queue_base.trim_end_matches('/');
        Some((format!("{base}/{app}/requests/{request_id}"), request_id.to_string()))
    }

    /// The result of a `COMPLETED` request: its output file, or why it has none.
    async fn result(
        &self,
        url: &str,
        request_id: &str,
        key: &Secret,
        error: Option<String>,
    ) -> Result<ProviderStatus, ProviderError> {
        let answer = self
            .http
            .answer(
                self.http.inner().get(url).header(AUTHORIZATION, auth(key)),
                "fal result",
            )
            .await?;
        if answer.status.is_success() {
            let result = answer.json();
            return Ok(match (error, output_file(&result)) {
                (Some(error), _) => ProviderStatus::Failed {
                    message: format!("fal request {request_id} failed: {error}"),
                },
                (None, Some((output_url, content_type))) => ProviderStatus::Succeeded {
                    output_url,
                    content_type,
                },
                (None, None) => ProviderStatus::Failed {
                    message: format!(
                        "fal request {request_id} gave no output file: {}",
                        error_message(&result.to_string())
                    ),
                },
            });
        }
        let detail = error_message(&String::from_utf8_lossy(&answer.body));
        match answer.status.as_u16() {
            404 | 410 => Ok(ProviderStatus::Failed {
                message: format!(
                    "the result of fal request {request_id} has expired ({detail}): fal keeps a result 1 hour \
                     after it completes (6 minutes from 10 KB), and it was not read in time"
                ),
            }),
            408 | 429 | 500..=599 => Err(answer.error("fal result")),
            // The model's own error (a 422 with the field at fault, a refused prompt).
            _ => Ok(ProviderStatus::Failed {
                message: format!("fal request {request_id} failed: {detail}"),
            }),
        }
    }

    /// Accepts a signature made by one of fal's keys. Keys are fetched when none are held or
    /// they are older than `jwks_max_age`, and again when none verifies (fal rotated them),
    /// but not more often than `jwks_min_refresh`.
    async fn check_signature(&self, message: &[u8], signature: &Signature) -> Result<(), CallbackError> {
        let mut held = self.signing_keys.lock().await;
        let fresh = held
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.settings.jwks_max_age);
        if fresh && held.verify(message, signature) {
            return Ok(());
        }
        let refused = || CallbackError::Unauthorized("no fal signing key verifies the signature".into());
        if held
            .tried_at
            .is_some_and(|at| at.elapsed() < self.settings.jwks_min_refresh)
        {
            return Err(if fresh {
                refused()
            } else {
                CallbackError::Unavailable("fal's signing keys could not be fetched lately".into())
            });
        }
        held.tried_at = Some(Instant::now());
        let keys = self
            .fetch_keys()
            .await
            .map_err(|e| CallbackError::Unavailable(format!("fal's signing keys could not be fetched: {e}")))?;
        held.keys = keys;
        held.fetched_at = Some(Instant::now());
        if held.verify(message, signature) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<VerifyingKey>, ProviderError> {
        let jwks: Jwks = self
            .http
            .json(self.http.inner().get(&self.settings.jwks_url), "fal signing keys")
            .await?;
        let keys: Vec<VerifyingKey> = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| {
                // base64url, sometimes padded.
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k.x.trim_end_matches('='))
                    .ok()?;
                VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes).ok()?).ok()
            })
            .collect();
        if keys.is_empty() {
            return Err(ProviderError::Retryable {
                message: "fal's JWKS holds no Ed25519 key".into(),
                retry_after: None,
            });
        }
        Ok(keys)
    }
}

fn auth(key: &Secret) -> String {
    format!("Key {}", key.expose())
}

/// `{owner}/{app}` of a model id: status, result and cancel URLs leave out the endpoint path
/// (`fal-ai/kling-video/v2.1/…` → `fal-ai/kling-video`); `workflows/` and `comfy/` ids keep
/// their namespace, as in fal-client.
fn app_of(model_id: &str) -> &str {
    let segments = if model_id.starts_with("workflows/") || model_id.starts_with("comfy/") {
        3
    } else {
        2
    };
    match model_id.match_indices('/').nth(segments - 1) {
        Some((at, _)) => &model_id[..at],
        None => model_id,
    }
}

/// The file a result holds: `{"video": {url, content_type}}`, `{"images": [{url}, …]}` (the
/// first), `{"image"|"audio": …}`.
fn output_file(result: &Value) -> Option<(String, Option<String>)> {
    let file = ["video", "image", "audio"]
        .iter()
        .find_map(|k| result.get(k).filter(|v| !v.is_null()))
        .or_else(|| ["images", "videos"].iter().find_map(|k| result.get(k)?.get(0)))?;
    let url = file.as_str().or_else(|| file.get("url")?.as_str())?;
    let content_type = file.get("content_type").and_then(Value::as_str).map(String::from);
    Some((url.to_string(), content_type))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[async_trait]
impl Provider for FalProvider {
    fn name(&self) -> &str {
        "fal"
    }

    fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    fn check_params(&self, params: &ProviderParams) -> Vec<(String, String)> {
        registry::find(MODELS, &params.model_id)
            .map(|model| model.check(params))
            .unwrap_or_default()
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let model_id = &request.params.model_id;
        let model = registry::find(MODELS, model_id)
            .ok_or_else(|| ProviderError::Fatal(format!("fal model `{model_id}` is not in reelay's registry")))?;
        let input = model.input(&request.params).map_err(|problems| {
            let problems: Vec<String> = problems.into_iter().map(|(_, message)| message).collect();
            ProviderError::Fatal(problems.join("; "))
        })?;
        let key = self.key(request.api_key.as_ref())?;
        if let Some(limiter) = &self.limiter {
            limiter.take(request.api_key.as_ref()).await?;
        }
        let base = self.settings.queue_base.trim_end_matches('/');
        let mut call = self
            .http
            .inner()
            .post(format!("{base}/{}", model.endpoint(&input)))
            .header(AUTHORIZATION, auth(key))
            .json(&input);
        if let Some(url) = &request.callback_url {
            call = call.query(&[("fal_webhook", url)]);
        }
        let queued: Queued = self.http.json(call, "fal submit").await?;
        let provider_job_id = format!("{}|{}", app_of(model.id), queued.request_id);
        if self.request_url(&provider_job_id).is_none() {
            return Err(ProviderError::Fatal(format!(
                "fal answered an unusable request id `{}`",
                queued.request_id
            )));
        }
        Ok(Submission {
            provider_job_id,
            finished: None,
        })
    }

    /// Always `None`: fal cannot tell whether a submit whose answer was lost arrived.
    ///
    /// Its queue API reads a request only by the id that answer carried, and fal-client lists
    /// nothing. fal's Platform API lists an endpoint's requests
    /// (`GET api.fal.ai/v1/models/requests/by-endpoint`), but only finished ones, by time,
    /// status or request id: nothing of ours (our token rides only on the webhook URL, which
    /// it does not list), and matching inputs would adopt another job's identical request.
    ///
    /// So `reconciles` is false, and the engine does not repeat a submit that went out
    /// unanswered (`ProviderError::Uncertain`): a webhook model's job waits for fal's callback,
    /// whose URL carries our token, to adopt the request (`adopt_from_callback`); a polling
    /// model's job (`fal-ai/flux/schnell`) fails as `submission_unknown` rather than pay twice.
    /// What remains: a gateway 5xx after fal had queued the request reads as "not accepted"
    /// and is submitted again.
    async fn find(&self, _request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        Ok(None)
    }

    async fn status(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        // A bare request id was adopted from a webhook, which does not name the app.
        let (url, request_id) = self.request_url(provider_job_id).ok_or_else(|| {
            ProviderError::Fatal(format!(
                "fal request `{provider_job_id}` names no app, so it cannot be read back"
            ))
        })?;
        let key = self.key(key)?;
        let answer = self
            .http
            .answer(
                self.http
                    .inner()
                    .get(format!("{url}/status"))
                    .header(AUTHORIZATION, auth(key)),
                "fal status",
            )
            .await?;
        if answer.status.as_u16() == 404 {
            return Ok(ProviderStatus::Failed {
                message: format!(
                    "fal no longer knows request {request_id} ({}): it expired or never existed",
                    error_message(&String::from_utf8_lossy(&answer.body))
                ),
            });
        }
        if !answer.status.is_success() {
            return Err(answer.error("fal status"));
        }
        let state: QueueState = serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Retryable {
            message: format!("fal status: unreadable answer: {e}"),
            retry_after: None,
        })?;
        match state.status.as_str() {
            "COMPLETED" => self.result(&url, &request_id, key, state.error).await,
            _ => Ok(ProviderStatus::Pending),
        }
    }

    async fn cancel(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<(), ProviderError> {
        // A request adopted from its webhook had finished: there is nothing to stop.
        let Some((url, _)) = self.request_url(provider_job_id) else {
            return Ok(());
        };
        let key = self.key(key)?;
        let answer = self
            .http
            .answer(
                self.http
                    .inner()
                    .put(format!("{url}/cancel"))
                    .header(AUTHORIZATION, auth(key)),
                "fal cancel",
            )
            .await?;
        // Each answer means there is nothing left to stop, whatever its HTTP code.
        let said = answer.json()["status"].as_str().map(str::to_owned);
        match said.as_deref() {
            Some("OK" | "CANCELLATION_REQUESTED" | "ALREADY_COMPLETED" | "NOT_FOUND") => Ok(()),
            _ if answer.status.is_success() => Ok(()),
            _ => Err(answer.error("fal cancel")),
        }
    }

    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        // fal's files are served publicly: the key never goes with them.
        self.http
            .download(output_url, HeaderMap::new())
            .await
            .map_err(|e| match e {
                ProviderError::Fatal(m) => ProviderError::Fatal(format!(
                    "{m} (fal keeps a result's files for a limited time: it may have expired)"
                )),
                other => other,
            })
    }

    /// fal signs `{request_id}\n{user_id}\n{timestamp}\n{hex(sha256(body))}` with Ed25519
    /// (`X-Fal-Webhook-*` headers, the signature in hex).
    async fn verify_callback(&self, headers: &[(String, String)], body: &[u8]) -> Result<Callback, CallbackError> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| CallbackError::Unauthorized(format!("no {name} header")))
        };
        let request_id = header("x-fal-webhook-request-id")?;
        let user_id = header("x-fal-webhook-user-id")?;
        let timestamp = header("x-fal-webhook-timestamp")?;
        let signature = header("x-fal-webhook-signature")?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| CallbackError::Unauthorized("unreadable webhook timestamp".into()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if (now - at).unsigned_abs() > WEBHOOK_TOLERANCE.as_secs() {
            return Err(CallbackError::Unauthorized(format!(
                "webhook timestamp is {} s off",
                now - at
            )));
        }
        let signature = unhex(signature)
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or_else(|| CallbackError::Unauthorized("unreadable webhook signature".into()))?;
        let message = format!("{request_id}\n{user_id}\n{timestamp}\n{}", hex(&Sha256::digest(body)));
        self.check_signature(message.as_bytes(), &signature).await?;

        let hook: WebhookBody =
            serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(format!("fal webhook: {e}")))?;
        if hook.request_id != request_id {
            return Err(CallbackError::Unauthorized(
                "the webhook's body is about another request than its signature".into(),
            ));
        }
        let status = match hook.status.as_str() {
            "OK" => match output_file(&hook.payload) {
                Some((output_url, content_type)) => ProviderStatus::Succeeded {
                    output_url,
                    content_type,
                },
                // Sent without its payload: the poll reads the result instead.
                None if hook.payload.is_null() && hook.payload_error.is_some() => ProviderStatus::Pending,
                None => ProviderStatus::Failed {
                    message: format!(
                        "fal request {} gave no output file: {}",
                        hook.request_id,
                        error_message(&hook.payload.to_string())
                    ),
                },
            },
            "ERROR" => {
                let mut message = format!(
                    "fal request {} failed: {}",
                    hook.request_id,
                    hook.error.as_deref().unwrap_or("error")
                );
                if !hook.payload.is_null() {
                    message = format!("{message}: {}", error_message(&hook.payload.to_string()));
                }
                ProviderStatus::Failed { message }
            }
            other => {
                return Err(CallbackError::Malformed(format!(
                    "fal webhook with unknown status `{other}`"
                )))
            }
        };
        Ok(Callback {
            provider_job_id: hook.request_id,
            status,
        })
    }

    fn is_same_job(&self, provider_job_id: &str, callback_job_id: &str) -> bool {
        provider_job_id.rsplit('|').next() == Some(callback_job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::{AspectRatio, MediaRef};
    use serde_json::json;

    fn params(model_id: &str) -> ProviderParams {
        ProviderParams::prompt("fal", model_id, "a fox")
    }

    #[test]
    fn apps_leave_out_the_endpoint_path() {
        assert_eq!(
            app_of("fal-ai/kling-video/v2.1/master/text-to-video"),
            "fal-ai/kling-video"
        );
        assert_eq!(app_of("veed/fabric-1.0"), "veed/fabric-1.0");
        assert_eq!(app_of("workflows/acme/flow/run"), "workflows/acme/flow");
    }

    #[test]
    fn unified_params_reach_kling_as_its_schema_says() {
        let mut p = params("fal-ai/kling-video/v2.1/master/text-to-video");
        p.duration = Some(10.0);
        p.aspect_ratio = Some(AspectRatio { w: 9, h: 16 });
        let model = registry::find(MODELS, &p.model_id).unwrap();
        assert_eq!(
            Value::Object(model.input(&p).unwrap()),
            json!({"prompt": "a fox", "duration": "10", "aspect_ratio": "9:16"})
        );
        p.duration = Some(7.0);
        assert_eq!(model.check(&p)[0].0, "duration");
    }

    #[test]
    fn fabric_takes_an_image_and_a_voice() {
        let mut p = params("veed/fabric-1.0");
        p.prompt = None;
        p.resolution = Some("720p".into());
        p.inputs
            .insert("image".into(), MediaRef::Url("https://x/face.png".into()));
        p.inputs.insert("audioUrl".into(), MediaRef::Job("voice".into()));
        let model = registry::find(MODELS, &p.model_id).unwrap();
        assert_eq!(model.check(&p), vec![]);
        assert!(model.operations.contains(&Operation::Generate));
        p.inputs.insert("video".into(), MediaRef::Job("scene".into()));
        assert!(model.check(&p).iter().any(|(f, _)| f == "video"));
    }

    #[test]
    fn fabric_as_the_sdk_maps_it() {
        for id in ["veed/fabric-1.0", "veed/fabric-1.0/fast"] {
            let model = registry::find(MODELS, id).unwrap();
            // The SDK's unified `generate`: a prompt and a ratio it drops, 1080p sent as 720p.
            let mut p = params(id);
            p.resolution = Some("1080p".into());
            p.aspect_ratio = Some(AspectRatio { w: 9, h: 16 });
            p.inputs
                .insert("startImage".into(), MediaRef::Url("https://x/start.png".into()));
            p.inputs
                .insert("image".into(), MediaRef::Url("https://x/face.png".into()));
            p.inputs
                .insert("audio".into(), MediaRef::Url("https://x/voice.mp3".into()));
            assert_eq!(
                Value::Object(model.input(&p).unwrap()),
                json!({"image_url": "https://x/face.png", "audio_url": "https://x/voice.mp3", "resolution": "720p"})
            );
            // No resolution: 720p; a start image alone is the image.
            p.resolution = None;
            p.inputs.remove("image");
            let input = model.input(&p).unwrap();
            assert_eq!(
                (&input["resolution"], &input["image_url"]),
                (&json!("720p"), &json!("https://x/start.png"))
            );
        }
    }

    #[test]
    fn nano_banana_edits_at_its_edit_endpoint_and_says_jpeg() {
        for (id, edit) in [
            ("fal-ai/nano-banana", "fal-ai/nano-banana/edit"),
            ("fal-ai/nano-banana-pro", "fal-ai/nano-banana-pro/edit"),
        ] {
            let model = registry::find(MODELS, id).unwrap();
            let mut p = params(id);
            p.seed = Some(9);
            p.aspect_ratio = Some(AspectRatio { w: 21, h: 9 });
            p.options.insert("outputFormat".into(), json!("jpg"));
            let input = model.input(&p).unwrap();
            assert_eq!(
                Value::Object(input.clone()),
                json!({"prompt": "a fox", "aspect_ratio": "21:9", "output_format": "jpeg"})
            );
            assert_eq!(model.endpoint(&input), id);
            p.inputs
                .insert("image".into(), MediaRef::Url("https://x/in.png".into()));
            let input = model.input(&p).unwrap();
            assert_eq!(input["image_urls"], json!(["https://x/in.png"]));
            assert_eq!(model.endpoint(&input), edit);
            assert_eq!(app_of(edit), id);
        }
        let pro = registry::find(MODELS, "fal-ai/nano-banana-pro").unwrap();
        let mut p = params("fal-ai/nano-banana-pro");
        p.resolution = Some("4K".into());
        assert_eq!(pro.input(&p).unwrap()["resolution"], "4K");
        let plain = registry::find(MODELS, "fal-ai/nano-banana").unwrap();
        assert_eq!(plain.check(&p)[0].0, "resolution");
    }

    #[test]
    fn every_model_is_well_formed() {
        registry::assert_well_formed(MODELS);
    }

    #[test]
    fn output_files_are_found_in_each_shape() {
        let video =
            json!({"video": {"url": "https://v3.fal.media/a.mp4", "content_type": "video/mp4", "file_size": 1}});
        assert_eq!(
            output_file(&video),
            Some(("https://v3.fal.media/a.mp4".into(), Some("video/mp4".into())))
        );
        let images = json!({"images": [{"url": "https://v3.fal.media/a.png", "width": 8}], "seed": 1});
        assert_eq!(output_file(&images), Some(("https://v3.fal.media/a.png".into(), None)));
        assert_eq!(output_file(&json!({"detail": "nope"})), None);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn callbacks_match_the_recorded_request() {
        let fal = FalProvider::new(FalSettings::new(None)).unwrap();
        assert!(fal.is_same_job("fal-ai/kling-video|abc-1", "abc-1"));
        assert!(fal.is_same_job("abc-1", "abc-1"));
        assert!(!fal.is_same_job("fal-ai/kling-video|abc-1", "abc-2"));
        assert_eq!(
            fal.request_url("fal-ai/kling-video|abc-1").unwrap().0,
            "https://queue.fal.run/fal-ai/kling-video/requests/abc-1"
        );
        assert!(fal.request_url("abc-1").is_none());
        assert!(fal.request_url("fal-ai/x|a?b").is_none());
    }
}
