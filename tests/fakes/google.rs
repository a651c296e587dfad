//! A fake Google Veo on loopback, speaking both APIs of shared/reference/providers.md:
//! - the Gemini API under `/v1beta` (`x-goog-api-key`): `models/{m}:predictLongRunning`,
//!   `GET` of the operation, `:cancel`, and generated files whose `:download` answers a
//!   redirect to the bytes on another origin (`localhost`), which needs no key, as Google's
//!   storage URLs do;
//! - Vertex AI under `/v1` (OAuth bearer tokens): `:predictLongRunning`,
//!   `:fetchPredictOperation` (a POST), `:cancel`, videos inline (base64) or written to a
//!   `gs://` prefix and served by the GCS JSON API (`/storage/v1/b/{b}/o/{o}?alt=media`);
//! - the OAuth token endpoint (`POST /token`), which checks the service account's RS256 JWT
//!   against the public key the test registered.
//!
//! Operations finish after `run_time` (Veo's minutes, compressed), succeed or end as the
//! knobs say (safety-filtered, failed); outputs expire `output_ttl` after that. 429 and 503
//! bursts are injected on the API calls. Everything received is recorded.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

/// The project service accounts made by `service_account` belong to.
pub const PROJECT: &str = "reelay-test";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug, Clone)]
pub enum Outcome {
    Succeed,
    /// Done without a video: `raiMediaFilteredCount` 1 and this reason.
    Filtered(String),
    /// Done with `error {code, message}`.
    Error(i64, String),
}

#[derive(Debug, Clone)]
pub struct Knobs {
    /// How long an operation runs before it is done.
    pub run_time: Duration,
    /// The next this many API calls answer 429 `RESOURCE_EXHAUSTED`…
    pub rate_limited: u32,
    /// …with this `Retry-After` (seconds), if any…
    pub retry_after: Option<u64>,
    /// …and this `retryDelay` (seconds) in a `google.rpc.RetryInfo` detail, if any.
    pub retry_delay: Option<u64>,
    /// Then the next this many answer 503 `UNAVAILABLE`.
    pub unavailable: u32,
    /// How long a finished operation's outputs can be downloaded.
    pub output_ttl: Duration,
    /// The lifetime of issued access tokens, in seconds.
    pub token_lifetime: u64,
    /// An operation whose prompt contains the word ends this way; others succeed.
    pub outcomes: Vec<(String, Outcome)>,
    /// An operation whose prompt contains the word runs this long instead of `run_time`.
    pub run_times: Vec<(String, Duration)>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            run_time: Duration::from_millis(300),
            rate_limited: 0,
            retry_after: None,
            retry_delay: None,
            unavailable: 0,
            output_ttl: Duration::from_secs(600),
            token_lifetime: 3600,
            outcomes: Vec::new(),
            run_times: Vec::new(),
        }
    }
}

/// A request the fake received, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub status: u16,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct FakeOperation {
    pub name: String,
    pub vertex: bool,
    pub model: String,
    /// The `predictLongRunning` body.
    pub request: Value,
    pub cancelled: bool,
    outcome: Outcome,
    created: Instant,
    run_time: Duration,
    output_ttl: Duration,
}

impl FakeOperation {
    fn id(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or_default()
    }
    fn finished(&self, now: Instant) -> bool {
        self.cancelled || now >= self.created + self.run_time
    }
    /// Whether its video can be downloaded now.
    fn output_available(&self, now: Instant) -> bool {
        let finished_at = self.created + self.run_time;
        !self.cancelled
            && matches!(self.outcome, Outcome::Succeed)
            && now >= finished_at
            && now < finished_at + self.output_ttl
    }
    fn gcs_uri(&self) -> Option<String> {
        let prefix = self.request["parameters"]["storageUri"].as_str()?;
        Some(format!("{}/{}/sample_0.mp4", prefix.trim_end_matches('/'), self.id()))
    }
}

struct Shared {
    base: String,
    knobs: Mutex<Knobs>,
    api_keys: Mutex<Vec<String>>,
    /// Service accounts: email → public key (DER RSAPublicKey).
    accounts: Mutex<HashMap<String, Vec<u8>>>,
    /// Access tokens issued: token → expiry.
    tokens: Mutex<HashMap<String, Instant>>,
    operations: Mutex<Vec<FakeOperation>>,
    seen: Mutex<Vec<Seen>>,
    assets: Mutex<HashMap<String, Bytes>>,
    video: Bytes,
}

