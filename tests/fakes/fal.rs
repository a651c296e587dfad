//! A fake of fal's queue API on loopback, speaking its protocol (shared/reference/providers.md):
//! submit (`POST /{model_id}?fal_webhook=`), status (202 while `IN_QUEUE`/`IN_PROGRESS`, 200
//! once `COMPLETED`), result (the output, or the model's 422), cancel (`PUT …/cancel`), all
//! under `Authorization: Key …` and per account; webhooks signed with its own Ed25519 key,
//! retried on failure; the key as a JWKS; real media outputs that expire with their result.
//! Time is compressed: the knobs say how long each phase lasts.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The user id the fake signs as.
pub const USER_ID: &str = "fake-fal-user";

#[derive(Debug, Clone)]
pub struct Knobs {
    /// Keys that are accounts here (`Authorization: Key <key>`).
    pub keys: Vec<String>,
    /// How long a request waits `IN_QUEUE`, then runs `IN_PROGRESS`.
    pub queue_time: Duration,
    pub run_time: Duration,
    /// How long a result (and its files) is kept after it completes: fal keeps one 1 hour,
    /// one of 10 KB or more about 6 minutes.
    pub result_ttl: Duration,
    pub large_result_ttl: Duration,
    /// The next this many submits answer 429 with `Retry-After: retry_after_secs`.
    pub submit_429s: u32,
    pub retry_after_secs: u64,
    /// The next this many submits, or status/result reads, answer 503.
    pub submit_503s: u32,
    pub read_503s: u32,
    /// The next this many submits are queued, but answered 504 (the answer is lost).
    pub lost_submit_answers: u32,
    /// Webhooks are never sent (lost).
    pub drop_webhooks: bool,
    /// Attempts at a webhook and the wait between them (fal: 10 over 2 hours).
    pub webhook_attempts: u32,
    pub webhook_retry_delay: Duration,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            keys: vec!["cfg-key".into(), "client-key".into()],
            queue_time: Duration::from_millis(100),
            run_time: Duration::from_millis(300),
            // fal's 1 hour and 6 minutes, at 1/600.
            result_ttl: Duration::from_secs(6),
            large_result_ttl: Duration::from_millis(600),
            submit_429s: 0,
            retry_after_secs: 1,
            submit_503s: 0,
            read_503s: 0,
            lost_submit_answers: 0,
            drop_webhooks: false,
            webhook_attempts: 10,
            webhook_retry_delay: Duration::from_millis(200),
        }
    }
}

/// A request as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub id: String,
    pub model_id: String,
    /// `{owner}/{app}`: where its status, result and cancel live.
    pub app: String,
    pub input: Value,
    pub webhook: Option<String>,
    /// The `Authorization` header it was submitted with: its account.
    pub auth: String,
    pub cancelled: bool,
    submitted: Instant,
    done_at: Instant,
}

/// A call the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub auth: Option<String>,
    pub status: u16,
    pub at: Instant,
}

/// A webhook attempt: what was sent, and the receiver's answer (`None`: no connection).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub request_id: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answer: Option<u16>,
}

struct Shared {
    base: String,
    knobs: Mutex<Knobs>,
    requests: Mutex<HashMap<String, FakeRequest>>,
    calls: Mutex<Vec<Call>>,
    deliveries: Mutex<Vec<Delivery>>,
    signer: Mutex<SigningKey>,
    jwks_fetches: Mutex<usize>,
    video: PathBuf,
    image: PathBuf,
    http: reqwest::Client,
}

pub struct FakeFal {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeFal {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn new_signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// fal's webhook headers for `body`, signed by `key` at `timestamp`.
pub fn signed_headers(key: &SigningKey, request_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let message = format!("{request_id}\n{USER_ID}\n{timestamp}\n{}", hex(&Sha256::digest(body)));
    let signature = key.sign(message.as_bytes());
    vec![
        ("content-type".into(), "application/json".into()),
        ("x-fal-webhook-request-id".into(), request_id.into()),
        ("x-fal-webhook-user-id".into(), USER_ID.into()),
        ("x-fal-webhook-timestamp".into(), timestamp.to_string()),
        ("x-fal-webhook-signature".into(), hex(&signature.to_bytes())),
    ]
}

impl FakeFal {
    pub async fn start() -> FakeFal {
        FakeFal::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address (a port a provider was told about while nothing listened there).
    pub async fn start_on(addr: SocketAddr) -> FakeFal {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("output.mp4");
        let image = dir.path().join("output.png");
        reelay_media::render_video("fal fake", 1.0, 320, 240, &video)
            .await
            .unwrap();
        reelay_media::render_image("fal fake", 64, 64, &image).await.unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            base: url.clone(),
            knobs: Mutex::new(Knobs::default()),
            requests: Mutex::default(),
            calls: Mutex::default(),
            deliveries: Mutex::default(),
            signer: Mutex::new(new_signing_key()),
            jwks_fetches: Mutex::new(0),
            video,
            image,
            http: reqwest::Client::new(),
        });
        let router = axum::Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeFal {
            url,
            shared,
            server,
            _dir: dir,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.url)
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.knobs.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<FakeRequest> {
        let mut all: Vec<FakeRequest> = self.shared.requests.lock().unwrap().values().cloned().collect();
        all.sort_by_key(|r| r.submitted);
        all
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().unwrap().clone()
    }

