//! Google Veo, through the Gemini API (an API key) or Vertex AI (OAuth tokens of a service
//! account). Veo calls nobody back: a job is a long-running operation, polled until `done`.
//! Input images travel inline (base64), so they are fetched here first. Outputs are a file
//! URI (Gemini, read with the key), inline base64 (Vertex, kept as a `data:` URI until
//! copied) or a `gs://` object (Vertex with `storage_uri`, read through the GCS JSON API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use reelay_core::domain::Completion;
use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::{MediaKind, Operation, ProviderParams, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    RateBudget, Submission,
};

use crate::http::HttpClient;
use crate::rate::{self, RateLimiter};
use crate::registry::{self, Field, FieldType, Mapping, ModelSpec, Unified};

/// The provider's name in plans.
pub const NAME: &str = "google-cloud";

/// Which Google API serves Veo.
#[derive(Debug, Clone)]
pub enum GoogleApi {
    /// The Gemini API; the key is an API key, sent as `x-goog-api-key`.
    Gemini {
        /// `https://generativelanguage.googleapis.com/v1beta`
        base: String,
    },
    /// Vertex AI; the key is a service account key (its JSON), traded for OAuth tokens.
    Vertex(VertexSettings),
}

#[derive(Debug, Clone)]
pub struct VertexSettings {
    /// The region (`us-central1`). The project is the service account's `project_id`, so a
    /// client's own key bills its own project.
    pub location: String,
    /// `https://{location}-aiplatform.googleapis.com`
    pub base: String,
    /// Where signed JWTs are traded for tokens. Always this one, whatever a key's `token_uri`
    /// says: a key sent by a client must not make us post to an address it picks.
    pub token_url: String,
    /// The GCS JSON API (`https://storage.googleapis.com`), to read `gs://` outputs.
    pub storage_base: String,
    /// A `gs://` prefix Vertex writes videos under. `None`: videos come back inline, and sit
    /// in the job record as `data:` URIs (several MB each) until copied.
    pub storage_uri: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GoogleSettings {
    pub api: GoogleApi,
    /// The configured key (Gemini: an API key; Vertex: a service account key's JSON). A
    /// request's key wins over it.
    pub key: Option<Secret>,
    /// Submissions per account per window. Veo's quotas are a few requests a minute; Google's
    /// 429 (`RESOURCE_EXHAUSTED`) is the backstop.
    pub rate: (usize, Duration),
    /// The largest input image fetched and sent inline.
    pub max_image_bytes: usize,
    /// Which addresses input images may be fetched from (they are client URLs: no internal
    /// address, unless allowed for development).
    pub media_addresses: AddressPolicy,
}

impl GoogleSettings {
    /// The Gemini API at Google, with an API key.
    pub fn gemini(key: Option<Secret>) -> Self {
        GoogleSettings {
            api: GoogleApi::Gemini {
                base: "https://generativelanguage.googleapis.com/v1beta".into(),
            },
            key,
            rate: (10, Duration::from_secs(60)),
            max_image_bytes: 20 * MB,
            media_addresses: AddressPolicy::strict(),
        }
    }

