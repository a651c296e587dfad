//! Code-writing LLM providers for the code-to-video workflow. A `generateSceneCode` job's brief
//! (`reelay_core::scenes::SceneBrief`) becomes a system prompt and a user message
//! (`prompt.rs`); a hosted model answers with a Manim scene, OpenAI-compatible Chat Completions
//! (`openai.rs`) or Anthropic's Messages (`anthropic.rs`); the code read out of the answer is
//! the job's output, inline as a `data:text/x-python` URI. Like text-to-speech, a job is done
//! when its submit returns: there is nothing to poll, cancel or call back.

pub mod anthropic;
pub mod openai;
mod prompt;

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    Submission,
};
use reelay_core::scenes::SceneBrief;

use crate::http::{error_message, HttpClient};

pub use anthropic::{Anthropic, AnthropicProvider};
pub use openai::{OpenAi, OpenAiProvider};
pub use prompt::{extract_code, system_prompt, user_message, ScenePrompt};

/// The content type of the code a job outputs.
pub const CODE_TYPE: &str = "text/x-python";

/// Who writes a workflow's scene code: a hosted model, or `local`'s offline templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneWriter {
    Local,
    OpenAi,
    Anthropic,
}

impl SceneWriter {
    pub const ALL: [SceneWriter; 3] = [SceneWriter::Local, SceneWriter::OpenAi, SceneWriter::Anthropic];

    /// Its provider's name.
    pub fn name(self) -> &'static str {
        match self {
            SceneWriter::Local => "local",
            SceneWriter::OpenAi => openai::NAME,
            SceneWriter::Anthropic => anthropic::NAME,
        }
    }

    pub fn parse(name: &str) -> Option<SceneWriter> {
        Self::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// How one code-writing provider is reached.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// The API's base: OpenAI's includes `/v1`, Anthropic's does not (as their clients take it).
    pub base_url: String,
    /// The account's key; a job's own key wins over it.
    pub key: Option<Secret>,
    /// The models jobs may name; the first is the one that writes scene code.
    pub models: Vec<String>,
    /// The most tokens one answer may take (Anthropic requires one; `None` for OpenAI leaves
    /// it to the model's own limit).
    pub max_tokens: Option<u32>,
    /// Low where the API takes one (code is wanted, not variety); `None`: the model's own.
    pub temperature: Option<f64>,
    /// How long one call may take in all. A non-streamed answer arrives whole at the end, so
    /// no gap-between-reads timeout can apply; this stays under the engine's job lease.
    pub timeout: Duration,
}

impl ChatSettings {
    /// The model that writes scene code.
    pub fn model(&self) -> &str {
        self.models.first().map_or("", String::as_str)
    }
}

/// How long one model's job may wait in all (a few calls, with retries).
const DEADLINE: Duration = Duration::from_secs(1800);

/// One model's answer, as the shared code needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub stop: Stop,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Done,
    /// At the token limit: the code is cut short.
    CutOff,
    /// The model declined (a content filter, a refusal); the reason as it gave it.
    Declined(String),
}

/// One chat API: how a prompt becomes its request and its answer a [`Reply`].
pub trait ChatApi: Send + Sync + 'static {
    /// The provider's name in plans and messages.
    const NAME: &'static str;
    /// The request for `prompt` to `model`, on `client`.
    fn request(
        client: &reqwest::Client,
        settings: &ChatSettings,
        model: &str,
        prompt: &ScenePrompt,
        key: &Secret,
    ) -> Result<RequestBuilder, ProviderError>;
    /// The text and stop reason of a successful answer's body.
    fn reply(body: &Value) -> Result<Reply, ProviderError>;
}

/// A [`ChatApi`] as the engine's `Provider`.
pub struct SceneCodeProvider<A> {
    settings: ChatSettings,
    infos: Vec<ModelInfo>,
    /// The calls, with no read timeout (see `ChatSettings::timeout`).
    client: reqwest::Client,
    /// Classifies the calls' transport failures; reads the `data:` outputs.
    http: HttpClient,
    api: std::marker::PhantomData<fn() -> A>,
}

