//! What the text-to-speech tests (ElevenLabs, Hume) share: the core of their fakes (knobs, the
//! keys they accept, what they received, a real tone made by ffmpeg, FastAPI's 422), reading a
//! job's stored audio with ffprobe, and running a provider's official Python client against
//! its fake.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

/// How a fake misbehaves, on demand.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// The next this many calls answer 429…
    pub rate_limited: u32,
    /// …with this `Retry-After` (seconds), if any.
    pub retry_after: Option<u64>,
    /// Then the next this many answer 500.
    pub failing: u32,
}

/// A call a fake received, and the status it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query.
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub status: u16,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What a fake's handlers share: its knobs, the keys it accepts, what it received.
#[derive(Default)]
pub struct Shared {
    knobs: Mutex<Knobs>,
    keys: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

impl Shared {
    pub fn knows(&self, key: &str) -> bool {
        self.keys.lock().unwrap().iter().any(|k| k == key)
    }

    /// The 429 (with `Retry-After` when set) or 500 the knobs call for next, if any, made by
    /// `error` in the provider's shape.
    pub fn misbehaving(&self, error: impl Fn(StatusCode) -> Response) -> Option<Response> {
        let mut knobs = self.knobs.lock().unwrap();
        if knobs.rate_limited > 0 {
            knobs.rate_limited -= 1;
            let mut response = error(StatusCode::TOO_MANY_REQUESTS);
            if let Some(secs) = knobs.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            return Some(response);
        }
        if knobs.failing > 0 {
            knobs.failing -= 1;
            return Some(error(StatusCode::INTERNAL_SERVER_ERROR));
        }
        None
    }

    /// Records a call to `path` and the answer it got.
    pub fn record(&self, path: String, headers: &HeaderMap, body: Bytes, response: &Response) {
        self.seen.lock().unwrap().push(Seen {
            path,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body,
            status: response.status().as_u16(),
        });
    }
}

/// The API a fake speaks, on top of what every fake shares.
pub trait Api {
    /// The header its key travels in.
    const KEY_HEADER: &'static str;
    fn routes() -> Router<Arc<Shared>>;
}

/// A fake speaking `A` on loopback until dropped.
pub struct FakeSpeech<A> {
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    api: PhantomData<fn() -> A>,
}

impl<A> Drop for FakeSpeech<A> {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl<A: Api> FakeSpeech<A> {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let router = A::routes().with_state(shared.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeSpeech {
            base,
            shared,
            server,
            api: PhantomData,
        }
    }

    pub fn add_key(&self, key: &str) {
        self.shared.keys.lock().unwrap().push(key.to_string());
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.knobs.lock().unwrap());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// FastAPI's 422 for a bad body or query (both providers' APIs answer with it).
pub fn invalid(loc: Value, kind: &str, msg: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"detail": [{"type": kind, "loc": loc, "msg": msg, "input": null}]})),
    )
        .into_response()
}

/// `seconds` of a 440 Hz mono tone at `rate`, written by ffmpeg with `muxer` (its format and
/// codec options).
pub async fn tone(rate: u32, seconds: f64, muxer: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone");
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"))
        .args(["-ac", "1"])
        .args(muxer)
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::read(out).unwrap()
}

/// What ffprobe finds in a stored output.
#[derive(Debug)]
pub struct Probed {
    pub codec_types: Vec<String>,
    pub sample_rate: Option<u32>,
    pub duration: f64,
    /// The `comment` tag, where word timings ride.
    pub comment: Option<Value>,
}

impl Probed {
    /// The words of the timings kept with the audio.
    pub fn words(&self) -> Vec<String> {
        self.comment
            .as_ref()
            .and_then(|c| c["transcript"].as_array())
            .map(|w| w.iter().map(|w| w["word"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// Probes the file a job's `result` points at (a `file://` URL on the embedded node).
pub async fn probe(result: &Value) -> Probed {
    let url = result["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no output URL: {result}"));
    let path = url
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("not a file URL: {url}"));
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("format=duration:format_tags=comment:stream=codec_type,sample_rate")
        .arg(path)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    Probed {
        codec_types: streams
            .iter()
            .map(|s| s["codec_type"].as_str().unwrap().to_string())
            .collect(),
        sample_rate: streams
            .first()
            .and_then(|s| s["sample_rate"].as_str())
            .and_then(|r| r.parse().ok()),
        duration: json["format"]["duration"].as_str().unwrap().parse().unwrap(),
        comment: json["format"]["tags"]["comment"]
            .as_str()
            .map(|c| serde_json::from_str(c).unwrap()),
    }
}