    /// Vertex AI at Google in `location`, with a service account key (its JSON).
    pub fn vertex(location: &str, service_account: Option<Secret>) -> Self {
        GoogleSettings {
            api: GoogleApi::Vertex(VertexSettings {
                location: location.into(),
                base: format!("https://{location}-aiplatform.googleapis.com"),
                token_url: "https://oauth2.googleapis.com/token".into(),
                storage_base: "https://storage.googleapis.com".into(),
                storage_uri: None,
            }),
            key: service_account,
            rate: (10, Duration::from_secs(60)),
            max_image_bytes: 20 * MB,
            media_addresses: AddressPolicy::strict(),
        }
    }
}

const MB: usize = 1024 * 1024;

// Veo's request fields (instances[0] takes prompt, image and lastFrame; the rest are
// parameters). Seed and generateAudio exist on Vertex only (the Gemini API refuses them);
// Veo 3.0 takes no last frame and makes 8 s clips only.
const PROMPT: Field = Field::optional("prompt", FieldType::String);
const IMAGE: Field = Field::optional("image", FieldType::Url);
const LAST_FRAME: Field = Field::optional("lastFrame", FieldType::Url);
const ASPECT_RATIO: Field = Field::optional("aspectRatio", FieldType::OneOf(&["16:9", "9:16"]));
const DURATION: Field = Field::optional("durationSeconds", FieldType::OneOfInt(&[4, 6, 8]));
const DURATION_3_0: Field = Field::optional("durationSeconds", FieldType::OneOfInt(&[8]));
const RESOLUTION: Field = Field::optional("resolution", FieldType::OneOf(&["720p", "1080p"]));
const NEGATIVE_PROMPT: Field = Field::optional("negativePrompt", FieldType::String);
const PERSON_GENERATION: Field = Field::optional(
    "personGeneration",
    FieldType::OneOf(&["allow_all", "allow_adult", "dont_allow"]),
);
const SEED: Field = Field::optional("seed", FieldType::Integer);
const GENERATE_AUDIO: Field = Field::optional("generateAudio", FieldType::Boolean);

const GEMINI_FIELDS: &[Field] = &[
    PROMPT,
    IMAGE,
    LAST_FRAME,
    ASPECT_RATIO,
    DURATION,
    RESOLUTION,
    NEGATIVE_PROMPT,
    PERSON_GENERATION,
];
const VERTEX_FIELDS: &[Field] = &[
    PROMPT,
    IMAGE,
    LAST_FRAME,
    ASPECT_RATIO,
    DURATION,
    RESOLUTION,
    NEGATIVE_PROMPT,
    PERSON_GENERATION,
    SEED,
    GENERATE_AUDIO,
];
const GEMINI_3_0_FIELDS: &[Field] = &[
    PROMPT,
    IMAGE,
    ASPECT_RATIO,
    DURATION_3_0,
    RESOLUTION,
    NEGATIVE_PROMPT,
    PERSON_GENERATION,
];
const VERTEX_3_0_FIELDS: &[Field] = &[
    PROMPT,
    IMAGE,
    ASPECT_RATIO,
    DURATION_3_0,
    RESOLUTION,
    NEGATIVE_PROMPT,
    PERSON_GENERATION,
    SEED,
    GENERATE_AUDIO,
];
// The other unified params (prompt, image, aspectRatio, resolution, seed) have fields of
// their own name.
const MAPPING: &[Mapping] = &[
    Mapping::field(Unified::Duration, "durationSeconds"),
    Mapping::field(Unified::EndImage, "lastFrame"),
];
const MAPPING_3_0: &[Mapping] = &[Mapping::field(Unified::Duration, "durationSeconds")];

/// A Veo model: polled (Veo has no callbacks), failed and cancelled after `minutes`
/// (generation takes from about 11 s to several minutes).
const fn veo(id: &'static str, minutes: u64, fields: &'static [Field], mapping: &'static [Mapping]) -> ModelSpec {
    ModelSpec {
        id,
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Polling,
        deadline: Duration::from_secs(minutes * 60),
        fields,
        mapping,
        defaults: &[],
        variants: &[],
    }
}

/// The Gemini API's Veo models.
pub const GEMINI_MODELS: &[ModelSpec] = &[
    veo("veo-3.1-generate-preview", 20, GEMINI_FIELDS, MAPPING),
    veo("veo-3.1-fast-generate-preview", 15, GEMINI_FIELDS, MAPPING),
    veo("veo-3.0-generate-preview", 20, GEMINI_3_0_FIELDS, MAPPING_3_0),
    veo("veo-3.0-fast-generate-preview", 15, GEMINI_3_0_FIELDS, MAPPING_3_0),
];

/// Vertex AI's Veo models.
pub const VERTEX_MODELS: &[ModelSpec] = &[
    veo("veo-3.1-generate-001", 20, VERTEX_FIELDS, MAPPING),
    veo("veo-3.1-fast-generate-001", 15, VERTEX_FIELDS, MAPPING),
    veo("veo-3.0-generate-001", 20, VERTEX_3_0_FIELDS, MAPPING_3_0),
    veo("veo-3.0-fast-generate-001", 15, VERTEX_3_0_FIELDS, MAPPING_3_0),
];

/// The fields of `instances[0]` that are images, sent inline.
const IMAGE_FIELDS: [&str; 2] = ["image", "lastFrame"];

/// A token is renewed this long before Google says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How long `find` remembers the operations this process started.
const REMEMBER: Duration = Duration::from_secs(3600);
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token request's JWT is for this audience, whichever endpoint it is sent to.
const TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

pub struct GoogleProvider {
    settings: GoogleSettings,
    http: HttpClient,
    /// Fetches input images from the URLs clients gave, through the address guard.
    media: HttpClient,
    models: &'static [ModelSpec],
    infos: Vec<ModelInfo>,
    rate: RateLimiter,
    /// OAuth tokens by service account (`rate::account` of its key). Held while one is
    /// fetched, so concurrent calls wait for it rather than each fetching their own.
    tokens: tokio::sync::Mutex<HashMap<String, Token>>,
    /// Operations this process started, by job token, for `find`.
    started: Mutex<HashMap<String, (String, Instant)>>,
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

impl GoogleProvider {
    /// Counts the prediction limit in `budget` (shared by every process using the account).
    pub fn with_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.rate = self.rate.shared(budget);
        self
    }

