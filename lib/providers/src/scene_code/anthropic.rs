//! Anthropic's Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`, the brief as `system` and one user message, `max_tokens` required; the
//! code is the answer's `text` content blocks. Errors come as
//! `{"type": "error", "error": {"type", "message"}}`; 529 means overloaded.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

use reelay_core::plan::Secret;
use reelay_core::ports::ProviderError;

use super::{field, ChatApi, ChatSettings, Reply, SceneCodeProvider, ScenePrompt, Stop};
use crate::tts::key_header;

/// The provider's name in plans.
pub const NAME: &str = "anthropic";
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// The API version these requests and answers are written against.
pub const API_VERSION: &str = "2023-06-01";
/// A scene is a few thousand tokens; the rest is room.
const DEFAULT_MAX_TOKENS: u32 = 8192;

pub struct Anthropic;

pub type AnthropicProvider = SceneCodeProvider<Anthropic>;

impl ChatSettings {
    /// Anthropic's API and default model, with `key`.
    pub fn anthropic(key: Option<Secret>) -> ChatSettings {
        ChatSettings {
            base_url: DEFAULT_BASE_URL.into(),
            key,
            models: vec![DEFAULT_MODEL.into()],
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            // Left to the model: newer API versions (and models) take no sampling settings.
            temperature: None,
            timeout: Duration::from_secs(300),
        }
    }
}

impl ChatApi for Anthropic {
    const NAME: &'static str = NAME;

    fn request(
        client: &reqwest::Client,
        settings: &ChatSettings,
        model: &str,
        prompt: &ScenePrompt,
        key: &Secret,
    ) -> Result<RequestBuilder, ProviderError> {
        let mut body = json!({
            "model": model,
            "max_tokens": settings.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
        });
        if let Some(t) = settings.temperature {
            body["temperature"] = json!(t);
        }
        let mut headers = key_header("x-api-key", key, NAME)?;
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        let url = format!("{}/v1/messages", settings.base_url.trim_end_matches('/'));
        Ok(client.post(url).headers(headers).json(&body))
    }

    fn reply(body: &Value) -> Result<Reply, ProviderError> {
        let blocks = field(body, "/content", NAME)?
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        let stop = match body["stop_reason"].as_str() {
            Some("max_tokens" | "model_context_window_exceeded") => Stop::CutOff,
            Some("refusal") => Stop::Declined("it refused".into()),
            _ => Stop::Done,
        };
        Ok(Reply {
            text: text.concat(),
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_message_with_a_system_prompt() {
        let client = reqwest::Client::new();
        let mut settings = ChatSettings::anthropic(None);
        settings.base_url = "http://127.0.0.1:9/".into();
        let prompt = ScenePrompt {
            system: "sys".into(),
            user: "usr".into(),
        };
        let request = Anthropic::request(&client, &settings, "claude-sonnet-4-5", &prompt, &Secret::new("sk-ant"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(request.url().as_str(), "http://127.0.0.1:9/v1/messages");
        let headers = request.headers();
        assert_eq!(headers["x-api-key"], "sk-ant");
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 8192, "system": "sys",
                "messages": [{"role": "user", "content": "usr"}]})
        );
    }

    #[test]
    fn the_reply_is_the_text_blocks() {
        let answer = |stop: &str| {
            json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [
                {"type": "text", "text": "```python\n"}, {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "code\n```"}], "stop_reason": stop})
        };
        let reply = Anthropic::reply(&answer("end_turn")).unwrap();
        assert_eq!((reply.text.as_str(), reply.stop), ("```python\ncode\n```", Stop::Done));
        assert_eq!(Anthropic::reply(&answer("max_tokens")).unwrap().stop, Stop::CutOff);
        assert!(matches!(
            Anthropic::reply(&answer("refusal")).unwrap().stop,
            Stop::Declined(_)
        ));
        assert!(matches!(
            Anthropic::reply(&json!({"type": "message"})),
            Err(ProviderError::Retryable { .. })
        ));
    }
}
