//! What the fakes of the code-writing model APIs share (tests/fakes/openai.rs,
//! tests/fakes/anthropic.rs): the script of answers a test gives them, one per request that
//! reaches "the model" (the last repeating), the record of every request, and serving on a
//! free loopback port until dropped.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// What the fake answers to one request that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// This code, in a ```python fence between a line of prose, as models write.
    Code(String),
    /// This text as the whole answer (bare code, prose, nothing).
    Text(String),
    /// This text, stopped by the token limit (`finish_reason: length`, `stop_reason: max_tokens`).
    CutOff(String),
    /// This error status, with the API's own body for it.
    Status(u16),
    /// 429 with `Retry-After` in whole seconds, and the API's rate-limit body.
    RateLimited(u64),
    /// Nothing for [`STALL`], then a 500: a client's timeout runs out first. The request is
    /// recorded only when answered, so one whose client gave up is never recorded.
    Stall,
}

/// How long a [`Answer::Stall`] keeps a request waiting.
pub const STALL: std::time::Duration = std::time::Duration::from_secs(60);

impl Answer {
    /// The content the model "wrote", for the answers that are not errors: `(text, cut off)`.
    pub fn content(&self) -> Option<(String, bool)> {
        match self {
            Answer::Code(code) => Some((
                format!(
                    "Here is the scene:\n\n```python\n{}\n```\n\nIt ends with a short wait.",
                    code.trim_end()
                ),
                false,
            )),
            Answer::Text(text) => Some((text.clone(), false)),
            Answer::CutOff(text) => Some((text.clone(), true)),
            Answer::Status(_) | Answer::RateLimited(_) | Answer::Stall => None,
        }
    }
}

/// A request the fake received, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    /// `Null` when the body was not JSON.
    pub body: Value,
    pub status: u16,
    /// Answered from the script (it passed auth and validation).
    pub scripted: bool,
}

impl Recorded {
    /// Every piece of text the request carried to the model (system prompt included), joined.
    pub fn prompt_text(&self) -> String {
        let mut texts = Vec::new();
        collect_text(&self.body["system"], &mut texts);
        if let Some(messages) = self.body["messages"].as_array() {
            for message in messages {
                collect_text(&message["content"], &mut texts);
            }
        }
        texts.join("\n")
    }

    /// The system prompt: Anthropic's `system`, or OpenAI's system message.
    pub fn system(&self) -> String {
        let mut texts = Vec::new();
        collect_text(&self.body["system"], &mut texts);
        for message in self.body["messages"].as_array().into_iter().flatten() {
            if message["role"] == "system" || message["role"] == "developer" {
                collect_text(&message["content"], &mut texts);
            }
        }
        texts.join("\n")
    }

    /// The last user message.
    pub fn user(&self) -> String {
        let mut texts = Vec::new();
        if let Some(last) = self.body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        {
            collect_text(&last["content"], &mut texts);
        }
        texts.join("\n")
    }
}

/// A message's content: a string, or a list of `{type: "text", text}` parts.
fn collect_text(content: &Value, into: &mut Vec<String>) {
    match content {
        Value::String(s) => into.push(s.clone()),
        Value::Array(parts) => into.extend(parts.iter().filter_map(|p| p["text"].as_str().map(String::from))),
        _ => {}
    }
}

/// What a fake's handlers share.
pub struct Shared {
    /// The one key the fake accepts.
    pub key: String,
    script: Vec<Answer>,
    played: Mutex<usize>,
    requests: Mutex<Vec<Recorded>>,
    ids: AtomicU64,
}

impl Shared {
    /// The script's next answer (the last one repeats), once a [`Answer::Stall`] has waited.
    pub async fn next(&self) -> Answer {
        let answer = {
            let mut played = self.played.lock().unwrap();
            let answer = self.script[(*played).min(self.script.len() - 1)].clone();
            *played += 1;
            answer
        };
        if answer == Answer::Stall {
            tokio::time::sleep(STALL).await;
        }
        answer
    }

    /// Records a request and the answer it got (`scripted`: from the script).
    pub fn record(&self, path: &str, headers: &HeaderMap, body: &[u8], response: &Response, scripted: bool) {
        self.requests.lock().unwrap().push(Recorded {
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body: serde_json::from_slice(body).unwrap_or_default(),
            status: response.status().as_u16(),
            scripted,
        });
    }

    /// A fresh id with `prefix` and `len` characters after it, as the APIs make them.
    pub fn id(&self, prefix: &str, len: usize) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let digits = format!("{nanos:x}{n:08x}");
        let tail: String = digits.chars().rev().cycle().take(len).collect();
        format!("{prefix}{tail}")
    }
}

/// A fake model API on loopback, until dropped.
pub struct FakeLlm {
    /// What a client takes as its base URL (OpenAI's ends in `/v1`, Anthropic's does not).
    pub base_url: String,
    /// The key it accepts.
    pub key: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLlm {
    /// Serves `routes` with `script` (at least one answer) and `key`; the base URL is the
    /// server's address followed by `base_path`.
    pub async fn serve(routes: Router<Arc<Shared>>, key: &str, script: Vec<Answer>, base_path: &str) -> FakeLlm {
        assert!(!script.is_empty(), "a fake needs at least one answer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}{base_path}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            key: key.to_string(),
            script,
            played: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            ids: AtomicU64::new(0),
        });
        let router = routes.with_state(shared.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeLlm {
            base_url,
            key: key.to_string(),
            shared,
            server,
        }
    }

    /// Every request received, refused ones included, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests that got past auth and validation and were answered from the script.
    pub fn played(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.scripted).collect()
    }
}

/// About four characters a token, as the APIs count English.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Adds `Retry-After: secs` to `response`.
pub fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
