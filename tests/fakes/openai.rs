//! A fake OpenAI on loopback, speaking Chat Completions: `POST /v1/chat/completions` with
//! `Authorization: Bearer <key>`. It checks what the real API checks (the key; a JSON body with
//! `model` and a non-empty `messages` of known roles; `temperature` from 0 to 2; token limits
//! that are positive whole numbers; models it knows) and refuses with OpenAI's own bodies,
//! `{"error": {"message", "type", "param", "code"}}`. A request that passes is answered by the
//! test's script (tests/fakes/llm.rs) in OpenAI's shape: a `chatcmpl-` id, one choice with
//! its `finish_reason`, and `usage`.
//!
//! `start(script)` serves it; its `base_url` ends in `/v1`, as OpenAI's clients take it.

#![allow(dead_code)] // Each test binary uses part of it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::llm::{now_secs, tokens, with_retry_after, Answer, FakeLlm, Shared};

/// The key the fake accepts.
pub const KEY: &str = "sk-proj-reelay-fake-0123456789abcdef";
/// Models it knows; any other is "not found".
pub const MODELS: [&str; 6] = ["gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "gpt-5", "o4-mini"];
const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// Serves a fake OpenAI that answers with `script`, one answer a request, the last repeating.
pub async fn start(script: Vec<Answer>) -> FakeLlm {
    let routes = Router::new().route("/v1/chat/completions", post(completions));
    FakeLlm::serve(routes, KEY, script, "/v1").await
}

async fn completions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (response, scripted) = match check(&shared, &headers, &body) {
        Ok(model) => (answer(&shared, &model, &body, shared.next().await), true),
        Err(refused) => (refused, false),
    };
    shared.record("/v1/chat/completions", &headers, &body, &response, scripted);
    response
}

/// OpenAI's error body.
fn error(status: StatusCode, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let mut response = (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": param, "code": code}})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_static("req_fake0000000000000000000000"),
    );
    response
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error(StatusCode::BAD_REQUEST, message, "invalid_request_error", param, code)
}

/// `sk-pr…cdef`-style: how OpenAI shows a key it refused.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// The model a request names, or the refusal the real API answers it with.
#[allow(clippy::result_large_err)] // The refusal is the answer, sent as it is.
fn check(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<String, Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        None | Some("") => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an Authorization \
                 header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password \
                 field (with blank username) if you're accessing the API from your browser and are \
                 prompted for a username. You can obtain an API key from \
                 https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
                None,
            ))
        }
        Some(key) if key != shared.key => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    masked(key)
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ))
        }
        Some(_) => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
             using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was \
             sent was not valid JSON.)",
            None,
            None,
        ));
    };
    let Some(model) = body["model"].as_str().filter(|m| !m.is_empty()) else {
        return Err(invalid("you must provide a model parameter", None, None));
    };
    let Some(messages) = body.get("messages") else {
        return Err(invalid(
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        ));
    };
    let Some(messages) = messages.as_array() else {
        return Err(invalid(
            &format!(
                "Invalid type for 'messages': expected an array, but got {} instead.",
                kind_of(messages)
            ),
            Some("messages"),
            Some("invalid_type"),
        ));
    };
    if messages.is_empty() {
        return Err(invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an \
             empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(invalid(
                &format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', \
                     'function', 'tool', and 'developer'."
                ),
                Some(&format!("messages[{i}].role")),
                Some("invalid_value"),
            ));
        }
        if message.get("content").is_none() && role != "assistant" {
            return Err(invalid(
                &format!("Missing required parameter: 'messages[{i}].content'."),
                Some(&format!("messages[{i}].content")),
                Some("missing_required_parameter"),
            ));
        }
    }
    if let Some(t) = body.get("temperature").filter(|t| !t.is_null()) {
        match t.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => {}
            Some(t) => {
                return Err(invalid(
                    &format!(
                    "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."
                ),
                    Some("temperature"),
                    Some("decimal_above_max_value"),
                ))
            }
            None => {
                return Err(invalid(
                    &format!(
                        "Invalid type for 'temperature': expected a decimal, but got {} instead.",
                        kind_of(t)
                    ),
                    Some("temperature"),
                    Some("invalid_type"),
                ))
            }
        }
    }
    for limit in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = body.get(limit).filter(|n| !n.is_null()) {
            if n.as_u64().is_none_or(|n| n < 1) {
                return Err(invalid(
                    &format!("Invalid '{limit}': expected a positive integer, but got {n} instead."),
                    Some(limit),
                    Some("invalid_value"),
                ));
            }
        }
    }
    if body["stream"] == true {
        return Err(invalid(
            "this fake answers whole: `stream` is not supported",
            Some("stream"),
            None,
        ));
    }
    if !MODELS.contains(&model) {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ));
    }
    Ok(model.to_string())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The script's next answer, in OpenAI's shape.
fn answer(shared: &Shared, model: &str, body: &[u8], answer: Answer) -> Response {
    let Some((content, cut_off)) = answer.content() else {
        return scripted_error(model, &answer);
    };
    let prompt_tokens = tokens(&String::from_utf8_lossy(body));
    let completion_tokens = tokens(&content);
    let mut response = Json(json!({
        "id": shared.id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": if cut_off { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_reelayfake",
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert("x-request-id", HeaderValue::from_str(&shared.id("req_", 32)).unwrap());
    headers.insert("openai-processing-ms", HeaderValue::from_static("812"));
    response
}

/// An error the script asks for, with the body OpenAI sends for that status.
fn scripted_error(model: &str, answer: &Answer) -> Response {
    let rate_limited = |status| {
        error(
            status,
            &format!(
                "Rate limit reached for {model} in organization org-reelayfake on tokens per min \
                 (TPM): Limit 30000, Used 30000, Requested 1200. Please try again in 2.4s."
            ),
            "tokens",
            None,
            Some("rate_limit_exceeded"),
        )
    };
    match *answer {
        Answer::RateLimited(secs) => with_retry_after(rate_limited(StatusCode::TOO_MANY_REQUESTS), secs),
        Answer::Stall => scripted_error(model, &Answer::Status(500)),
        Answer::Status(code) => {
            let status = StatusCode::from_u16(code).expect("a status code");
            match code {
                429 => rate_limited(status),
                500 => error(
                    status,
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                    None,
                ),
                502..=504 => error(
                    status,
                    "The engine is currently overloaded, please try again later.",
                    "server_error",
                    None,
                    None,
                ),
                400..=499 => error(
                    status,
                    &format!("The fake was told to refuse with {code}."),
                    "invalid_request_error",
                    None,
                    None,
                ),
                _ => error(status, "Internal error.", "server_error", None, None),
            }
        }
        _ => unreachable!("content answers are not errors"),
    }
}