pub struct FakeGoogle {
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A loopback address nothing listens on yet (for a provider that is "down" until `start_on`).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The MP4 every operation produces: a real, probe-able 1 s H.264 video, rendered once.
pub async fn video() -> Bytes {
    static VIDEO: tokio::sync::OnceCell<Bytes> = tokio::sync::OnceCell::const_new();
    VIDEO
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("veo.mp4");
            reelay_media::render_video("veo", 1.0, 320, 180, &out).await.unwrap();
            Bytes::from(std::fs::read(out).unwrap())
        })
        .await
        .clone()
}

/// A small real PNG (an input image).
pub async fn png() -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("still.png");
    reelay_media::render_image("still", 64, 36, &out).await.unwrap();
    Bytes::from(std::fs::read(out).unwrap())
}

impl FakeGoogle {
    pub async fn start() -> FakeGoogle {
        FakeGoogle::start_on(free_addr()).await
    }

    /// Serves on `addr` (from `free_addr`, so a provider can point there before it is up).
    pub async fn start_on(addr: SocketAddr) -> FakeGoogle {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(128).unwrap();
        let base = format!("http://{addr}");
        let shared = Arc::new(Shared {
            base: base.clone(),
            knobs: Mutex::new(Knobs::default()),
            api_keys: Mutex::new(Vec::new()),
            accounts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            operations: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            assets: Mutex::new(HashMap::new()),
            video: video().await,
        });
        let router = Router::new()
            .route("/v1beta/models/{model_action}", post(gemini_model))
            .route(
                "/v1beta/models/{model}/operations/{id}",
                get(gemini_operation).post(gemini_cancel),
            )
            .route("/v1beta/files/{file_action}", get(gemini_file))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{model_action}",
                post(vertex_model),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}/operations/{id}",
                post(vertex_cancel),
            )
            .route("/storage/v1/b/{bucket}/o/{object}", get(gcs_object))
            .route("/token", post(token))
            .route("/blobs/{id}", get(blob))
            .route("/assets/{name}", get(asset))
            .layer(middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeGoogle { base, shared, server }
    }

    /// The Gemini API's base (what `GoogleApi::Gemini { base }` takes).
    pub fn gemini_base(&self) -> String {
        format!("{}/v1beta", self.base)
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.knobs.lock().unwrap());
    }

    /// Accepts this Gemini API key.
    pub fn add_api_key(&self, key: &str) {
        self.shared.api_keys.lock().unwrap().push(key.to_string());
    }

    /// Makes a service account (an RSA key made with the openssl CLI), registers its public
    /// key, and returns its key file (JSON) with `token_uri` pointing here.
    pub fn service_account(&self, email: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("key.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem_path)
            .output()
            .expect("the openssl command makes the test's service account keys");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let pem = std::fs::read_to_string(&pem_path).unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(der).unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        self.shared
            .accounts
            .lock()
            .unwrap()
            .insert(email.to_string(), pair.public().as_ref().to_vec());
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": format!("{:x}", rand::random::<u64>()),
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.base),
        })
        .to_string()
    }

    /// Serves `bytes` at the returned URL (input media).
    pub fn asset(&self, name: &str, bytes: Bytes) -> String {
        self.shared.assets.lock().unwrap().insert(name.to_string(), bytes);
        format!("{}/assets/{name}", self.base)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests whose method is `method` and whose path contains `part`.
    pub fn calls(&self, method: &str, part: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.contains(part))
            .collect()
    }

    pub fn operations(&self) -> Vec<FakeOperation> {
        self.shared.operations.lock().unwrap().clone()
    }

    /// Revokes every access token issued so far (calls with them answer 401).
    pub fn revoke_tokens(&self) {
        self.shared.tokens.lock().unwrap().clear();
    }

    /// Access tokens the token endpoint issued.
    pub fn tokens_issued(&self) -> usize {
        self.calls("POST", "/token").iter().filter(|s| s.status == 200).count()
    }
}

/// Records each request and its answer's status.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let mut seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.clone(),
        status: 0,
        at: Instant::now(),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    seen.status = response.status().as_u16();
    shared.seen.lock().unwrap().push(seen);
    response
}

/// Google's error body: `{"error": {code, message, status}}`.
fn google_error(code: u16, status: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "status": status}});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn not_found() -> Response {
    google_error(404, "NOT_FOUND", "Requested entity was not found.")
}