    pub fn new(settings: GoogleSettings) -> Result<GoogleProvider, ProviderError> {
        let models = match settings.api {
            GoogleApi::Gemini { .. } => GEMINI_MODELS,
            GoogleApi::Vertex(_) => VERTEX_MODELS,
        };
        Ok(GoogleProvider {
            http: HttpClient::new()?,
            media: HttpClient::guarded(settings.media_addresses.clone())?,
            models,
            infos: models.iter().map(ModelSpec::info).collect(),
            rate: RateLimiter::new("google/predictions", settings.rate.0, settings.rate.1),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
            settings,
        })
    }

    fn model(&self, id: &str) -> Result<&'static ModelSpec, ProviderError> {
        registry::find(self.models, id).ok_or_else(|| ProviderError::Fatal(format!("{NAME} has no model `{id}`")))
    }

    /// The key a call uses: the job's, else the configured one.
    fn key<'a>(&'a self, key: Option<&'a Secret>) -> Result<&'a Secret, ProviderError> {
        key.or(self.settings.key.as_ref()).ok_or_else(|| {
            ProviderError::Fatal(format!(
                "no {NAME} key: configure one on the server or send one with the request"
            ))
        })
    }

    /// Where the API lives (the only origin our credentials are sent to, GCS aside).
    fn api_base(&self) -> &str {
        match &self.settings.api {
            GoogleApi::Gemini { base } => base.trim_end_matches('/'),
            GoogleApi::Vertex(v) => v.base.trim_end_matches('/'),
        }
    }

    /// The header that authorizes a call with `key`; `renew` fetches a new token even if
    /// one is cached.
    async fn auth(&self, key: &Secret, renew: bool) -> Result<HeaderMap, ProviderError> {
        let (name, value) = match &self.settings.api {
            GoogleApi::Gemini { .. } => (HeaderName::from_static("x-goog-api-key"), key.expose().to_string()),
            GoogleApi::Vertex(v) => (
                AUTHORIZATION,
                format!("Bearer {}", self.token(v, key, renew).await?.expose()),
            ),
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| ProviderError::Fatal(format!("the {NAME} key is not usable in a header")))?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(name, value);
        Ok(headers)
    }

