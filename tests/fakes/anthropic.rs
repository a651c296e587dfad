//! A fake Anthropic on loopback, speaking the Messages API: `POST /v1/messages` with the key
//! (`x-api-key`, or `Authorization: Bearer` as newer official clients send it) and
//! `anthropic-version`. It checks what the real API checks (the key; the version
//! header; a JSON body with `model`, `max_tokens` from 1 and a non-empty `messages` that starts
//! with the user and alternates `user`/`assistant`; `system` as text or text blocks;
//! `temperature` from 0 to 1; models it knows) and refuses with Anthropic's own bodies,
//! `{"type": "error", "error": {"type", "message"}, "request_id"}`. A request that passes is
//! answered by the test's script (tests/fakes/llm.rs) in Anthropic's shape: a `msg_` id, `text`
//! content blocks, `stop_reason` and `usage`; `Status(529)` is its "overloaded".
//!
//! `start(script)` serves it; its `base_url` has no path, as Anthropic's clients take it.

#![allow(dead_code)] // Each test binary uses part of it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::llm::{tokens, with_retry_after, Answer, FakeLlm, Shared};

/// The key the fake accepts.
pub const KEY: &str = "sk-ant-api03-reelay-fake-0123456789";
/// Models it knows; any other is "not found".
pub const MODELS: [&str; 6] = [
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1",
    "claude-haiku-4-5",
    "claude-3-7-sonnet-latest",
    "claude-3-5-haiku-latest",
];

/// Serves a fake Anthropic that answers with `script`, one answer a request, the last repeating.
pub async fn start(script: Vec<Answer>) -> FakeLlm {
    let routes = Router::new().route("/v1/messages", post(messages));
    FakeLlm::serve(routes, KEY, script, "").await
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (response, scripted) = match check(&shared, &headers, &body) {
        Ok(model) => (answer(&shared, &model, &body, shared.next().await), true),
        Err(refused) => (refused, false),
    };
    shared.record("/v1/messages", &headers, &body, &response, scripted);
    response
}

/// Anthropic's error body.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_011CFakeReelay000000000"})),
    )
        .into_response();
    response
        .headers_mut()
        .insert("request-id", HeaderValue::from_static("req_011CFakeReelay000000000"));
    response
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// A version header the API takes: a date, `YYYY-MM-DD`, from the first one on.
fn known_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    matches!(parts[..], [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2)) && version >= "2023-01-01"
}

/// The model a request names, or the refusal the real API answers it with.
#[allow(clippy::result_large_err)] // The refusal is the answer, sent as it is.
fn check(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<String, Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    // The key in `x-api-key`, or as a bearer token (what newer official clients send).
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    match header("x-api-key").or(bearer) {
        None | Some("") => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            ))
        }
        Some(key) if key != shared.key => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            ))
        }
        Some(_) => {}
    }
    match header("anthropic-version") {
        None | Some("") => return Err(invalid("anthropic-version: header is required")),
        Some(v) if !known_version(v) => {
            return Err(invalid(&format!("anthropic-version: \"{v}\" is not a valid version")))
        }
        Some(_) => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid(
            "There was an issue with your request body: it is not valid JSON",
        ));
    };
    if !body.is_object() {
        return Err(invalid("Input should be a valid dictionary"));
    }
    for required in ["model", "max_tokens", "messages"] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(invalid(&format!("{required}: Field required")));
        }
    }
    let Some(model) = body["model"].as_str() else {
        return Err(invalid("model: Input should be a valid string"));
    };
    match body["max_tokens"].as_i64() {
        None => return Err(invalid("max_tokens: Input should be a valid integer")),
        Some(n) if n < 1 => return Err(invalid("max_tokens: Input should be greater than or equal to 1")),
        Some(_) => {}
    }
    let Some(messages) = body["messages"].as_array() else {
        return Err(invalid("messages: Input should be a valid list"));
    };
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(invalid(&format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(invalid(if i == 0 {
                "messages: first message must use the \"user\" role"
            } else {
                "messages: roles must alternate between \"user\" and \"assistant\""
            }));
        }
        let content_ok = match &message["content"] {
            Value::String(s) => !s.is_empty(),
            Value::Array(blocks) => !blocks.is_empty() && blocks.iter().all(|b| b["type"].is_string()),
            _ => false,
        };
        if !content_ok {
            return Err(invalid(&format!(
                "messages.{i}.content: Input should be a non-empty string or a list of content blocks"
            )));
        }
    }
    match &body["system"] {
        Value::Null | Value::String(_) => {}
        Value::Array(blocks) if blocks.iter().all(|b| b["type"] == "text" && b["text"].is_string()) => {}
        _ => {
            return Err(invalid(
                "system: Input should be a valid string or a list of text blocks",
            ))
        }
    }
    if let Some(t) = body.get("temperature").filter(|t| !t.is_null()) {
        if !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)) {
            return Err(invalid("temperature: Input should be less than or equal to 1"));
        }
    }
    if body["stream"] == true {
        return Err(invalid("stream: this fake answers whole, not as events"));
    }
    if !MODELS.contains(&model) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!("model: {model}"),
        ));
    }
    Ok(model.to_string())
}

/// The script's next answer, in Anthropic's shape.
fn answer(shared: &Shared, model: &str, body: &[u8], answer: Answer) -> Response {
    let Some((text, cut_off)) = answer.content() else {
        return scripted_error(&answer);
    };
    let content = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "text", "text": text}])
    };
    let mut response = Json(json!({
        "id": shared.id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": if cut_off { "max_tokens" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {
            "input_tokens": tokens(&String::from_utf8_lossy(body)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": tokens(&text),
            "service_tier": "standard",
        },
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert("request-id", HeaderValue::from_str(&shared.id("req_011C", 20)).unwrap());
    headers.insert(
        "anthropic-organization-id",
        HeaderValue::from_static("00000000-0000-4000-8000-reelayfake00"),
    );
    response
}

/// An error the script asks for, with the body Anthropic sends for that status.
fn scripted_error(answer: &Answer) -> Response {
    let rate_limited = || {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 30,000 input tokens \
             per minute. Please try again later.",
        )
    };
    match *answer {
        Answer::RateLimited(secs) => with_retry_after(rate_limited(), secs),
        Answer::Status(429) => rate_limited(),
        Answer::Stall => scripted_error(&Answer::Status(500)),
        Answer::Status(code) => {
            let status = StatusCode::from_u16(code).expect("a status code");
            let (kind, message) = match code {
                400 => ("invalid_request_error", "The fake was told to refuse this request."),
                401 => ("authentication_error", "invalid x-api-key"),
                403 => (
                    "permission_error",
                    "Your API key does not have permission to use the specified resource.",
                ),
                404 => ("not_found_error", "The requested resource could not be found."),
                413 => (
                    "request_too_large",
                    "Request exceeds the maximum allowed number of bytes.",
                ),
                529 => ("overloaded_error", "Overloaded"),
                500..=599 => ("api_error", "Internal server error"),
                _ => ("invalid_request_error", "The fake was told to refuse this request."),
            };
            error(status, kind, message)
        }
        _ => unreachable!("content answers are not errors"),
    }
}
