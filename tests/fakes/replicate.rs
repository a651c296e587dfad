//! A fake Replicate API on 127.0.0.1, speaking the protocol of `shared/reference/providers.md`:
//! bearer auth per account, official-model and version creates, `Prefer: wait`, predictions
//! going `starting` → `processing` → `succeeded`/`failed` (or `canceled`) on a compressed
//! clock, Standard Webhooks signed with each account's secret (the terminal one retried),
//! cursor-paged listing, a per-account create limit answering 429 (with and without
//! `Retry-After`), injected 5xx bursts and lost create answers, and real media outputs
//! (made with ffmpeg; robust_video_matting's is a green screen) that expire. Tests turn its
//! knobs and inspect what it saw.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;

use reelay_core::time::iso8601;
use reelay_core::webhooks::signature::standard_signature;

/// Valid `whsec_` secrets (base64 after the prefix, as Standard Webhooks libraries expect):
/// account `i` signs with `SECRETS[i]`, and a rotation moves it on by one.
pub const SECRETS: [&str; 4] = [
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_dGVzdHNlY3JldGZvcnRoZWZha2VyZXBsaWNh",
    "whsec_cm90YXRlZHNlY3JldG9mdGhlZmFrZXJlcGxp",
];

/// The version the fake answers for an official model (a real prediction carries one too).
pub const OFFICIAL_VERSION: &str = "5f4e0c2a9d1b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
pub const WHISPER_VERSION: &str = "8099696689d249cf8b122d833c36ac3f75505c666a395ca40ef26f68e7d3d16e";
pub const MATTING_VERSION: &str = "73d2128a371922d5d1abf0712a1d974be0e4e2358cc1218e4e34714767232bac";

/// The models the fake runs: (name, official, required input, output).
const MODELS: [(&str, bool, &str, Output); 5] = [
    ("bytedance/seedance-1-pro", true, "prompt", Output::Video),
    ("minimax/video-01", true, "prompt", Output::Video),
    ("google/nano-banana", true, "prompt", Output::Images),
    ("openai/whisper", false, "audio", Output::Transcript),
    (
        "arielreplicate/robust_video_matting",
        false,
        "input_video",
        Output::Matting,
    ),
];