    /// A token for the service account `key`, from the cache until shortly before it expires.
    async fn token(&self, vertex: &VertexSettings, key: &Secret, renew: bool) -> Result<Secret, ProviderError> {
        let account = rate::account(Some(key));
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(&account).filter(|t| !renew && Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let assertion = ServiceAccount::parse(key)?.assertion(unix_now())?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: Option<u64>,
        }
        let request = self
            .http
            .inner()
            .post(&vertex.token_url)
            .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())]);
        let answer: Answer = self.http.json(request, "google token exchange").await?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let value = Secret::new(answer.access_token);
        tokens.insert(
            account,
            Token {
                value: value.clone(),
                renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
            },
        );
        Ok(value)
    }

    /// One JSON call, authorized with `key`. A Vertex token refused with 401 (revoked before
    /// its expiry) is replaced, and the call made once more.
    async fn call(
        &self,
        key: &Secret,
        what: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Value, ProviderError> {
        let mut renew = false;
        loop {
            let headers = self.auth(key, renew).await?;
            let answer = self.http.answer(request().headers(headers), what).await?;
            if answer.status.is_success() {
                return serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Retryable {
                    message: format!("{what}: unreadable answer: {e}"),
                    retry_after: None,
                });
            }
            let vertex = matches!(self.settings.api, GoogleApi::Vertex(_));
            if answer.status == StatusCode::UNAUTHORIZED && vertex && !renew {
                renew = true;
                continue;
            }
            let mut error = answer.error(what);
            if let ProviderError::RateLimited {
                retry_after: wait @ None,
            } = &mut error
            {
                *wait = retry_delay(&answer.json());
            }
            return Err(error);
        }
    }

    /// The request body: `instances[0]` holds the prompt and images (inline), the other
    /// fields are parameters. One sample: a job has one output, and each sample is paid.
    async fn request_body(&self, mut input: Map<String, Value>) -> Result<Value, ProviderError> {
        let mut instance = Map::new();
        if let Some(prompt) = input.remove("prompt") {
            instance.insert("prompt".into(), prompt);
        }
        for field in IMAGE_FIELDS {
            if let Some(url) = input.remove(field) {
                let image = self.inline_image(field, url.as_str().unwrap_or_default()).await?;
                instance.insert(field.into(), image);
            }
        }
        input.insert("sampleCount".into(), json!(1));
        if let GoogleApi::Vertex(VertexSettings {
            storage_uri: Some(uri), ..
        }) = &self.settings.api
        {
            input.insert("storageUri".into(), json!(uri));
        }
        Ok(json!({"instances": [instance], "parameters": input}))
    }

    /// An input image as Veo takes it: `{bytesBase64Encoded, mimeType}`, at most
    /// `max_image_bytes` (read in chunks, so a huge file stops at the limit).
    async fn inline_image(&self, field: &str, url: &str) -> Result<Value, ProviderError> {
        let what = format!("input `{field}` download");
        let max = self.settings.max_image_bytes;
        let mut stream = self.media.fetch(url, HeaderMap::new(), &what).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ProviderError::Retryable {
                message: format!("{what} failed: {e}"),
                retry_after: None,
            })?;
            if bytes.len() + chunk.len() > max {
                return Err(ProviderError::Fatal(format!(
                    "input `{field}` is larger than {} MB, the most sent inline to Veo",
                    max / MB
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let mime = image_type(&bytes)
            .ok_or_else(|| ProviderError::Fatal(format!("input `{field}` is not a PNG, JPEG or WebP image")))?;
        Ok(json!({
            "bytesBase64Encoded": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "mimeType": mime,
        }))
    }

    /// Refuses anything but an operation name of the configured API before it goes into a URL.
    fn check_name(&self, name: &str) -> Result<(), ProviderError> {
        let prefix = match self.settings.api {
            GoogleApi::Gemini { .. } => "models/",
            GoogleApi::Vertex(_) => "projects/",
        };
        let ok = name.starts_with(prefix)
            && name.contains("/operations/")
            && !name.contains("..")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c));
        ok.then_some(())
            .ok_or_else(|| ProviderError::Fatal(format!("`{name}` is not a Veo operation name")))
    }

    fn remember(&self, token: &str, name: &str) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        started.insert(token.to_string(), (name.to_string(), Instant::now()));
    }

    async fn operation(&self, name: &str, key: &Secret) -> Result<GoogleOperation, ProviderError> {
        self.check_name(name)?;
        let base = self.api_base();
        let http = self.http.inner();
        let answer = match &self.settings.api {
            GoogleApi::Gemini { .. } => {
                let url = format!("{base}/{name}");
                self.call(key, "google operation", || http.get(&url)).await?
            }
            // Vertex reads Veo operations with a POST on the model (not a GET of the name).
            GoogleApi::Vertex(_) => {
                let model = name.rsplit_once("/operations/").map_or(name, |(model, _)| model);
                let url = format!("{base}/v1/{model}:fetchPredictOperation");
                let body = json!({ "operationName": name });
                self.call(key, "google fetchPredictOperation", || http.post(&url).json(&body))
                    .await?
            }
        };
        GoogleOperation::read(answer)
    }
}

