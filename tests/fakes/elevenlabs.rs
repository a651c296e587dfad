//! A fake ElevenLabs on loopback, speaking its text-to-speech API:
//! `POST /v1/text-to-speech/{voice_id}` (the audio itself) and `…/with-timestamps`
//! (`{audio_base64, alignment, normalized_alignment}`, each character's start and end), with
//! `?output_format=` (`mp3_*`, or headerless 16-bit `pcm_{rate}`), key header `xi-api-key`.
//! Errors as ElevenLabs sends them: `{"detail": {"status", "message"}}` (401 for a bad key, 404
//! for an unknown voice, 400 for an unknown model, 429 with `Retry-After` on demand), and
//! FastAPI's 422 `{"detail": [{type, loc, msg}]}` for a bad body. The audio is a real tone,
//! made by ffmpeg, 60 ms a character. Everything received is recorded (the core all speech fakes
//! share is tests/fakes/tts.rs).

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::tts::{invalid, tone, Api, FakeSpeech, Shared};

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

pub type FakeElevenLabs = FakeSpeech<ElevenLabs>;

pub struct ElevenLabs;

impl Api for ElevenLabs {
    const KEY_HEADER: &'static str = "xi-api-key";

    fn routes() -> Router<Arc<Shared>> {
        Router::new()
            .route("/v1/text-to-speech/{voice_id}", post(speak))
            .route("/v1/text-to-speech/{voice_id}/with-timestamps", post(speak))
    }
}

/// Both routes: `…/with-timestamps` answers JSON with the alignment, the other the audio.
async fn speak(
    State(shared): State<Arc<Shared>>,
    Path(voice): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let timestamps = uri.path().ends_with("/with-timestamps");
    let format = query
        .get("output_format")
        .cloned()
        .unwrap_or_else(|| "mp3_44100_128".into());
    let path = format!("{}?output_format={format}", uri.path());
    let response = respond(&shared, &voice, timestamps, &format, &headers, &body).await;
    shared.record(path, &headers, body, &response);
    response
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"detail": {"status": code, "message": message}}))).into_response()
}

async fn respond(
    shared: &Shared,
    voice: &str,
    timestamps: bool,
    format: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(key) = headers.get(ElevenLabs::KEY_HEADER).and_then(|v| v.to_str().ok()) else {
        return detail(
            StatusCode::UNAUTHORIZED,
            "needs_authorization",
            "Neither authorization header nor xi-api-key received, please provide one.",
        );
    };
    if !shared.knows(key) {
        return detail(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key");
    }
    let misbehaving = shared.misbehaving(|status| match status {
        StatusCode::TOO_MANY_REQUESTS => detail(
            status,
            "too_many_concurrent_requests",
            "Too many concurrent requests for your subscription.",
        ),
        _ => detail(status, "internal_error", "Something went wrong."),
    });
    if let Some(response) = misbehaving {
        return response;
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
    // An MP3 with no tag (as ElevenLabs sends), or raw 16-bit samples.
    let muxer: &[&str] = if format.starts_with("pcm") {
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
    let audio = tone(rate, seconds, muxer).await;
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