/// The versions of the community models (run by version only).
const VERSIONS: [(&str, &str); 2] = [
    (WHISPER_VERSION, "openai/whisper"),
    (MATTING_VERSION, "arielreplicate/robust_video_matting"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    /// One URL (what video models answer).
    Video,
    /// A list of URLs (what image models answered for long).
    Images,
    /// An object (Whisper's segments and text).
    Transcript,
    /// One URL: robust_video_matting's green screen for `output_type: green-screen` (its
    /// default); its mattes are not modelled (any video).
    Matting,
}

/// What a transcription answers.
pub fn transcript() -> Value {
    json!({
        "segments": [{"id": 0, "start": 0.0, "end": 1.2, "text": " Hello from the fake.", "tokens": [50364, 2425], "temperature": 0.0}],
        "transcription": " Hello from the fake.",
        "translation": null,
        "txt_file": null,
        "srt_file": null,
        "detected_language": "english"
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryAfter {
    /// Every 429 says `Retry-After: N`.
    Always(u64),
    Never,
    /// Every other 429 says it (Replicate's behaviour is unconfirmed: both must work).
    Alternate(u64),
}

#[derive(Debug, Clone)]
pub struct Knobs {
    /// API tokens the fake accepts; each is an account with its own webhook secret.
    pub accounts: Vec<String>,
    /// How long a prediction is `starting`, then `processing`.
    pub starting_for: Duration,
    pub run_for: Duration,
    /// Output files are deleted this long after a prediction ends (an hour, compressed).
    pub file_ttl: Duration,
    /// How long an output file takes to start coming (a large video, a slow CDN).
    pub file_delay: Duration,
    /// The prediction's input and output are removed (`data_removed`) this long after it ends.
    pub data_ttl: Duration,
    /// Creates per account per window before 429s.
    pub create_limit: (usize, Duration),
    pub retry_after: RetryAfter,
    /// The next N creates answer 429 whatever the budget.
    pub throttle_next: usize,
    /// The next N API calls answer 503 (Replicate down).
    pub fail_next: usize,
    /// The next N creates are made, but answered 502: the answer is lost.
    pub lose_create_answers: usize,
    /// Predictions whose input contains this string fail.
    pub fail_marker: String,
    /// Whether webhooks are sent at all (false: every one is lost).
    pub webhooks: bool,
    /// How often a terminal webhook the receiver did not take is retried.
    pub webhook_retries: u32,
    /// Send each terminal webhook twice (Replicate's duplicates).
    pub duplicate_webhooks: bool,
    /// Whether listed predictions show their `webhook` (unconfirmed for the real API).
    pub list_shows_webhook: bool,
    pub page_size: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            accounts: vec!["r8_configured".into(), "r8_client".into()],
            starting_for: Duration::from_millis(20),
            run_for: Duration::from_millis(60),
            file_ttl: Duration::from_secs(3600),
            data_ttl: Duration::from_secs(3600),
            file_delay: Duration::ZERO,
            create_limit: (600, Duration::from_secs(60)),
            retry_after: RetryAfter::Alternate(1),
            throttle_next: 0,
            fail_next: 0,
            lose_create_answers: 0,
            fail_marker: "FAIL".into(),
            webhooks: true,
            webhook_retries: 3,
            duplicate_webhooks: false,
            list_shows_webhook: true,
            page_size: 100,
        }
    }
}

/// One API call the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub prefer: Option<String>,
    pub status: u16,
}

/// A prediction as the fake holds it.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub id: String,
    pub seq: u64,
    /// The token it was created with.
    pub account: String,
    pub model: String,
    pub version: String,
    /// Created through `/v1/models/{owner}/{name}/predictions`.
    pub official: bool,
    pub input: Value,
    pub webhook: Option<String>,
    pub events: Option<Vec<String>>,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub completed_ms: Option<i64>,
    ended: Option<Instant>,
}

impl Prediction {
    pub fn terminal(&self) -> bool {
        ["succeeded", "failed", "canceled", "aborted"].contains(&self.status.as_str())
    }

    /// The job token riding on its webhook URL.
    pub fn token(&self) -> Option<String> {
        let query = self.webhook.as_deref()?.split_once('?')?.1;
        query
            .split('&')
            .find_map(|p| p.strip_prefix("token="))
            .map(str::to_string)
    }

    fn expired(&self, ttl: Duration) -> bool {
        self.ended.is_some_and(|at| at.elapsed() >= ttl)
    }

    /// The JSON Replicate answers for it (GET, create, webhook).
    fn json(&self, base: &str, ttl: Duration) -> Value {
        let removed = self.expired(ttl);
        let metrics = match (self.started_ms, self.completed_ms) {
            (Some(s), Some(c)) => {
                json!({"predict_time": (c - s) as f64 / 1000.0, "total_time": (c - self.created_ms) as f64 / 1000.0})
            }
            _ => json!({}),
        };
        json!({
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": if removed { json!({}) } else { self.input.clone() },
            "output": if removed { Value::Null } else { self.output.clone().unwrap_or(Value::Null) },
            "error": self.error,
            "logs": if self.started_ms.is_some() { "Running…\n" } else { "" },
            "status": self.status,
            "source": "api",
            "data_removed": removed,
            "created_at": iso8601(self.created_ms),
            "started_at": self.started_ms.map(iso8601),
            "completed_at": self.completed_ms.map(iso8601),
            "metrics": metrics,
            "webhook": self.webhook,
            "webhook_events_filter": self.events,
            "urls": {
                "get": format!("{base}/v1/predictions/{}", self.id),
                "cancel": format!("{base}/v1/predictions/{}/cancel", self.id),
                "web": format!("https://replicate.com/p/{}", self.id),
            },
        })
    }
}

/// One POST of a webhook, and what the receiver answered (`Err`: no answer).
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub prediction: String,
    pub webhook_id: String,
    pub answer: Result<u16, String>,
}