#[async_trait]
impl Provider for GoogleProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    fn check_params(&self, params: &ProviderParams) -> Vec<(String, String)> {
        let Some(model) = registry::find(self.models, &params.model_id) else {
            return Vec::new();
        };
        let mut problems = model.check(params);
        let has = |name: &str| params.options.contains_key(name) || params.inputs.contains_key(name);
        if params.prompt.is_none() && !has("prompt") && !has("image") && !has("startImage") {
            problems.push((
                "prompt".into(),
                format!("model `{}` needs a `prompt` or an `image`", model.id),
            ));
        }
        problems
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let model = self.model(&request.params.model_id)?;
        let input = model.input(&request.params).map_err(|problems| {
            let messages: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
            ProviderError::Fatal(messages.join("; "))
        })?;
        let key = self.key(request.api_key.as_ref())?;
        let body = self.request_body(input).await?;
        self.rate.take(request.api_key.as_ref()).await?;
        let url = match &self.settings.api {
            GoogleApi::Gemini { .. } => format!("{}/models/{}:predictLongRunning", self.api_base(), model.id),
            GoogleApi::Vertex(v) => format!(
                "{}/v1/projects/{}/locations/{}/publishers/google/models/{}:predictLongRunning",
                self.api_base(),
                ServiceAccount::parse(key)?.project_id,
                v.location,
                model.id
            ),
        };
        let http = self.http.inner();
        let answer = self
            .call(key, "google predictLongRunning", || http.post(&url).json(&body))
            .await?;
        let operation = GoogleOperation::read(answer)?;
        // Accepted but unnamed cannot be followed, and submitting again could pay twice.
        let name = operation
            .name
            .clone()
            .ok_or_else(|| ProviderError::Fatal("google predictLongRunning answered no operation name".into()))?;
        self.check_name(&name)?;
        self.remember(&request.token, &name);
        Ok(Submission {
            provider_job_id: name,
            finished: operation.done.then(|| operation.status()),
        })
    }

    /// Google cannot be asked for an operation by anything of ours: operation names are
    /// Google's, `predictLongRunning` takes no client-chosen id or idempotency key, and an
    /// operation does not echo its request. So this finds only operations this process
    /// started and got the name of (kept for an hour, by job token), e.g. when recording the
    /// name failed. A submit whose answer never arrived (a timeout, a dropped connection) is
    /// `ProviderError::Uncertain`, and since `reconciles` is false the engine fails the job
    /// (`submission_unknown`) rather than submit again. Left open: a process that died after
    /// Google accepted the request and before the name was recorded; its retry submits again.
    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        Ok(started.get(&request.token).map(|(name, _)| Submission {
            provider_job_id: name.clone(),
            finished: None,
        }))
    }

    async fn status(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        let key = self.key(key)?;
        Ok(self.operation(provider_job_id, key).await?.status())
    }

    /// Google's long-running operations' `:cancel` (best effort: whether a Veo operation
    /// stops is Google's call; the engine ignores its late answer either way).
    async fn cancel(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<(), ProviderError> {
        self.check_name(provider_job_id)?;
        let key = self.key(key)?;
        let url = match self.settings.api {
            GoogleApi::Gemini { .. } => format!("{}/{provider_job_id}:cancel", self.api_base()),
            GoogleApi::Vertex(_) => format!("{}/v1/{provider_job_id}:cancel", self.api_base()),
        };
        let http = self.http.inner();
        self.call(key, "google cancel", || http.post(&url).json(&json!({})))
            .await
            .map(|_| ())
    }

    async fn download(&self, output_url: &str, key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        let fetched = if output_url.starts_with("data:") {
            self.http.download(output_url, HeaderMap::new()).await
        } else if let Some(path) = output_url.strip_prefix("gs://") {
            let GoogleApi::Vertex(v) = &self.settings.api else {
                return Err(ProviderError::Fatal(format!("unexpected Veo output {output_url}")));
            };
            let (bucket, object) = path
                .split_once('/')
                .ok_or_else(|| ProviderError::Fatal(format!("not a GCS object: {output_url}")))?;
            let url = format!(
                "{}/storage/v1/b/{}/o/{}?alt=media",
                v.storage_base.trim_end_matches('/'),
                percent_encode(bucket),
                percent_encode(object)
            );
            let headers = self.auth(self.key(key)?, false).await?;
            self.http.download(&url, headers).await
        } else {
            // The Gemini API serves its files by a redirect: the key goes to the API's own
            // origin only (`fetch` drops it at the redirect).
            let ours = match (reqwest::Url::parse(output_url), reqwest::Url::parse(self.api_base())) {
                (Ok(url), Ok(base)) => url.origin() == base.origin(),
                _ => false,
            };
            let headers = if ours {
                self.auth(self.key(key)?, false).await?
            } else {
                HeaderMap::new()
            };
            self.http.download(output_url, headers).await
        };
        fetched.map_err(|e| match e {
            ProviderError::Fatal(m) => ProviderError::Fatal(format!("cannot fetch the Veo output: {m}")),
            other => other,
        })
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        Err(CallbackError::Unauthorized(
            "Google Veo does not call back: its jobs are polled".into(),
        ))
    }
}

