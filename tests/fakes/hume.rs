//! A fake Hume on loopback, speaking its Octave text-to-speech API: `POST /v0/tts` with
//! `{utterances, format: {type}, num_generations, version, include_timestamp_types}` and key
//! header `X-Hume-Api-Key`, answering `{generations: [{audio (base64), duration, encoding,
//! file_size, generation_id, snippets}], request_id}`. Word timestamps (milliseconds) come only
//! for Octave 2. Errors as Hume sends them: its gateway's 401 `{"fault": {"faultstring"}}`,
//! 400 `{code, error, message}`, FastAPI's 422 `{"detail": [{type, loc, msg}]}`, and 429 with
//! `Retry-After` on demand. The audio is a real tone made by ffmpeg. Everything received is
//! recorded.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

/// Milliseconds of speech a word takes.
pub const WORD_MS: u64 = 300;

#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// The next this many calls answer 429…
    pub rate_limited: u32,
    /// …with this `Retry-After` (seconds), if any.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub status: u16,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    knobs: Mutex<Knobs>,
    keys: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct FakeHume {
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHume {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeHume {
    pub async fn start() -> FakeHume {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let router = Router::new().route("/v0/tts", post(tts)).with_state(shared.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeHume { base, shared, server }
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

async fn tts(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let response = respond(&shared, &headers, &body).await;
    shared.seen.lock().unwrap().push(Seen {
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body,
        status: response.status().as_u16(),
    });
    response
}

fn refused(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16().to_string(), "error": error, "message": message})),
    )
        .into_response()
}

fn invalid(loc: Value, kind: &str, msg: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"detail": [{"type": kind, "loc": loc, "msg": msg, "input": null}]})),
    )
        .into_response()
}

async fn respond(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let key = headers.get("x-hume-api-key").and_then(|v| v.to_str().ok());
    if !key.is_some_and(|k| shared.keys.lock().unwrap().iter().any(|known| known == k)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"fault": {"faultstring": "Invalid ApiKey",
                "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}})),
        )
            .into_response();
    }
    {
        let mut knobs = shared.knobs.lock().unwrap();
        if knobs.rate_limited > 0 {
            knobs.rate_limited -= 1;
            let mut response = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Rate limit exceeded",
            );
            if let Some(secs) = knobs.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            return response;
        }
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return invalid(json!(["body", 0]), "json_invalid", "JSON decode error");
    };
    let Some(utterances) = body["utterances"].as_array().filter(|u| !u.is_empty()) else {
        return invalid(json!(["body", "utterances"]), "missing", "Field required");
    };
    for (i, u) in utterances.iter().enumerate() {
        if !u["text"].is_string() {
            return invalid(json!(["body", "utterances", i, "text"]), "missing", "Field required");
        }
    }
    let format = body["format"]["type"].as_str().unwrap_or("mp3");
    if !["mp3", "wav", "pcm"].contains(&format) {
        return invalid(
            json!(["body", "format", "type"]),
            "literal_error",
            "Input should be 'mp3', 'wav' or 'pcm'",
        );
    }
    let version = body["version"].as_str();
    if version == Some("2") && utterances.iter().all(|u| u["voice"].is_null()) {
        return refused(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Octave 2 requires a voice to be specified",
        );
    }
    let timestamps = body["include_timestamp_types"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "word"));
    if timestamps && version != Some("2") {
        return refused(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Timestamps are only available with Octave 2",
        );
    }
    let generations = body["num_generations"].as_u64().unwrap_or(1);
    let mut out = Vec::new();
    for g in 0..generations {
        let mut snippets = Vec::new();
        let mut at = 0;
        for (i, u) in utterances.iter().enumerate() {
            let text = u["text"].as_str().unwrap_or_default();
            let mut words = Vec::new();
            for word in text.split_whitespace() {
                words.push(json!({"text": word, "type": "word",
                    "time": {"begin": at, "end": at + WORD_MS}}));
                at += WORD_MS;
            }
            snippets.push(
                json!([{"audio": "", "generation_id": format!("gen-{g}"), "id": format!("snip-{g}-{i}"),
                "text": text, "timestamps": if timestamps { words } else { vec![] },
                "transcribed_text": null, "utterance_index": i}]),
            );
        }
        let seconds = (at as f64 / 1000.0).max(0.5);
        let audio = tone(format, seconds).await;
        out.push(json!({
            "audio": base64::engine::general_purpose::STANDARD.encode(&audio),
            "duration": seconds,
            "encoding": {"format": format, "sample_rate": 48000},
            "file_size": audio.len(),
            "generation_id": format!("gen-{g}"),
            "snippets": snippets,
        }));
    }
    Json(json!({"generations": out, "request_id": "req-fake-1"})).into_response()
}

/// A 440 Hz mono tone at 48 kHz in `format` (`pcm`: raw 16-bit samples).
async fn tone(format: &str, seconds: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone");
    let muxer: &[&str] = match format {
        "wav" => &["-f", "wav"],
        "pcm" => &["-f", "s16le", "-c:a", "pcm_s16le"],
        _ => &["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"],
    };
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-ac", "1"])
        .args(muxer)
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::read(out).unwrap()
}