#[derive(Default)]
struct Book {
    predictions: Vec<Prediction>,
    wakers: HashMap<String, Arc<Notify>>,
    calls: Vec<Call>,
    creates: HashMap<String, VecDeque<Instant>>,
    throttled_with_retry_after: usize,
    throttled_without: usize,
    /// Account token → index into `SECRETS`.
    secret_of: HashMap<String, usize>,
    webhook_attempts: Vec<WebhookAttempt>,
    cancels: Vec<String>,
}

struct Media {
    mp4: Bytes,
    png: Bytes,
    green_screen: Bytes,
}

static MEDIA: tokio::sync::OnceCell<Arc<Media>> = tokio::sync::OnceCell::const_new();

/// The subject of the matting model's green screen, `(x, y, w, h)`: a blue box in the middle
/// of a 320x240 `#00FF00` frame.
pub const GREEN_SCREEN_SUBJECT: (u32, u32, u32, u32) = (110, 70, 100, 100);

/// A tiny real video, image and green screen, rendered once per test binary.
async fn media() -> Arc<Media> {
    MEDIA
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let (mp4, png) = (dir.path().join("out.mp4"), dir.path().join("out.png"));
            reelay_media::render_video("replicate fake", 1.0, 160, 90, &mp4)
                .await
                .unwrap();
            reelay_media::render_image("replicate fake", 64, 64, &png)
                .await
                .unwrap();
            let green_screen = dir.path().join("green-screen.mp4");
            let (x, y, w, h) = GREEN_SCREEN_SUBJECT;
            let rendered = tokio::process::Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
                .arg(format!(
                    "color=c=0x00FF00:s=320x240:d=1,drawbox=x={x}:y={y}:w={w}:h={h}:color=0x2040C0:t=fill"
                ))
                .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
                .arg(&green_screen)
                .output()
                .await
                .unwrap();
            assert!(
                rendered.status.success(),
                "{}",
                String::from_utf8_lossy(&rendered.stderr)
            );
            Arc::new(Media {
                mp4: std::fs::read(mp4).unwrap().into(),
                png: std::fs::read(png).unwrap().into(),
                green_screen: std::fs::read(green_screen).unwrap().into(),
            })
        })
        .await
        .clone()
}

struct Shared {
    base_url: String,
    knobs: Mutex<Knobs>,
    state: Mutex<Book>,
    media: Arc<Media>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({"title": title, "detail": detail, "status": status.as_u16()});
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

pub struct FakeReplicate {
    pub base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeReplicate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeReplicate {
    pub async fn start(knobs: Knobs) -> FakeReplicate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, knobs).await
    }