/// A long-running operation as both APIs answer it.
#[derive(Debug, Deserialize)]
struct GoogleOperation {
    name: Option<String>,
    /// Left out until it is true.
    #[serde(default)]
    done: bool,
    error: Option<OperationError>,
    response: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct OperationError {
    code: Option<i64>,
    message: Option<String>,
}

impl GoogleOperation {
    fn read(answer: Value) -> Result<GoogleOperation, ProviderError> {
        serde_json::from_value(answer).map_err(|e| ProviderError::Retryable {
            message: format!("google: unreadable operation: {e}"),
            retry_after: None,
        })
    }

    /// Gemini: `response.generateVideoResponse.generatedSamples[].video.uri`; Vertex:
    /// `response.videos[]` with `gcsUri` or `bytesBase64Encoded`. Done without a video: the
    /// safety filters' reasons (`raiMediaFilteredReasons`).
    fn status(&self) -> ProviderStatus {
        if !self.done {
            return ProviderStatus::Pending;
        }
        if let Some(error) = &self.error {
            let message = error.message.as_deref().unwrap_or("no message");
            let code = error.code.map(|c| format!(" (code {c})")).unwrap_or_default();
            return ProviderStatus::Failed {
                message: format!("Veo failed: {message}{code}"),
            };
        }
        let response = self.response.as_ref().unwrap_or(&Value::Null);
        let result = response.get("generateVideoResponse").unwrap_or(response);
        let videos: Vec<&Value> = match result["generatedSamples"].as_array() {
            Some(samples) => samples.iter().map(|s| &s["video"]).collect(),
            None => result["videos"]
                .as_array()
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
        };
        if let Some((output_url, content_type)) = videos.into_iter().find_map(video_output) {
            return ProviderStatus::Succeeded {
                output_url,
                content_type: Some(content_type),
            };
        }
        let reasons: Vec<&str> = result["raiMediaFilteredReasons"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let filtered = result["raiMediaFilteredCount"].as_u64().unwrap_or(0);
        let message = if !reasons.is_empty() {
            format!("Veo's safety filters blocked the video: {}", reasons.join("; "))
        } else if filtered > 0 {
            "Veo's safety filters blocked the video".to_string()
        } else {
            "Veo finished without a video".to_string()
        };
        ProviderStatus::Failed { message }
    }
}

/// The wait a 429 names in its body when it sends no `Retry-After`: Google's
/// `google.rpc.RetryInfo` detail (`{"retryDelay": "34s"}`).
fn retry_delay(body: &Value) -> Option<Duration> {
    body["error"]["details"].as_array()?.iter().find_map(|detail| {
        let seconds: f64 = detail["retryDelay"].as_str()?.strip_suffix('s')?.parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
    })
}

/// A video of an answer as an output URL (inline bytes as a `data:` URI) and its type.
fn video_output(video: &Value) -> Option<(String, String)> {
    let mime = video["mimeType"]
        .as_str()
        .or(video["encoding"].as_str())
        .unwrap_or("video/mp4")
        .to_string();
    if let Some(uri) = video["uri"].as_str().or(video["gcsUri"].as_str()) {
        return Some((uri.to_string(), mime));
    }
    let data = video["bytesBase64Encoded"]
        .as_str()
        .or(video["encodedVideo"].as_str())?;
    Some((format!("data:{mime};base64,{data}"), mime))
}

/// The image types Veo takes, by their first bytes.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A path segment for the GCS JSON API (object names keep their `/` as `%2F`).
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The parts of a service account key (`"type": "service_account"` JSON) a token needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    project_id: String,
}

impl ServiceAccount {
    fn parse(key: &Secret) -> Result<ServiceAccount, ProviderError> {
        // serde's message is left out: it may quote the key.
        serde_json::from_str(key.expose()).map_err(|_| {
            ProviderError::Fatal(format!(
                "Vertex AI needs a service account key (its JSON, with client_email, private_key and project_id) as the {NAME} key"
            ))
        })
    }