impl<A: ChatApi> SceneCodeProvider<A> {
    pub fn new(settings: ChatSettings) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(settings.timeout)
            .user_agent(concat!("reelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Fatal(format!("cannot build an HTTP client: {e}")))?;
        Ok(SceneCodeProvider {
            infos: settings.models.iter().map(|id| model_info(id)).collect(),
            settings,
            client,
            http: HttpClient::new()?,
            api: std::marker::PhantomData,
        })
    }

    pub fn settings(&self) -> &ChatSettings {
        &self.settings
    }

    /// Asks `model` for the brief's scene; the code it answered.
    pub async fn write(&self, model: &str, brief: &SceneBrief, key: &Secret) -> Result<String, ProviderError> {
        let prompt = ScenePrompt::of(brief);
        let request = A::request(&self.client, &self.settings, model, &prompt, key)?;
        let what = format!("{} {model}", A::NAME);
        let answer = self.http.answer(request, &what).await.map_err(|e| match e {
            // An LLM call that got no answer has nothing to keep: no job goes on at the
            // provider that a later look could adopt, so asking again is the only way on.
            ProviderError::Uncertain(message) => ProviderError::Retryable {
                message,
                retry_after: None,
            },
            other => other,
        })?;
        if !answer.status.is_success() {
            return Err(refusal(A::NAME, answer.status, answer.retry_after, &answer.body));
        }
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Retryable {
            message: format!("{what}: unreadable answer: {e}"),
            retry_after: None,
        })?;
        let reply = A::reply(&body)?;
        match reply.stop {
            Stop::Done => extract_code(&reply.text, &brief.class_name, A::NAME),
            // Not retried: the same request would most likely be cut at the same place,
            // and be paid for again each time.
            Stop::CutOff => Err(ProviderError::Fatal(format!(
                "{what} was cut off at its token limit before the code of `{}` ended{}",
                brief.class_name,
                self.settings
                    .max_tokens
                    .map_or_else(String::new, |n| format!(" ({n} tokens)")),
            ))),
            Stop::Declined(why) => Err(ProviderError::Fatal(format!(
                "{what} declined to write the scene: {why}"
            ))),
        }
    }
}

fn model_info(id: &str) -> ModelInfo {
    ModelInfo {
        id: id.to_string(),
        operations: vec![Operation::GenerateSceneCode],
        output: MediaKind::Code,
        // Never waited on (the submit answers); a bound all the same.
        completion: Completion::Polling,
        deadline: DEADLINE,
    }
}

/// A non-2xx answer as the engine should treat it. Retried: 408, 409 (a conflict that passes),
/// 5xx and Anthropic's 529 (overloaded); waited out: 429, unless the account is out of money;
/// any other refusal is for good, with the provider's own message.
pub fn refusal(provider: &str, status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> ProviderError {
    let text = String::from_utf8_lossy(body);
    let message = error_message(&text);
    let code = status.as_u16();
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    match code {
        401 => ProviderError::Fatal(format!("{provider} refused the key (401): {message}")),
        // OpenAI answers an exhausted quota with a 429 that no wait ends.
        429 if json.pointer("/error/code").and_then(Value::as_str) == Some("insufficient_quota") => {
            ProviderError::Fatal(format!("{provider}: 429 {message}"))
        }
        429 => ProviderError::RateLimited { retry_after },
        408 | 409 | 500..=599 => ProviderError::Retryable {
            message: format!("{provider}: {code} {message}"),
            retry_after,
        },
        _ => ProviderError::Fatal(format!("{provider}: {code} {message}")),
    }
}

/// The code as the job's output URL.
pub fn code_url(code: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(code);
    format!("data:{CODE_TYPE};base64,{data}")
}

/// A body's field that must be there.
fn field<'a>(body: &'a Value, pointer: &str, provider: &str) -> Result<&'a Value, ProviderError> {
    body.pointer(pointer).ok_or_else(|| ProviderError::Retryable {
        message: format!("{provider}: an answer without `{pointer}`"),
        retry_after: None,
    })
}

