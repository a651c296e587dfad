//! The [`SceneRunner`] port on the scene-renderer function: the job runner's zip has no room
//! for Manim (Python, cairo, pango: about 1 GB), so it invokes the function's container image,
//! which runs the same sandbox as the embedded node.
//!
//! * Each call is one synchronous `Invoke` (`RequestResponse`) carrying [`SceneRequest`];
//!   the answer's `fault` gives [`SceneError::Code`] or [`SceneError::Machine`]. A function
//!   error (a crash, a timeout, out of memory) and a failed invoke are the machine's.
//! * A render is written by the function to a key of our choosing under [`RENDER_PREFIX`],
//!   and streamed back from S3 as the artifact's body. Once the body has been read to its end
//!   the object is deleted; what a failed or abandoned read leaves, the bucket's lifecycle
//!   rule on that prefix removes a day later.

mod wire;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;
use futures::StreamExt;

use reelay_core::ports::{Artifact, Blobs, ByteStream, SceneCode, SceneError, SceneFrame, SceneRunner};

pub use wire::{Fault, SceneAnswer, SceneRequest, RENDER_PREFIX};

use crate::{sdk_message, S3Blobs};

/// How much of a function error's payload goes into the error's message.
const MAX_ERROR_TEXT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaScenesSettings {
    /// The scene-renderer function's name or ARN.
    pub function_name: String,
    /// Another Lambda endpoint (a test's fake); `None` for AWS's.
    pub endpoint_url: Option<String>,
    /// The longest one call may take, retries included: the function's timeout and a margin,
    /// so that a lost answer cannot hold a job runner until its own timeout.
    pub invoke_timeout: Duration,
}

/// The [`SceneRunner`] port on the scene-renderer function, with renders handed over in `blobs`.
#[derive(Debug, Clone)]
pub struct LambdaScenes {
    client: Client,
    function_name: String,
    blobs: S3Blobs,
}

impl LambdaScenes {
    pub fn new(config: &aws_config::SdkConfig, settings: LambdaScenesSettings, blobs: S3Blobs) -> LambdaScenes {
        let timeouts = config
            .timeout_config()
            .map_or_else(TimeoutConfig::builder, TimeoutConfig::to_builder)
            .operation_timeout(settings.invoke_timeout)
            .build();
        let mut builder = aws_sdk_lambda::config::Builder::from(config).timeout_config(timeouts);
        if let Some(endpoint) = &settings.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        LambdaScenes::from_client(Client::from_conf(builder.build()), settings.function_name, blobs)
    }

    pub fn from_client(client: Client, function_name: String, blobs: S3Blobs) -> LambdaScenes {
        LambdaScenes {
            client,
            function_name,
            blobs,
        }
    }

    async fn invoke(&self, request: &SceneRequest) -> Result<SceneAnswer, SceneError> {
        let payload = serde_json::to_vec(request).map_err(|e| SceneError::Machine(e.to_string()))?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                SceneError::Machine(format!(
                    "invoking the scene renderer {}: {}",
                    self.function_name,
                    sdk_message(&e)
                ))
            })?;
        let payload = out.payload().map(Blob::as_ref).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            return Err(SceneError::Machine(format!(
                "the scene renderer {} failed ({kind}): {}",
                self.function_name,
                error_text(payload)
            )));
        }
        serde_json::from_slice(payload).map_err(|e| {
            SceneError::Machine(format!(
                "the scene renderer {} answered what is not a scene answer ({e}): {}",
                self.function_name,
                error_text(payload)
            ))
        })
    }
}

#[async_trait]
impl SceneRunner for LambdaScenes {
    async fn check(&self, code: &SceneCode) -> Result<(), SceneError> {
        self.invoke(&SceneRequest::check(code)).await?.into_check()
    }

    async fn render(&self, code: &SceneCode, frame: SceneFrame) -> Result<Artifact, SceneError> {
        // A fresh key per call: a retried render never reads an earlier attempt's object.
        let key = format!("{RENDER_PREFIX}{:032x}.mp4", rand::random::<u128>());
        let (answered, mut info) = self
            .invoke(&SceneRequest::render(code, frame, key.clone()))
            .await?
            .into_render()?;
        if answered != key {
            return Err(SceneError::Machine(format!(
                "the scene renderer wrote {answered}, not {key}"
            )));
        }
        let read = self
            .blobs
            .read(&key, None)
            .await
            .map_err(|e| SceneError::Machine(format!("reading the render at {key}: {e}")))?;
        info.size_bytes = read.size;
        Ok(Artifact {
            body: deleted_once_read(read.body, self.blobs.clone(), key),
            content_type: read.content_type.unwrap_or_else(|| "video/mp4".into()),
            extension: "mp4".into(),
            info,
        })
    }
}

/// `body`, and then the object it came from deleted. A body that fails or is dropped midway
/// leaves the object to the lifecycle rule.
fn deleted_once_read(body: ByteStream, blobs: S3Blobs, key: String) -> ByteStream {
    Box::pin(futures::stream::unfold(Some((body, blobs, key)), |state| async move {
        let (mut body, blobs, key) = state?;
        match body.next().await {
            Some(chunk) => Some((chunk, Some((body, blobs, key)))),
            None => {
                if let Err(e) = blobs.delete(&key).await {
                    tracing::warn!(key, error = %e, "a read render was not deleted (the lifecycle rule will)");
                }
                None
            }
        }
    }))
}

/// A function error's payload (`{"errorType", "errorMessage"}` from the runtime) as one line.
fn error_text(payload: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RuntimeError {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let text = match serde_json::from_slice::<RuntimeError>(payload) {
        Ok(RuntimeError {
            error_type: Some(kind),
            error_message: Some(message),
        }) => format!("{kind}: {message}"),
        Ok(RuntimeError {
            error_message: Some(message),
            ..
        }) => message,
        _ => String::from_utf8_lossy(payload).into_owned(),
    };
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_errors_read_as_one_line() {
        let timeout = br#"{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out after 600.00 seconds"}"#;
        assert_eq!(
            error_text(timeout),
            "Sandbox.Timedout: Task timed out after 600.00 seconds"
        );
        assert_eq!(error_text(br#"{"errorMessage":"boom"}"#), "boom");
        assert_eq!(error_text(b"not json"), "not json");
        let long = "x".repeat(5000);
        assert_eq!(error_text(long.as_bytes()).chars().count(), MAX_ERROR_TEXT + 1);
    }
}