    /// The signed JWT (RS256) that Google's token endpoint trades for an access token.
    fn assertion(&self, now: u64) -> Result<String, ProviderError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": TOKEN_AUDIENCE,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let unusable = || ProviderError::Fatal("the service account's private_key is not a PKCS#8 RSA key".into());
        let der: String = self
            .private_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .map_err(|_| unusable())?;
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| unusable())?;
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| unusable())?;
        Ok(format!("{signing_input}.{}", base64url(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::{AspectRatio, MediaRef};

    fn status(answer: Value) -> ProviderStatus {
        GoogleOperation::read(answer).unwrap().status()
    }

    #[test]
    fn operations_of_both_apis_read_as_statuses() {
        assert_eq!(
            status(json!({"name": "models/m/operations/1"})),
            ProviderStatus::Pending
        );
        let gemini = json!({"name": "models/m/operations/1", "done": true, "response": {
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://g/v1beta/files/abc:download?alt=media"}}]}}});
        assert_eq!(
            status(gemini),
            ProviderStatus::Succeeded {
                output_url: "https://g/v1beta/files/abc:download?alt=media".into(),
                content_type: Some("video/mp4".into())
            }
        );
        let inline =
            json!({"done": true, "response": {"videos": [{"bytesBase64Encoded": "AAAA", "mimeType": "video/mp4"}]}});
        assert_eq!(
            status(inline),
            ProviderStatus::Succeeded {
                output_url: "data:video/mp4;base64,AAAA".into(),
                content_type: Some("video/mp4".into())
            }
        );
        let gcs = json!({"done": true, "response": {"videos": [{"gcsUri": "gs://b/o/sample_0.mp4", "mimeType": "video/mp4"}]}});
        assert!(
            matches!(status(gcs), ProviderStatus::Succeeded { output_url, .. } if output_url == "gs://b/o/sample_0.mp4")
        );
        let filtered = json!({"done": true, "response": {"generateVideoResponse": {
            "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["The prompt could not be submitted."]}}});
        assert_eq!(
            status(filtered),
            ProviderStatus::Failed {
                message: "Veo's safety filters blocked the video: The prompt could not be submitted.".into()
            }
        );
        let failed = json!({"done": true, "error": {"code": 3, "message": "Unsupported aspect ratio"}});
        assert_eq!(
            status(failed),
            ProviderStatus::Failed {
                message: "Veo failed: Unsupported aspect ratio (code 3)".into()
            }
        );
        assert!(
            matches!(status(json!({"done": true, "response": {}})), ProviderStatus::Failed { message } if message.contains("without a video"))
        );
    }

    fn params(model: &str) -> ProviderParams {
        ProviderParams {
            duration: Some(8.0),
            resolution: Some("720p".into()),
            aspect_ratio: Some(AspectRatio { w: 9, h: 16 }),
            ..ProviderParams::prompt(NAME, model, "a fox")
        }
    }

    #[tokio::test]
    async fn unified_params_become_an_instance_and_parameters() {
        let provider = GoogleProvider::new(GoogleSettings::gemini(None)).unwrap();
        let mut p = params("veo-3.1-generate-preview");
        p.options.insert("negativePrompt".into(), json!("blur"));
        p.inputs.insert(
            "image".into(),
            MediaRef::Url("data:image/png;base64,iVBORw0KGgoAAAA=".into()),
        );
        let input = provider.model(&p.model_id).unwrap().input(&p).unwrap();
        let body = provider.request_body(input).await.unwrap();
        assert_eq!(
            body,
            json!({"instances": [{"prompt": "a fox", "image": {"bytesBase64Encoded": "iVBORw0KGgoAAAA=", "mimeType": "image/png"}}],
                "parameters": {"aspectRatio": "9:16", "durationSeconds": 8, "resolution": "720p", "negativePrompt": "blur", "sampleCount": 1}})
        );
    }

    #[tokio::test]
    async fn images_that_are_not_images_or_too_big_are_refused() {
        let mut settings = GoogleSettings::gemini(None);
        settings.max_image_bytes = 8;
        let provider = GoogleProvider::new(settings).unwrap();
        let too_big = provider
            .inline_image("image", "data:image/png;base64,iVBORw0KGgoAAAAAAAA=")
            .await;
        assert!(matches!(too_big, Err(ProviderError::Fatal(m)) if m.contains("larger than")));
        let text = provider.inline_image("image", "data:text/plain,hello").await;
        assert!(matches!(text, Err(ProviderError::Fatal(m)) if m.contains("not a PNG, JPEG or WebP")));
    }

    #[test]
    fn every_model_is_well_formed() {
        registry::assert_well_formed(GEMINI_MODELS);
        registry::assert_well_formed(VERTEX_MODELS);
    }

    #[test]
    fn params_are_checked_against_each_apis_schema() {
        let gemini = GoogleProvider::new(GoogleSettings::gemini(None)).unwrap();
        let vertex = GoogleProvider::new(GoogleSettings::vertex("us-central1", None)).unwrap();
        assert_eq!(gemini.check_params(&params("veo-3.1-generate-preview")), vec![]);
        let mut p = params("veo-3.1-generate-preview");
        p.duration = Some(5.0);
        p.seed = Some(7);
        p.options.insert("generateAudio".into(), json!(true));
        let fields: Vec<String> = gemini.check_params(&p).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["seed", "durationSeconds", "generateAudio"]);
        let mut p = params("veo-3.1-generate-001");
        p.seed = Some(7);
        p.options.insert("generateAudio".into(), json!(true));
        assert_eq!(vertex.check_params(&p), vec![]);
        p.prompt = None;
        assert_eq!(vertex.check_params(&p)[0].0, "prompt");
        assert!(gemini.models().iter().all(|m| m.completion == Completion::Polling));
    }

    #[test]
    fn a_429_without_retry_after_waits_as_its_retry_info_says() {
        let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.5s"}]}});
        assert_eq!(retry_delay(&body), Some(Duration::from_millis(34_500)));
        assert_eq!(retry_delay(&json!({"error": {"code": 429}})), None);
    }

    #[test]
    fn only_operation_names_reach_urls() {
        let gemini = GoogleProvider::new(GoogleSettings::gemini(None)).unwrap();
        assert!(gemini
            .check_name("models/veo-3.1-generate-preview/operations/abc123")
            .is_ok());
        for bad in [
            "models/m/operations/../../files",
            "https://evil/models/x/operations/1",
            "models/m/operations/1?x",
            "projects/p/locations/l/publishers/google/models/m/operations/1",
        ] {
            assert!(gemini.check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(percent_encode("out/op 1/sample_0.mp4"), "out%2Fop%201%2Fsample_0.mp4");
    }

    #[test]
    fn settings_never_show_keys() {
        let settings = GoogleSettings::vertex("us-central1", Some(Secret::new("{\"private_key\": \"SECRET\"}")));
        assert!(!format!("{settings:?}").contains("SECRET"));
    }
}
