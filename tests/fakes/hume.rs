//! A fake Hume on loopback, speaking its Octave text-to-speech API: `POST /v0/tts` with
//! `{utterances, format: {type}, num_generations, version, include_timestamp_types}` and key
//! header `X-Hume-Api-Key`, answering `{generations: [{audio (base64), duration, encoding,
//! file_size, generation_id, snippets}], request_id}`. Word timestamps (milliseconds) come only
//! for Octave 2. Errors as Hume sends them: its gateway's 401 `{"fault": {"faultstring"}}`,
//! 400 `{code, error, message}`, FastAPI's 422 `{"detail": [{type, loc, msg}]}`, and 429 with
//! `Retry-After` (or 500) on demand. The audio is a real tone made by ffmpeg. Everything received
//! is recorded (the core all speech fakes share is tests/fakes/tts.rs).

#![allow(dead_code)] // Each test binary uses part of it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::tts::{invalid, tone, Api, FakeSpeech, Shared};

/// Milliseconds of speech a word takes.
pub const WORD_MS: u64 = 300;

pub type FakeHume = FakeSpeech<Hume>;

pub struct Hume;

impl Api for Hume {
    const KEY_HEADER: &'static str = "x-hume-api-key";

    fn routes() -> Router<Arc<Shared>> {
        Router::new().route("/v0/tts", post(tts))
    }
}

async fn tts(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let response = respond(&shared, &headers, &body).await;
    shared.record("/v0/tts".into(), &headers, body, &response);
    response
}

fn refused(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16().to_string(), "error": error, "message": message})),
    )
        .into_response()
}

async fn respond(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let key = headers.get(Hume::KEY_HEADER).and_then(|v| v.to_str().ok());
    if !key.is_some_and(|k| shared.knows(k)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"fault": {"faultstring": "Invalid ApiKey",
                "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}})),
        )
            .into_response();
    }
    let misbehaving = shared.misbehaving(|status| match status {
        StatusCode::TOO_MANY_REQUESTS => refused(status, "Too Many Requests", "Rate limit exceeded"),
        _ => refused(status, "Internal Server Error", "Something went wrong"),
    });
    if let Some(response) = misbehaving {
        return response;
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
        // At 48 kHz; `pcm`: raw 16-bit samples.
        let muxer: &[&str] = match format {
            "wav" => &["-f", "wav"],
            "pcm" => &["-f", "s16le", "-c:a", "pcm_s16le"],
            _ => &["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"],
        };
        let audio = tone(48000, seconds, muxer).await;
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