    /// On an address chosen earlier (a test first lets calls to it be refused).
    pub async fn start_on(addr: SocketAddr, knobs: Knobs) -> FakeReplicate {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, knobs).await
    }

    async fn serve(listener: tokio::net::TcpListener, knobs: Knobs) -> FakeReplicate {
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Book {
            secret_of: knobs
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| (a.clone(), i % SECRETS.len()))
                .collect(),
            ..Book::default()
        };
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            knobs: Mutex::new(knobs),
            state: Mutex::new(state),
            media: media().await,
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/v1/models/{owner}/{name}/predictions", post(create_official))
            .route("/v1/predictions", post(create_version).get(list))
            .route("/v1/predictions/{id}", get(read))
            .route("/v1/predictions/{id}/cancel", post(cancel))
            .route("/v1/webhooks/default/secret", get(secret))
            .route("/files/{id}/{name}", get(file))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeReplicate {
            base_url,
            shared,
            server,
        }
    }

    /// Changes knobs while it runs.
    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut lock(&self.shared.knobs));
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.state).calls.clone()
    }

    pub fn predictions(&self) -> Vec<Prediction> {
        lock(&self.shared.state).predictions.clone()
    }

    pub fn prediction(&self, id: &str) -> Option<Prediction> {
        lock(&self.shared.state)
            .predictions
            .iter()
            .find(|p| p.id == id)
            .cloned()
    }

    /// How many predictions were created for each job token.
    pub fn creates_per_token(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for p in self.predictions() {
            *counts.entry(p.token().unwrap_or_default()).or_default() += 1;
        }
        counts
    }

    /// 429s answered (with `Retry-After`, without).
    pub fn throttled(&self) -> (usize, usize) {
        let s = lock(&self.shared.state);
        (s.throttled_with_retry_after, s.throttled_without)
    }

    pub fn webhook_attempts(&self) -> Vec<WebhookAttempt> {
        lock(&self.shared.state).webhook_attempts.clone()
    }

    /// Predictions a cancel call named.
    pub fn cancels(&self) -> Vec<String> {
        lock(&self.shared.state).cancels.clone()
    }

    pub fn secret(&self, account: &str) -> &'static str {
        SECRETS[lock(&self.shared.state).secret_of[account]]
    }

    /// Gives the account a new webhook secret (Replicate signs with it from now on).
    pub fn rotate_secret(&self, account: &str) {
        let mut s = lock(&self.shared.state);
        let i = s.secret_of.get_mut(account).unwrap();
        *i = (*i + 1) % SECRETS.len();
    }

    /// Ends a running prediction now, as if the model had finished.
    pub fn finish_now(&self, id: &str) {
        let waker = {
            let mut s = lock(&self.shared.state);
            if let Some(p) = s.predictions.iter_mut().find(|p| p.id == id) {
                p.started_ms.get_or_insert_with(now_ms);
            }
            s.wakers.get(id).cloned()
        };
        if let Some(w) = waker {
            w.notify_one();
        }
    }

    /// A webhook of this prediction as the fake would send it now, signed with `secret`
    /// (the account's, unless given) at `timestamp` (now, unless given): (headers, body).
    pub fn signed_webhook(
        &self,
        id: &str,
        secret: Option<&str>,
        timestamp: Option<i64>,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let p = self.prediction(id).unwrap();
        let secret = secret.unwrap_or_else(|| self.secret(&p.account)).to_string();
        let ttl = lock(&self.shared.knobs).data_ttl;
        let body = p.json(&self.base_url, ttl).to_string().into_bytes();
        let webhook_id = format!("msg_{}", uuid_like());
        let ts = timestamp.unwrap_or_else(|| now_ms() / 1000);
        (webhook_headers(&secret, &webhook_id, ts, &body), body)
    }
}

fn webhook_headers(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), standard_signature(secret, id, ts, body)),
    ]
}

/// A Replicate-looking id: 26 lower-case letters and digits.
fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..26)
        .map(|_| {
            let n = rng.random_range(0..36u8);
            (if n < 10 { b'0' + n } else { b'a' + n - 10 }) as char
        })
        .collect()
}