    pub fn jwks_fetches(&self) -> usize {
        *self.shared.jwks_fetches.lock().unwrap()
    }

    /// A new signing key; the JWKS serves only it from now on.
    pub fn rotate_key(&self) {
        *self.shared.signer.lock().unwrap() = new_signing_key();
    }

    /// Headers the fake would sign `body` with, at `timestamp`.
    pub fn sign(&self, request_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        signed_headers(&self.shared.signer.lock().unwrap(), request_id, timestamp, body)
    }

    /// Waits (up to 20 s) until `check` holds for the fake.
    pub async fn until(&self, what: &str, check: impl Fn(&FakeFal) -> bool) {
        for _ in 0..400 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fal fake never saw: {what}; calls {:#?}", self.calls());
    }
}

/// `{owner}/{app}` of a model id (fal drops the endpoint path for status, result, cancel).
fn app_of(model_id: &str) -> String {
    model_id.split('/').take(2).collect::<Vec<_>>().join("/")
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "detail": message }))).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = route(&shared, &method, uri.path(), &query, auth.as_deref(), &body).await;
    shared.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        auth,
        status: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    auth: Option<&str>,
    body: &[u8],
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Public: the signing keys and the output files (fal's CDN needs no key).
    if *method == Method::GET && path == "/.well-known/jwks.json" {
        *shared.jwks_fetches.lock().unwrap() += 1;
        let public = shared.signer.lock().unwrap().verifying_key().to_bytes();
        // Padded base64url: fal's JWKS may be either way.
        let x = base64::engine::general_purpose::URL_SAFE.encode(public);
        return Json(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig"}]})).into_response();
    }
    if *method == Method::GET && segments.first() == Some(&"files") && segments.len() == 3 {
        return file(shared, segments[1]).await;
    }
    let knobs = shared.knobs.lock().unwrap().clone();
    let known = auth
        .and_then(|a| a.strip_prefix("Key "))
        .is_some_and(|k| knobs.keys.iter().any(|known| known == k));
    if !known {
        return detail(StatusCode::UNAUTHORIZED, "No user found for Key ID and Secret");
    }
    let auth = auth.unwrap_or_default();
    // `{owner}/{app}/requests/{id}[/status|/cancel]`
    if let Some(at) = segments.iter().position(|s| *s == "requests").filter(|at| *at >= 2) {
        let app = segments[..at].join("/");
        let id = segments.get(at + 1).copied().unwrap_or_default();
        let action = segments.get(at + 2).copied();
        return match (method.clone(), action) {
            (Method::GET, Some("status")) => status(shared, &app, id, auth, query),
            (Method::GET, None) => result(shared, &app, id, auth),
            (Method::PUT, Some("cancel")) => cancel(shared, &app, id, auth),
            _ => detail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    if *method == Method::POST {
        return submit(shared, path.trim_start_matches('/'), query, auth, body);
    }
    detail(StatusCode::NOT_FOUND, "not found")
}

fn urls(base: &str, app: &str, id: &str) -> Value {
    let response_url = format!("{base}/{app}/requests/{id}");
    json!({
        "request_id": id,
        "response_url": response_url,
        "status_url": format!("{response_url}/status"),
        "cancel_url": format!("{response_url}/cancel"),
    })
}

fn submit(shared: &Arc<Shared>, model_id: &str, query: &HashMap<String, String>, auth: &str, body: &[u8]) -> Response {
    {
        let mut knobs = shared.knobs.lock().unwrap();
        if knobs.submit_429s > 0 {
            knobs.submit_429s -= 1;
            let mut response = detail(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded the concurrent request limit",
            );
            response
                .headers_mut()
                .insert("retry-after", knobs.retry_after_secs.to_string().parse().unwrap());
            return response;
        }
        if knobs.submit_503s > 0 {
            knobs.submit_503s -= 1;
            return detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable");
        }
    }
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "body is not JSON");
    };
    let knobs = shared.knobs.lock().unwrap().clone();
    let id = uuid_like();
    let app = app_of(model_id);
    let now = Instant::now();
    let request = FakeRequest {
        id: id.clone(),
        model_id: model_id.to_string(),
        app: app.clone(),
        input,
        webhook: query.get("fal_webhook").cloned(),
        auth: auth.to_string(),
        cancelled: false,
        submitted: now,
        done_at: now + knobs.queue_time + knobs.run_time,
    };
    shared.requests.lock().unwrap().insert(id.clone(), request);
    let waiter = shared.clone();
    let webhook_id = id.clone();
    tokio::spawn(async move { finish(waiter, webhook_id).await });
    {
        let mut knobs = shared.knobs.lock().unwrap();
        if knobs.lost_submit_answers > 0 {
            knobs.lost_submit_answers -= 1;
            return detail(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        }
    }
    let mut answer = urls(&shared.base, &app, &id);
    answer["status"] = json!("IN_QUEUE");
    answer["queue_position"] = json!(0);
    if query.contains_key("fal_webhook") {
        answer["gateway_request_id"] = json!(id);
    }
    Json(answer).into_response()
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The request `id` of `app` as the account `auth` sees it (another account's is not found).
fn lookup(shared: &Shared, app: &str, id: &str, auth: &str) -> Option<FakeRequest> {
    shared
        .requests
        .lock()
        .unwrap()
        .get(id)
        .filter(|r| r.app == app && r.auth == auth)
        .cloned()
}

/// A prompt `fail: <why>` makes the model refuse its input (fal answers the model's 422).
fn model_error(request: &FakeRequest) -> Option<Value> {
    let why = request.input["prompt"].as_str()?.strip_prefix("fail: ")?;
    Some(json!({"detail": [{"loc": ["body", "prompt"], "msg": why, "type": "value_error"}]}))
}

/// The request's output, as its model's schema gives it.
fn output(shared: &Shared, request: &FakeRequest) -> Value {
    if request.model_id.contains("flux") {
        json!({
            "images": [{"url": format!("{}/files/{}/output.png", shared.base, request.id),
                "width": 64, "height": 64, "content_type": "image/png"}],
            "seed": 42, "has_nsfw_concepts": [false], "prompt": request.input["prompt"],
        })
    } else {
        let size = std::fs::metadata(&shared.video).map(|m| m.len()).unwrap_or(0);
        json!({"video": {"url": format!("{}/files/{}/output.mp4", shared.base, request.id),
            "content_type": "video/mp4", "file_name": "output.mp4", "file_size": size}})
    }
}

/// Whether the request's result is gone (kept `result_ttl`, or `large_result_ttl` from 10 KB).
fn expired(shared: &Shared, request: &FakeRequest) -> bool {
    let knobs = shared.knobs.lock().unwrap();
    let size = output(shared, request).to_string().len();
    let ttl = if size >= 10_000 {
        knobs.large_result_ttl
    } else {
        knobs.result_ttl
    };
    Instant::now() > request.done_at + ttl
}

fn take_read_503(shared: &Shared) -> bool {
    let mut knobs = shared.knobs.lock().unwrap();
    if knobs.read_503s > 0 {
        knobs.read_503s -= 1;
        return true;
    }
    false
}

fn status(shared: &Arc<Shared>, app: &str, id: &str, auth: &str, query: &HashMap<String, String>) -> Response {
    if take_read_503(shared) {
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable");
    }
    let Some(request) = lookup(shared, app, id, auth) else {
        return detail(StatusCode::NOT_FOUND, "Request not found");
    };
    let now = Instant::now();
    let knobs = shared.knobs.lock().unwrap().clone();
    let logs = if query.get("logs").map(String::as_str) == Some("1") {
        json!([{"message": "working", "level": "INFO"}])
    } else {
        Value::Null
    };
    let mut answer = urls(&shared.base, app, id);
    if now < request.done_at {
        if now < request.submitted + knobs.queue_time {
            answer["status"] = json!("IN_QUEUE");
            answer["queue_position"] = json!(0);
        } else {
            answer["status"] = json!("IN_PROGRESS");
            answer["logs"] = logs;
        }
        return (StatusCode::ACCEPTED, Json(answer)).into_response();
    }
    answer["status"] = json!("COMPLETED");
    answer["logs"] = logs;
    answer["metrics"] = json!({"inference_time": knobs.run_time.as_secs_f64()});
    if request.cancelled {
        answer["error"] = json!("Request was cancelled");
        answer["error_type"] = json!("request_cancelled");
    } else if model_error(&request).is_some() {
        answer["error"] = json!("Invalid status code: 422");
        answer["error_type"] = json!("validation_error");
    }
    (StatusCode::OK, Json(answer)).into_response()
}

fn result(shared: &Arc<Shared>, app: &str, id: &str, auth: &str) -> Response {
    if take_read_503(shared) {
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable");
    }
    let Some(request) = lookup(shared, app, id, auth) else {
        return detail(StatusCode::NOT_FOUND, "Request not found");
    };
    if Instant::now() < request.done_at {
        return detail(StatusCode::BAD_REQUEST, "Request is still in progress");
    }
    if expired(shared, &request) {
        return detail(StatusCode::NOT_FOUND, "Request not found");
    }
    if request.cancelled {
        return detail(StatusCode::BAD_REQUEST, "Request was cancelled");
    }
    match model_error(&request) {
        Some(error) => (StatusCode::UNPROCESSABLE_ENTITY, Json(error)).into_response(),
        None => Json(output(shared, &request)).into_response(),
    }
}

fn cancel(shared: &Arc<Shared>, app: &str, id: &str, auth: &str) -> Response {
    if lookup(shared, app, id, auth).is_none() {
        return (StatusCode::NOT_FOUND, Json(json!({"status": "NOT_FOUND"}))).into_response();
    }
    let mut requests = shared.requests.lock().unwrap();
    let Some(request) = requests.get_mut(id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"status": "NOT_FOUND"}))).into_response();
    };
    let now = Instant::now();
    if now >= request.done_at {
        return (StatusCode::BAD_REQUEST, Json(json!({"status": "ALREADY_COMPLETED"}))).into_response();
    }
    request.cancelled = true;
    request.done_at = now;
    (StatusCode::ACCEPTED, Json(json!({"status": "CANCELLATION_REQUESTED"}))).into_response()
}