impl Shared {
    /// The next injected failure, if a burst is on.
    fn injected(&self) -> Option<Response> {
        let mut knobs = self.knobs.lock().unwrap();
        if knobs.rate_limited > 0 {
            knobs.rate_limited -= 1;
            let mut body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                "message": "Quota exceeded for online_prediction_requests_per_base_model. Please try again later."}});
            if let Some(seconds) = knobs.retry_delay {
                body["error"]["details"] =
                    json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{seconds}s")}]);
            }
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            if let Some(seconds) = knobs.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
            }
            return Some(response);
        }
        if knobs.unavailable > 0 {
            knobs.unavailable -= 1;
            return Some(google_error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ));
        }
        None
    }

    /// The refusal of a call without a valid API key.
    fn gemini_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
        match key {
            Some(key) if self.api_keys.lock().unwrap().iter().any(|k| k == key) => None,
            _ => Some(google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
            )),
        }
    }

    /// The refusal of a call without a valid access token.
    fn vertex_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let valid = token.is_some_and(|t| {
            self.tokens
                .lock()
                .unwrap()
                .get(t)
                .is_some_and(|expiry| Instant::now() < *expiry)
        });
        (!valid).then(|| {
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            )
        })
    }

    /// Checks a `predictLongRunning` body as Veo 3.1 would, and starts its operation.
    fn create(&self, vertex: bool, prefix: &str, model: &str, body: Value) -> Response {
        if let Err(message) = check_request(vertex, &body) {
            return google_error(400, "INVALID_ARGUMENT", &message);
        }
        let prompt = body["instances"][0]["prompt"].as_str().unwrap_or_default().to_string();
        let knobs = self.knobs.lock().unwrap().clone();
        let by_word = |word: &String| prompt.contains(word.as_str());
        let outcome = knobs
            .outcomes
            .iter()
            .find(|(word, _)| by_word(word))
            .map_or(Outcome::Succeed, |(_, o)| o.clone());
        let run_time = knobs
            .run_times
            .iter()
            .find(|(word, _)| by_word(word))
            .map_or(knobs.run_time, |(_, t)| *t);
        let name = format!("{prefix}models/{model}/operations/{:016x}", rand::random::<u64>());
        self.operations.lock().unwrap().push(FakeOperation {
            name: name.clone(),
            vertex,
            model: model.to_string(),
            request: body,
            cancelled: false,
            outcome,
            created: Instant::now(),
            run_time,
            output_ttl: knobs.output_ttl,
        });
        Json(json!({ "name": name })).into_response()
    }

    /// An operation as its API answers it.
    fn view(&self, name: &str) -> Response {
        let operations = self.operations.lock().unwrap();
        let Some(op) = operations.iter().find(|o| o.name == name) else {
            return not_found();
        };
        let now = Instant::now();
        if !op.finished(now) {
            return Json(json!({ "name": op.name })).into_response();
        }
        let mut answer = json!({"name": op.name, "done": true});
        let outcome = if op.cancelled {
            Outcome::Error(1, "Operation was cancelled.".into())
        } else {
            op.outcome.clone()
        };
        let result = match outcome {
            Outcome::Error(code, message) => {
                answer["error"] = json!({"code": code, "message": message});
                return Json(answer).into_response();
            }
            Outcome::Filtered(reason) => json!({"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [reason]}),
            Outcome::Succeed if !op.vertex => json!({"generatedSamples": [{"video": {
                "uri": format!("{}/v1beta/files/{}:download?alt=media", self.base, op.id())
            }}]}),
            Outcome::Succeed => match op.gcs_uri() {
                Some(uri) => json!({"videos": [{"gcsUri": uri, "mimeType": "video/mp4"}]}),
                None => json!({"videos": [{
                    "bytesBase64Encoded": base64::engine::general_purpose::STANDARD.encode(&self.video),
                    "mimeType": "video/mp4",
                }]}),
            },
        };
        answer["response"] = if op.vertex {
            let mut r = result;
            r["@type"] = json!("type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse");
            r
        } else {
            json!({
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": result,
            })
        };
        Json(answer).into_response()
    }

    fn cancel(&self, name: &str) -> Response {
        let mut operations = self.operations.lock().unwrap();
        let Some(op) = operations.iter_mut().find(|o| o.name == name) else {
            return not_found();
        };
        if !op.finished(Instant::now()) {
            op.cancelled = true;
        }
        Json(json!({})).into_response()
    }

    fn video_of(&self, find: impl Fn(&FakeOperation) -> bool) -> Response {
        let available = self
            .operations
            .lock()
            .unwrap()
            .iter()
            .any(|o| find(o) && o.output_available(Instant::now()));
        if !available {
            return not_found();
        }
        ([(header::CONTENT_TYPE, "video/mp4")], self.video.clone()).into_response()
    }
}

/// The request checks Veo 3.1 makes (on the fields the tests send).
fn check_request(vertex: bool, body: &Value) -> Result<(), String> {
    let instances = body["instances"].as_array().ok_or("`instances` is required")?;
    let [instance] = instances.as_slice() else {
        return Err("exactly one instance is supported".into());
    };
    for field in ["image", "lastFrame"] {
        if let Some(image) = instance.get(field) {
            let bytes = image["bytesBase64Encoded"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .ok_or(format!("`{field}.bytesBase64Encoded` must be base64"))?;
            if !["image/png", "image/jpeg", "image/webp"].contains(&image["mimeType"].as_str().unwrap_or_default())
                || bytes.is_empty()
            {
                return Err(format!("`{field}.mimeType` is not a supported image type"));
            }
        }
    }
    if instance.get("prompt").is_none() && instance.get("image").is_none() {
        return Err("a prompt or an image is required".into());
    }
    let p = &body["parameters"];
    let allowed = |field: &str, values: &[Value]| match p.get(field) {
        Some(v) if !values.contains(v) => Err(format!("`{field}` {v} is not supported by this model")),
        _ => Ok(()),
    };
    allowed("aspectRatio", &[json!("16:9"), json!("9:16")])?;
    allowed("durationSeconds", &[json!(4), json!(6), json!(8)])?;
    allowed("resolution", &[json!("720p"), json!("1080p")])?;
    allowed("sampleCount", &[json!(1), json!(2), json!(3), json!(4)])?;
    if !vertex {
        for field in ["seed", "generateAudio", "storageUri"] {
            if p.get(field).is_some() {
                return Err(format!("`{field}` isn't supported by the Gemini API"));
            }
        }
    }
    Ok(())
}

/// `{name}:{action}` (Google's custom methods) split at the colon.
fn action(segment: &str) -> (&str, &str) {
    segment.split_once(':').unwrap_or((segment, ""))
}

async fn gemini_model(
    State(s): State<Arc<Shared>>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = s.gemini_refusal(&headers) {
        return refused;
    }
    if let Some(injected) = s.injected() {
        return injected;
    }
    match action(&model_action) {
        (model, "predictLongRunning") => match serde_json::from_slice(&body) {
            Ok(body) => s.create(false, "", model, body),
            Err(e) => google_error(400, "INVALID_ARGUMENT", &format!("Invalid JSON payload received. {e}")),
        },
        _ => not_found(),
    }
}

async fn gemini_operation(
    State(s): State<Arc<Shared>>,
    Path((model, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = s.gemini_refusal(&headers) {
        return refused;
    }
    if let Some(injected) = s.injected() {
        return injected;
    }
    s.view(&format!("models/{model}/operations/{id}"))
}

async fn gemini_cancel(
    State(s): State<Arc<Shared>>,
    Path((model, id_action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = s.gemini_refusal(&headers) {
        return refused;
    }
    match action(&id_action) {
        (id, "cancel") => s.cancel(&format!("models/{model}/operations/{id}")),
        _ => not_found(),
    }
}

/// A generated file: the key is checked here, then a redirect to the bytes (which need none).
async fn gemini_file(
    State(s): State<Arc<Shared>>,
    Path(file_action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = s.gemini_refusal(&headers) {
        return refused;
    }
    let (id, "download") = action(&file_action) else {
        return not_found();
    };
    if query.get("alt").map(String::as_str) != Some("media") {
        return google_error(400, "INVALID_ARGUMENT", "alt=media is required");
    }
    let exists = s
        .operations
        .lock()
        .unwrap()
        .iter()
        .any(|o| !o.vertex && o.id() == id && o.output_available(Instant::now()));
    if !exists {
        return not_found();
    }
    // Another origin, as Google's storage is: a client must not take the key along.
    let location = format!("{}/blobs/{id}", s.base.replace("127.0.0.1", "localhost"));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn blob(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    s.video_of(|o| !o.vertex && o.id() == id)
}

async fn vertex_model(
    State(s): State<Arc<Shared>>,
    Path((project, location, model_action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = s.vertex_refusal(&headers) {
        return refused;
    }
    if let Some(injected) = s.injected() {
        return injected;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let prefix = format!("projects/{project}/locations/{location}/publishers/google/");
    match action(&model_action) {
        (model, "predictLongRunning") => s.create(true, &prefix, model, body),
        (model, "fetchPredictOperation") => {
            let name = body["operationName"].as_str().unwrap_or_default();
            if !name.starts_with(&format!("{prefix}models/{model}/operations/")) {
                return google_error(400, "INVALID_ARGUMENT", "operationName does not belong to this model");
            }
            s.view(name)
        }
        _ => not_found(),
    }
}

async fn vertex_cancel(
    State(s): State<Arc<Shared>>,
    Path((project, location, model, id_action)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = s.vertex_refusal(&headers) {
        return refused;
    }
    match action(&id_action) {
        (id, "cancel") => s.cancel(&format!(
            "projects/{project}/locations/{location}/publishers/google/models/{model}/operations/{id}"
        )),
        _ => not_found(),
    }
}

/// The GCS JSON API's media download (the object name arrives percent-encoded, one segment).
async fn gcs_object(
    State(s): State<Arc<Shared>>,
    Path((bucket, object)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = s.vertex_refusal(&headers) {
        return refused;
    }
    if query.get("alt").map(String::as_str) != Some("media") {
        return google_error(400, "INVALID_ARGUMENT", "only alt=media is served here");
    }
    let uri = format!("gs://{bucket}/{object}");
    let response = s.video_of(|o| o.gcs_uri().as_deref() == Some(uri.as_str()));
    if response.status() == StatusCode::NOT_FOUND {
        return google_error(404, "NOT_FOUND", &format!("No such object: {bucket}/{object}"));
    }
    response
}

async fn asset(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match s.assets.lock().unwrap().get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// OAuth's JWT-bearer grant: the assertion must be signed (RS256) by a registered service
/// account, for this endpoint, and short-lived.
async fn token(State(s): State<Arc<Shared>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let refuse = |error: &str, description: &str| {
        let body = json!({"error": error, "error_description": description});
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return refuse("unsupported_grant_type", "Invalid grant_type.");
    }
    let assertion = form.get("assertion").map(String::as_str).unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok();
    let ([header, claims, signature], true) = (parts.as_slice(), parts.len() == 3) else {
        return refuse("invalid_grant", "Invalid JWT.");
    };
    let (Some(header_json), Some(claims_json), Some(signature)) = (decode(header), decode(claims), decode(signature))
    else {
        return refuse("invalid_grant", "Invalid JWT.");
    };
    let header_json: Value = serde_json::from_slice(&header_json).unwrap_or_default();
    let claims_json: Value = serde_json::from_slice(&claims_json).unwrap_or_default();
    if header_json["alg"] != "RS256" {
        return refuse("invalid_grant", "Invalid JWT: the algorithm must be RS256.");
    }
    let email = claims_json["iss"].as_str().unwrap_or_default();
    let Some(public_key) = s.accounts.lock().unwrap().get(email).cloned() else {
        return refuse("invalid_grant", "Invalid grant: account not found");
    };
    let signed = format!("{header}.{claims}");
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public_key);
    if key.verify(signed.as_bytes(), &signature).is_err() {
        return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (iat, exp) = (
        claims_json["iat"].as_i64().unwrap_or(0),
        claims_json["exp"].as_i64().unwrap_or(0),
    );
    let timely = iat <= now + 60 && exp > now && exp - iat <= 3600;
    // Google's token JWTs name this audience, whatever URL they are posted to.
    if claims_json["aud"] != "https://oauth2.googleapis.com/token" || !timely {
        return refuse(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if !claims_json["scope"]
        .as_str()
        .unwrap_or_default()
        .contains("cloud-platform")
    {
        return refuse("invalid_scope", "Invalid OAuth scope.");
    }
    let lifetime = s.knobs.lock().unwrap().token_lifetime;
    let access_token = format!("ya29.fake-{:032x}", rand::random::<u128>());
    s.tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), Instant::now() + Duration::from_secs(lifetime));
    Json(json!({"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"})).into_response()
}
