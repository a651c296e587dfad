//! A fake ElevenLabs on loopback, speaking its text-to-speech API:
//! `POST /v1/text-to-speech/{voice_id}` (the audio itself) and `…/with-timestamps`
//! (`{audio_base64, alignment, normalized_alignment}`, each character's start and end), with
//! `?output_format=` (`mp3_*`, or headerless 16-bit `pcm_{rate}`), key header `xi-api-key`.
//! Errors as ElevenLabs sends them: `{"detail": {"status", "message"}}` (401 for a bad key, 404
//! for an unknown voice, 400 for an unknown model, 429 with `Retry-After` on demand), and
//! FastAPI's 422 `{"detail": [{type, loc, msg}]}` for a bad body. The audio is a real tone,
//! made by ffmpeg, 60 ms a character. Everything received is recorded.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

/// Voices the fake knows (the SDK docs' voices).
pub const VOICES: [&str; 4] = [
    "21m00Tcm4TlvDq8ikWAM",
    "pNInz6obpgDQGcFmaJgB",
    "TxGEqnHWrfWFTfGW9XjX",
    "EXAVITQu4vr4xnSDxMaL",
];
const MODELS: [&str; 7] = [
    "eleven_turbo_v2_5",
    "eleven_multilingual_v2",
    "eleven_flash_v2_5",
    "eleven_v3",
    "eleven_turbo_v2",
    "eleven_flash_v2",
    "eleven_monolingual_v1",
];
/// Seconds of speech a character takes.
pub const CHAR_SECONDS: f64 = 0.06;

#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// The next this many calls answer 429…
    pub rate_limited: u32,
    /// …with this `Retry-After` (seconds), if any.
    pub retry_after: Option<u64>,
    /// Then the next this many answer 500.
    pub failing: u32,
}

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

#[derive(Default)]
struct Shared {
    knobs: Mutex<Knobs>,
    keys: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct FakeElevenLabs {
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeElevenLabs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeElevenLabs {
    pub async fn start() -> FakeElevenLabs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/v1/text-to-speech/{voice_id}", post(speak))
            .route(
                "/v1/text-to-speech/{voice_id}/with-timestamps",
                post(speak_with_timestamps),
            )
            .with_state(shared.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeElevenLabs { base, shared, server }
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

async fn speak(
    State(shared): State<Arc<Shared>>,
    Path(voice): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&shared, &voice, false, query, headers, body).await
}

async fn speak_with_timestamps(
    State(shared): State<Arc<Shared>>,
    Path(voice): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&shared, &voice, true, query, headers, body).await
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"detail": {"status": code, "message": message}}))).into_response()
}

fn invalid(loc: Value, kind: &str, msg: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"detail": [{"type": kind, "loc": loc, "msg": msg, "input": null}]})),
    )
        .into_response()
}

async fn answer(
    shared: &Shared,
    voice: &str,
    timestamps: bool,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = query
        .get("output_format")
        .cloned()
        .unwrap_or_else(|| "mp3_44100_128".into());
    let path = format!(
        "/v1/text-to-speech/{voice}{}?output_format={format}",
        if timestamps { "/with-timestamps" } else { "" }
    );
    let response = respond(shared, voice, timestamps, &format, &headers, &body).await;
    shared.seen.lock().unwrap().push(Seen {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body,
        status: response.status().as_u16(),
    });
    response
}

async fn respond(
    shared: &Shared,
    voice: &str,
    timestamps: bool,
    format: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(key) = headers.get("xi-api-key").and_then(|v| v.to_str().ok()) else {
        return detail(
            StatusCode::UNAUTHORIZED,
            "needs_authorization",
            "Neither authorization header nor xi-api-key received, please provide one.",
        );
    };
    if !shared.keys.lock().unwrap().iter().any(|k| k == key) {
        return detail(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key");
    }
    {
        let mut knobs = shared.knobs.lock().unwrap();
        if knobs.rate_limited > 0 {
            knobs.rate_limited -= 1;
            let mut response = detail(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_concurrent_requests",
                "Too many concurrent requests for your subscription.",
            );
            if let Some(secs) = knobs.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            return response;
        }
        if knobs.failing > 0 {
            knobs.failing -= 1;
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong.",
            );
        }
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return invalid(json!(["body", 0]), "json_invalid", "JSON decode error");
    };
    let Some(text) = body["text"].as_str() else {
        return invalid(json!(["body", "text"]), "missing", "Field required");
    };
    for field in ["stability", "similarity_boost", "style"] {
        match body["voice_settings"].get(field) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_f64().is_some_and(|n| (0.0..=1.0).contains(&n)) => {}
            Some(_) => {
                return invalid(
                    json!(["body", "voice_settings", field]),
                    "less_than_equal",
                    "Input should be less than or equal to 1",
                )
            }
        }
    }
    let rate = match format.split('_').collect::<Vec<_>>()[..] {
        ["mp3", rate, _] | ["pcm", rate] => rate.parse::<u32>().ok(),
        _ => None,
    };
    let Some(rate) = rate else {
        return invalid(
            json!(["query", "output_format"]),
            "enum",
            "Input should be a valid output format",
        );
    };
    let model = body["model_id"].as_str().unwrap_or("eleven_multilingual_v2");
    if !MODELS.contains(&model) {
        return detail(
            StatusCode::BAD_REQUEST,
            "model_not_found",
            &format!("A model with model ID {model} does not exist"),
        );
    }
    if !VOICES.contains(&voice) {
        return detail(
            StatusCode::NOT_FOUND,
            "voice_not_found",
            &format!("A voice with voice_id {voice} was not found."),
        );
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let seconds = (chars.len() as f64 * CHAR_SECONDS).max(0.5);
    let audio = tone(format.starts_with("pcm"), rate, seconds).await;
    if !timestamps {
        let content_type = if format.starts_with("pcm") {
            "application/octet-stream"
        } else {
            "audio/mpeg"
        };
        return ([(header::CONTENT_TYPE, content_type)], audio).into_response();
    }
    let starts: Vec<f64> = (0..chars.len()).map(|i| i as f64 * CHAR_SECONDS).collect();
    let ends: Vec<f64> = starts.iter().map(|s| s + CHAR_SECONDS).collect();
    let alignment = json!({"characters": chars, "character_start_times_seconds": starts,
        "character_end_times_seconds": ends});
    Json(json!({
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(&audio),
        "alignment": alignment,
        "normalized_alignment": alignment,
    }))
    .into_response()
}

/// A 440 Hz mono tone: an MP3 with no tag (as ElevenLabs sends), or raw 16-bit samples.
pub async fn tone(pcm: bool, rate: u32, seconds: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone");
    let format: &[&str] = if pcm {
        &["-f", "s16le", "-c:a", "pcm_s16le"]
    } else {
        &[
            "-f",
            "mp3",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "64k",
            "-id3v2_version",
            "0",
            "-write_xing",
            "0",
        ]
    };
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"))
        .args(["-ac", "1"])
        .args(format)
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::read(out).unwrap()
}