impl Shared {
    /// Logs a call, then answers for the whole API first: injected outages, then auth.
    /// `Ok` carries the caller's account and the call's place in the log.
    fn gate(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(String, usize), Box<Response>> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).map(str::to_string);
        let outcome = {
            let mut knobs = lock(&self.knobs);
            if knobs.fail_next > 0 {
                knobs.fail_next -= 1;
                Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "Replicate is temporarily unavailable.",
                ))
            } else {
                let account = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .filter(|t| knobs.accounts.iter().any(|a| a == t));
                account.map(str::to_string).ok_or_else(|| {
                    problem(
                        StatusCode::UNAUTHORIZED,
                        "Unauthenticated",
                        "You did not pass a valid authentication token",
                    )
                })
            }
        };
        let status = match &outcome {
            Ok(_) => 200,
            Err(r) => r.status().as_u16(),
        };
        let mut state = lock(&self.state);
        state.calls.push(Call {
            method: method.to_string(),
            path: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            authorization,
            prefer,
            status,
        });
        let at = state.calls.len() - 1;
        outcome.map(|account| (account, at)).map_err(Box::new)
    }

    /// Records the status of an answer decided after the gate.
    fn answered(&self, call: usize, answer: Response) -> Response {
        if let Some(c) = lock(&self.state).calls.get_mut(call) {
            c.status = answer.status().as_u16();
        }
        answer
    }

    /// Spends one create of the account's budget, or answers 429.
    fn throttle(&self, account: &str) -> Result<(), Box<Response>> {
        let mut knobs = lock(&self.knobs);
        let mut state = lock(&self.state);
        let (limit, window) = knobs.create_limit;
        let log = state.creates.entry(account.to_string()).or_default();
        while log.front().is_some_and(|t| t.elapsed() >= window) {
            log.pop_front();
        }
        let forced = knobs.throttle_next > 0;
        if !forced && log.len() < limit {
            log.push_back(Instant::now());
            return Ok(());
        }
        knobs.throttle_next = knobs.throttle_next.saturating_sub(1);
        let n = state.throttled_with_retry_after + state.throttled_without;
        let retry_after = match knobs.retry_after {
            RetryAfter::Always(s) => Some(s),
            RetryAfter::Never => None,
            RetryAfter::Alternate(s) => n.is_multiple_of(2).then_some(s),
        };
        if retry_after.is_some() {
            state.throttled_with_retry_after += 1;
        } else {
            state.throttled_without += 1;
        }
        let mut answer = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Request was throttled",
            "Request was throttled. Expected available in 1 second.",
        );
        if let Some(s) = retry_after {
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_str(&s.to_string()).unwrap());
        }
        Err(Box::new(answer))
    }

    async fn create(
        self: Arc<Self>,
        account: String,
        model: &str,
        official: bool,
        headers: &HeaderMap,
        body: &Value,
    ) -> Response {
        let Some(&(name, is_official, required, output)) = MODELS.iter().find(|m| m.0 == model) else {
            return problem(
                StatusCode::NOT_FOUND,
                "Not found",
                "The requested resource could not be found.",
            );
        };
        if official && !is_official {
            return problem(
                StatusCode::NOT_FOUND,
                "Not found",
                "This model is not an official model: create predictions with a version.",
            );
        }
        let input = body.get("input").cloned().unwrap_or(json!({}));
        if input.get(required).is_none() {
            let body = json!({"title": "Input validation failed", "detail": format!("- input: {required} is required"),
                "status": 422, "invalid_fields": [{"type": "required", "field": "input", "description": format!("{required} is required")}]});
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                [(header::CONTENT_TYPE, "application/problem+json")],
                body.to_string(),
            )
                .into_response();
        }
        if let Err(throttled) = self.throttle(&account) {
            return *throttled;
        }
        let id = uuid_like();
        let fails = input.to_string().contains(&lock(&self.knobs).fail_marker);
        let (run_for, starting_for, lose) = {
            let mut k = lock(&self.knobs);
            let lose = k.lose_create_answers > 0;
            k.lose_create_answers = k.lose_create_answers.saturating_sub(1);
            (k.run_for, k.starting_for, lose)
        };
        let waker = Arc::new(Notify::new());
        {
            let mut s = lock(&self.state);
            let seq = s.predictions.len() as u64 + 1;
            s.predictions.push(Prediction {
                id: id.clone(),
                seq,
                account,
                model: name.to_string(),
                version: VERSIONS
                    .iter()
                    .find(|(_, model)| *model == name)
                    .map_or(OFFICIAL_VERSION, |(version, _)| version)
                    .to_string(),
                official,
                input,
                webhook: body.get("webhook").and_then(Value::as_str).map(str::to_string),
                events: body
                    .get("webhook_events_filter")
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
                status: "starting".into(),
                output: None,
                error: None,
                created_ms: now_ms(),
                started_ms: None,
                completed_ms: None,
                ended: None,
            });
            s.wakers.insert(id.clone(), waker.clone());
        }
        tokio::spawn(
            self.clone()
                .run(id.clone(), starting_for, run_for, fails, output, waker.clone()),
        );
        // `Prefer: wait` / `wait=N`: hold the answer until the prediction ends, at most N s.
        let wait = headers
            .get("prefer")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("wait"))
            .map(|n| n.trim_start_matches('=').parse::<u64>().unwrap_or(60).clamp(1, 60));
        if let Some(secs) = wait {
            let until = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < until && !self.get(&id).is_some_and(|p| p.terminal()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if lose {
            return problem(StatusCode::BAD_GATEWAY, "Bad Gateway", "upstream connection lost");
        }
        let ttl = lock(&self.knobs).data_ttl;
        let json = self.get(&id).unwrap().json(&self.base_url, ttl);
        let mut answer = (StatusCode::CREATED, axum::Json(json)).into_response();
        if let Some(secs) = wait {
            answer.headers_mut().insert(
                "preference-applied",
                HeaderValue::from_str(&format!("wait={secs}")).unwrap(),
            );
        }
        answer
    }

    fn get(&self, id: &str) -> Option<Prediction> {
        lock(&self.state).predictions.iter().find(|p| p.id == id).cloned()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Prediction)) {
        if let Some(p) = lock(&self.state).predictions.iter_mut().find(|p| p.id == id) {
            change(p);
        }
    }

    /// A prediction's life: starting, processing, then its end and its webhook.
    async fn run(
        self: Arc<Self>,
        id: String,
        starting_for: Duration,
        run_for: Duration,
        fails: bool,
        output: Output,
        waker: Arc<Notify>,
    ) {
        let woken = tokio::select! {
            _ = tokio::time::sleep(starting_for) => false,
            _ = waker.notified() => true,
        };
        self.update(&id, |p| {
            if p.status == "starting" {
                p.status = "processing".into();
                p.started_ms = Some(now_ms());
            }
        });
        if !woken {
            tokio::select! {
                _ = tokio::time::sleep(run_for) => {},
                _ = waker.notified() => {},
            }
        }
        let base = self.base_url.clone();
        self.update(&id, |p| {
            if p.terminal() {
                return; // Canceled meanwhile: its webhook went with the cancel.
            }
            p.completed_ms = Some(now_ms());
            p.ended = Some(Instant::now());
            if fails {
                p.status = "failed".into();
                p.error = Some("The model refused this input (it contains the fake's failure marker)".into());
            } else {
                p.status = "succeeded".into();
                p.output = Some(match output {
                    Output::Video => json!(format!("{base}/files/{id}/output.mp4")),
                    Output::Images => json!([format!("{base}/files/{id}/output.png")]),
                    Output::Transcript => transcript(),
                    Output::Matting => {
                        let asked = p.input.get("output_type").and_then(Value::as_str);
                        let file = match asked.unwrap_or("green-screen") {
                            "green-screen" => "green-screen.mp4",
                            _ => "output.mp4",
                        };
                        json!(format!("{base}/files/{id}/{file}"))
                    }
                });
            }
        });
        if self.get(&id).is_some_and(|p| p.status != "canceled") {
            self.deliver(&id).await;
        }
    }

    /// POSTs the terminal webhook, retried while the receiver does not take it.
    async fn deliver(self: &Arc<Self>, id: &str) {
        let Some(p) = self.get(id) else { return };
        let (send, retries, twice, ttl) = {
            let k = lock(&self.knobs);
            (k.webhooks, k.webhook_retries, k.duplicate_webhooks, k.data_ttl)
        };
        let Some(url) = p.webhook.clone() else { return };
        let wanted = p.events.as_ref().is_none_or(|e| e.iter().any(|e| e == "completed"));
        if !send || !wanted {
            return;
        }
        let body = p.json(&self.base_url, ttl).to_string().into_bytes();
        let webhook_id = format!("msg_{}", uuid_like());
        let mut delay = Duration::from_millis(50);
        let mut delivered = 0;
        for _ in 0..=retries {
            let secret = SECRETS[lock(&self.state).secret_of[&p.account]];
            let headers = webhook_headers(secret, &webhook_id, now_ms() / 1000, &body);
            let mut request = self.http.post(&url).body(body.clone());
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            let answer = match request.send().await {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(e.to_string()),
            };
            let ok = answer.as_ref().is_ok_and(|s| (200..300).contains(s));
            lock(&self.state).webhook_attempts.push(WebhookAttempt {
                prediction: id.to_string(),
                webhook_id: webhook_id.clone(),
                answer,
            });
            if ok {
                delivered += 1;
                if !twice || delivered == 2 {
                    return;
                }
                continue;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

async fn create_official(
    State(shared): State<Arc<Shared>>,
    Path((owner, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, call) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return shared.answered(
            call,
            problem(StatusCode::BAD_REQUEST, "Bad request", "The body is not JSON."),
        );
    };
    let answer = shared
        .clone()
        .create(account, &format!("{owner}/{name}"), true, &headers, &body)
        .await;
    shared.answered(call, answer)
}

async fn create_version(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, call) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return shared.answered(
            call,
            problem(StatusCode::BAD_REQUEST, "Bad request", "The body is not JSON."),
        );
    };
    // A 64-hex id, or `owner/name:id`.
    let version = body["version"].as_str().unwrap_or_default();
    let version = version.rsplit(':').next().unwrap_or_default();
    let Some(&(_, model)) = VERSIONS.iter().find(|(v, _)| *v == version) else {
        let answer = problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid version or not permitted",
            "The specified version does not exist (or perhaps you don't have permission to use it?)",
        );
        return shared.answered(call, answer);
    };
    let answer = shared.clone().create(account, model, false, &headers, &body).await;
    shared.answered(call, answer)
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (account, call) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let ttl = lock(&shared.knobs).data_ttl;
    match shared.get(&id).filter(|p| p.account == account) {
        Some(p) => axum::Json(p.json(&shared.base_url, ttl)).into_response(),
        None => shared.answered(call, problem(StatusCode::NOT_FOUND, "Not found", "Not found.")),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    cursor: Option<u64>,
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ListQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (account, _) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (ttl, page_size, show_webhook) = {
        let k = lock(&shared.knobs);
        (k.data_ttl, k.page_size.max(1), k.list_shows_webhook)
    };
    let mut mine: Vec<Prediction> = lock(&shared.state)
        .predictions
        .iter()
        .filter(|p| p.account == account && query.cursor.is_none_or(|c| p.seq < c))
        .cloned()
        .collect();
    mine.reverse();
    let more = mine.len() > page_size;
    mine.truncate(page_size);
    let next = more.then(|| format!("{}/v1/predictions?cursor={}", shared.base_url, mine.last().unwrap().seq));
    let results: Vec<Value> = mine
        .iter()
        .map(|p| {
            let mut v = p.json(&shared.base_url, ttl);
            if !show_webhook {
                let o = v.as_object_mut().unwrap();
                o.remove("webhook");
                o.remove("webhook_events_filter");
            }
            v
        })
        .collect();
    axum::Json(json!({"previous": null, "next": next, "results": results})).into_response()
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (account, call) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    lock(&shared.state).cancels.push(id.clone());
    let Some(p) = shared.get(&id).filter(|p| p.account == account) else {
        return shared.answered(call, problem(StatusCode::NOT_FOUND, "Not found", "Not found."));
    };
    if !p.terminal() {
        shared.update(&id, |p| {
            p.status = "canceled".into();
            p.completed_ms = Some(now_ms());
            p.ended = Some(Instant::now());
        });
        let waker = lock(&shared.state).wakers.get(&id).cloned();
        if let Some(w) = waker {
            w.notify_one();
        }
        let s = shared.clone();
        tokio::spawn(async move { s.deliver(&id).await });
    }
    let ttl = lock(&shared.knobs).data_ttl;
    axum::Json(shared.get(&p.id).unwrap().json(&shared.base_url, ttl)).into_response()
}

async fn secret(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let (account, _) = match shared.gate(&method, &uri, &headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let key = SECRETS[lock(&shared.state).secret_of[&account]];
    axum::Json(json!({ "key": key })).into_response()
}

/// `replicate.delivery`: no auth, and gone once the output expired.
async fn file(State(shared): State<Arc<Shared>>, Path((id, name)): Path<(String, String)>) -> Response {
    let (ttl, delay) = {
        let k = lock(&shared.knobs);
        (k.file_ttl, k.file_delay)
    };
    tokio::time::sleep(delay).await;
    if !shared
        .get(&id)
        .is_some_and(|p| p.status == "succeeded" && !p.expired(ttl))
    {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    }
    let (bytes, content_type) = match name.as_str() {
        "output.mp4" => (shared.media.mp4.clone(), "video/mp4"),
        "output.png" => (shared.media.png.clone(), "image/png"),
        "green-screen.mp4" => (shared.media.green_screen.clone(), "video/mp4"),
        _ => return (StatusCode::NOT_FOUND, "Not found").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}
