//! A scene-code writer for engine tests: provider `writer`, model `code`, which answers the
//! n-th code request with the n-th scripted answer (the last one again once they run out)
//! and keeps every brief it was sent, so a test can read the feedback each round carried.

use std::sync::Mutex;

use async_trait::async_trait;

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    Submission, DEFAULT_DEADLINE,
};
use reelay_core::scenes::SceneBrief;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Written {
    Code(String),
    /// A refusal for good (a 401, a 400).
    Fatal(String),
    /// A passing failure (a 500, a timeout).
    Passing(String),
}

pub struct ScriptedWriter {
    models: Vec<ModelInfo>,
    script: Vec<Written>,
    briefs: Mutex<Vec<SceneBrief>>,
}

impl ScriptedWriter {
    pub fn new(script: Vec<Written>) -> ScriptedWriter {
        ScriptedWriter {
            models: vec![ModelInfo {
                id: "code".into(),
                operations: vec![Operation::GenerateSceneCode],
                output: MediaKind::Code,
                completion: Completion::Polling,
                deadline: DEFAULT_DEADLINE,
            }],
            script,
            briefs: Mutex::new(Vec::new()),
        }
    }

    /// The briefs of every request so far, in order.
    pub fn briefs(&self) -> Vec<SceneBrief> {
        self.briefs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Provider for ScriptedWriter {
    fn name(&self) -> &str {
        "writer"
    }

    fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let brief = SceneBrief::from_params(&request.params).map_err(ProviderError::Fatal)?;
        let n = {
            let mut briefs = self.briefs.lock().unwrap_or_else(|p| p.into_inner());
            briefs.push(brief);
            briefs.len()
        };
        let answer = self.script.get(n - 1).or(self.script.last()).cloned();
        match answer {
            Some(Written::Code(code)) => Ok(Submission {
                provider_job_id: format!("answer-{n}"),
                finished: Some(ProviderStatus::Succeeded {
                    output_url: format!("data:text/x-python,{code}"),
                    content_type: Some("text/x-python".into()),
                }),
            }),
            Some(Written::Fatal(message)) => Err(ProviderError::Fatal(message)),
            Some(Written::Passing(message)) => Err(ProviderError::Retryable {
                message,
                retry_after: None,
            }),
            None => Err(ProviderError::Fatal("nothing scripted".into())),
        }
    }

    async fn find(&self, _request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        Ok(None)
    }

    /// Its answers are inline: a retry with nothing recorded may simply ask again.
    fn reconciles(&self) -> bool {
        true
    }

    async fn status(&self, _id: &str, _key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        Err(ProviderError::Fatal("the writer answers inline".into()))
    }

    async fn cancel(&self, _id: &str, _key: Option<&Secret>) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The code after the comma, as it was scripted.
    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        let code = output_url.split_once(',').map_or("", |(_, code)| code).to_string();
        Ok(Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(code))])))
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        Err(CallbackError::Unauthorized("the writer never calls back".into()))
    }
}