/// An output file, while its result is kept.
async fn file(shared: &Arc<Shared>, id: &str) -> Response {
    let Some(request) = shared.requests.lock().unwrap().get(id).cloned() else {
        return detail(StatusCode::NOT_FOUND, "File not found");
    };
    if request.cancelled || model_error(&request).is_some() || expired(shared, &request) {
        return detail(StatusCode::NOT_FOUND, "File not found");
    }
    let (path, content_type) = if request.model_id.contains("flux") {
        (&shared.image, "image/png")
    } else {
        (&shared.video, "video/mp4")
    };
    let bytes = tokio::fs::read(path).await.unwrap();
    ([("content-type", content_type)], bytes).into_response()
}

/// Waits until the request completes (or is cancelled), then calls its webhook, retrying while
/// the receiver fails.
async fn finish(shared: Arc<Shared>, id: String) {
    loop {
        let Some(done_at) = shared.requests.lock().unwrap().get(&id).map(|r| r.done_at) else {
            return;
        };
        let now = Instant::now();
        if now >= done_at {
            break;
        }
        // `done_at` moves earlier on a cancel: look again soon.
        tokio::time::sleep((done_at - now).min(Duration::from_millis(50))).await;
    }
    let Some(request) = shared.requests.lock().unwrap().get(&id).cloned() else {
        return;
    };
    let knobs = shared.knobs.lock().unwrap().clone();
    let Some(url) = request.webhook.clone().filter(|_| !knobs.drop_webhooks) else {
        return;
    };
    let (status, payload, error) = match (request.cancelled, model_error(&request)) {
        (true, _) => (
            "ERROR",
            json!({"detail": "Request was cancelled"}),
            json!("Request was cancelled"),
        ),
        (false, Some(e)) => ("ERROR", e, json!("Invalid status code: 422")),
        (false, None) => ("OK", output(&shared, &request), Value::Null),
    };
    let body = serde_json::to_vec(&json!({
        "request_id": id, "gateway_request_id": id, "status": status,
        "payload": payload, "error": error, "payload_error": null,
    }))
    .unwrap();
    for attempt in 0..knobs.webhook_attempts {
        if attempt > 0 {
            tokio::time::sleep(knobs.webhook_retry_delay).await;
        }
        let headers = signed_headers(&shared.signer.lock().unwrap(), &id, unix_now(), &body);
        let mut post = shared.http.post(&url).body(body.clone());
        for (name, value) in &headers {
            post = post.header(name, value);
        }
        let answer = post.send().await.ok().map(|r| r.status().as_u16());
        shared.deliveries.lock().unwrap().push(Delivery {
            request_id: id.clone(),
            url: url.clone(),
            headers,
            body: body.clone(),
            answer,
        });
        if answer.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
    }
}