#[async_trait]
impl<A: ChatApi> Provider for SceneCodeProvider<A> {
    fn name(&self) -> &str {
        A::NAME
    }

    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let model = &request.params.model_id;
        if self.model(model).is_none() {
            return Err(ProviderError::Fatal(format!(
                "{} has no model `{model}` (configured: {})",
                A::NAME,
                self.settings.models.join(", ")
            )));
        }
        if request.operation != Operation::GenerateSceneCode {
            return Err(ProviderError::Fatal(format!(
                "{} writes scene code only, not `{}`",
                A::NAME,
                request.operation
            )));
        }
        let brief = SceneBrief::from_params(&request.params).map_err(ProviderError::Fatal)?;
        let key = request
            .api_key
            .as_ref()
            .or(self.settings.key.as_ref())
            .ok_or_else(|| ProviderError::Fatal(format!("no {} key: configure one on the server", A::NAME)))?;
        let code = self.write(model, &brief, key).await?;
        Ok(Submission {
            // The provider keeps no job to refer to later: the token names it.
            provider_job_id: request.token,
            finished: Some(ProviderStatus::Succeeded {
                output_url: code_url(&code),
                content_type: Some(CODE_TYPE.to_string()),
            }),
        })
    }

    /// Nothing to find: the code comes with the submit's answer and is kept nowhere.
    async fn find(&self, _request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        Ok(None)
    }

    /// A submit whose answer was lost may be asked again: nothing goes on at the provider,
    /// and the only price of a second call is its tokens.
    fn reconciles(&self) -> bool {
        true
    }

    async fn status(&self, _provider_job_id: &str, _key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        Err(ProviderError::Fatal(format!(
            "{} answers inline, with the submit: there is nothing to poll",
            A::NAME
        )))
    }

    /// A finished call has nothing left to stop.
    async fn cancel(&self, _provider_job_id: &str, _key: Option<&Secret>) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        if !output_url.starts_with("data:") {
            return Err(ProviderError::Fatal(format!(
                "{} outputs are inline code, not {output_url}",
                A::NAME
            )));
        }
        self.http.download(output_url, HeaderMap::new()).await
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        Err(CallbackError::Unauthorized(format!(
            "{} does not call back: it answers with the submit",
            A::NAME
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(code: u16, body: &str) -> ProviderError {
        let status = StatusCode::from_u16(code).unwrap();
        refusal("openai", status, Some(Duration::from_secs(3)), body.as_bytes())
    }

    #[test]
    fn answers_are_classified_for_the_engine() {
        let openai = r#"{"error":{"message":"Incorrect API key provided: sk-wr***ng.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        match classify(401, openai) {
            ProviderError::Fatal(m) => assert_eq!(
                m,
                "openai refused the key (401): Incorrect API key provided: sk-wr***ng."
            ),
            other => panic!("{other:?}"),
        }
        let anthropic =
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        match classify(400, anthropic) {
            ProviderError::Fatal(m) => assert_eq!(m, "openai: 400 max_tokens: Field required"),
            other => panic!("{other:?}"),
        }
        for fatal in [403, 404, 413, 422] {
            assert!(matches!(classify(fatal, "{}"), ProviderError::Fatal(_)), "{fatal}");
        }
        match classify(429, "{}") {
            ProviderError::RateLimited { retry_after } => assert_eq!(retry_after, Some(Duration::from_secs(3))),
            other => panic!("{other:?}"),
        }
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(matches!(classify(429, quota), ProviderError::Fatal(m) if m.contains("quota")));
        for passing in [408, 409, 500, 503, 529] {
            assert!(
                matches!(classify(passing, "{}"), ProviderError::Retryable { .. }),
                "{passing}"
            );
        }
    }

    #[test]
    fn code_travels_as_a_python_data_uri() {
        assert_eq!(code_url("x = 1\n"), "data:text/x-python;base64,eCA9IDEK");
        let info = model_info("gpt-4.1");
        assert_eq!(
            (info.operations, info.output),
            (vec![Operation::GenerateSceneCode], MediaKind::Code)
        );
    }
}
