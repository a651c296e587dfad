//! OpenAI's Chat Completions, or any server that speaks it: `POST {base}/chat/completions`
//! with `Authorization: Bearer <key>`, the brief as a system and a user message; the code is
//! `choices[0].message.content`. Errors come as `{"error": {"message", "type", "param", "code"}}`.

use std::time::Duration;

use reqwest::RequestBuilder;
use serde_json::{json, Value};

use reelay_core::plan::Secret;
use reelay_core::ports::ProviderError;

use super::{field, ChatApi, ChatSettings, Reply, SceneCodeProvider, ScenePrompt, Stop};

/// The provider's name in plans.
pub const NAME: &str = "openai";
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4.1";

pub struct OpenAi;

pub type OpenAiProvider = SceneCodeProvider<OpenAi>;

impl ChatSettings {
    /// OpenAI's API and default model, with `key`.
    pub fn openai(key: Option<Secret>) -> ChatSettings {
        ChatSettings {
            base_url: DEFAULT_BASE_URL.into(),
            key,
            models: vec![DEFAULT_MODEL.into()],
            // The model's own output limit: a scene is far below it.
            max_tokens: None,
            temperature: Some(0.2),
            timeout: Duration::from_secs(300),
        }
    }
}

impl ChatApi for OpenAi {
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
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        });
        if let Some(t) = settings.temperature {
            body["temperature"] = json!(t);
        }
        // `max_tokens` is refused by OpenAI's reasoning models; this name is taken by all.
        if let Some(n) = settings.max_tokens {
            body["max_completion_tokens"] = json!(n);
        }
        let url = format!("{}/chat/completions", settings.base_url.trim_end_matches('/'));
        Ok(client.post(url).bearer_auth(key.expose()).json(&body))
    }

    fn reply(body: &Value) -> Result<Reply, ProviderError> {
        let choice = field(body, "/choices/0", NAME)?;
        let message = &choice["message"];
        if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.is_empty()) {
            return Ok(Reply {
                text: String::new(),
                stop: Stop::Declined(refusal.to_string()),
            });
        }
        let stop = match choice["finish_reason"].as_str() {
            Some("length") => Stop::CutOff,
            Some("content_filter") => Stop::Declined("its content filter stopped the answer".into()),
            _ => Stop::Done,
        };
        Ok(Reply {
            text: message["content"].as_str().unwrap_or_default().to_string(),
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_chat_completion() {
        let client = reqwest::Client::new();
        let mut settings = ChatSettings::openai(None);
        settings.base_url = "http://127.0.0.1:9/v1/".into();
        settings.max_tokens = Some(4000);
        let prompt = ScenePrompt {
            system: "sys".into(),
            user: "usr".into(),
        };
        let request = OpenAi::request(&client, &settings, "gpt-4.1", &prompt, &Secret::new("sk-1"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(request.url().as_str(), "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(request.headers()["authorization"], "Bearer sk-1");
        assert!(request.headers()["authorization"].is_sensitive());
        let body: Value = serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-4.1", "temperature": 0.2, "max_completion_tokens": 4000, "messages": [
                {"role": "system", "content": "sys"}, {"role": "user", "content": "usr"}]})
        );
    }

    #[test]
    fn the_reply_is_the_first_choices_content() {
        let answer = |finish: &str| {
            json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "code", "refusal": null},
                "finish_reason": finish}]})
        };
        let reply = OpenAi::reply(&answer("stop")).unwrap();
        assert_eq!((reply.text.as_str(), reply.stop), ("code", Stop::Done));
        assert_eq!(OpenAi::reply(&answer("length")).unwrap().stop, Stop::CutOff);
        assert!(matches!(
            OpenAi::reply(&answer("content_filter")).unwrap().stop,
            Stop::Declined(_)
        ));
        let refused =
            json!({"choices": [{"message": {"content": null, "refusal": "I can't"}, "finish_reason": "stop"}]});
        assert_eq!(OpenAi::reply(&refused).unwrap().stop, Stop::Declined("I can't".into()));
        assert!(matches!(
            OpenAi::reply(&json!({"choices": []})),
            Err(ProviderError::Retryable { .. })
        ));
    }
}
