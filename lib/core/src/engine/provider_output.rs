//! Stage 3, a provider job's output: the provider's recorded answer (`provider_wait.rs`, or
//! straight from the submit in `provider_submit.rs`) is acted on. A success's output is copied
//! into the blob store and probed (a transcript normalised into one shape, a removed
//! background finished with ffmpeg), then the job completes (`completion.rs`); a failure fails
//! it. A copy that did not go through goes to `settle.rs`.

use super::outputs::{extension_for, guess_content_type, job_output, output_key};
use super::settle::WorkError;
use super::{Engine, EngineError};
use bytes::Bytes;
use futures::StreamExt;

use crate::background::Background;
use crate::domain::{Job, JobOutput, ProviderCall, ProviderOutcome};
use crate::plan::{MediaKind, Params};
use crate::ports::{ByteStream, MediaInfo, MediaTask, Write};
use crate::transcript;
use crate::worker::Handled;

impl Engine {
    /// Copies a succeeded provider job's output into the blob store, or fails the job.
    pub(super) async fn finish_provider_job(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let now = self.now();
        let mut next = job.clone();
        next.attempts += 1;
        next.lease_until = Some(now + self.settings.lease.as_millis() as i64);
        match self.store.update_job(&job, &next).await? {
            Write::Applied(job) => self.finish_claimed_provider_job(job).await,
            Write::Stale => Ok(None),
        }
    }

    /// Acts on the recorded outcome of a provider job this handler holds the lease of.
    pub(super) async fn finish_claimed_provider_job(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let Some(call) = job.provider.clone() else {
            return Ok(None);
        };
        match call.outcome.clone() {
            Some(ProviderOutcome::Failed { message }) => self.fail(job, "provider_failed", message).await,
            Some(ProviderOutcome::Succeeded {
                output_url,
                content_type,
            }) => {
                let copied = self.copy_output(&job, &call, &output_url, content_type).await;
                match copied {
                    Ok(output) => self.complete(&job, output).await,
                    Err(e) => self.settle(job, Err(e)).await,
                }
            }
            None => Ok(Some(Handled::Done)),
        }
    }

    async fn copy_output(
        &self,
        job: &Job,
        call: &ProviderCall,
        url: &str,
        content_type: Option<String>,
    ) -> Result<JobOutput, WorkError> {
        let provider = self.provider_of(call)?;
        let kind = job.spec.operation.output_kind();
        let content_type = content_type.unwrap_or_else(|| guess_content_type(url, kind).to_string());
        let api_key = self.api_key_for(job, &call.provider).await?;
        let body = provider.download(url, api_key.as_ref()).await?;
        if kind == MediaKind::Transcript {
            return self.store_transcript(job, body).await;
        }
        let key = output_key(job, extension_for(&content_type, url));
        let stored = self.blobs.put(&key, &content_type, body).await?;
        let our_url = self.blobs.url(&key).await?;
        let info = self.media.probe(&our_url).await.map_err(|e| WorkError::Fatal {
            code: "unreadable_output",
            message: format!("the provider's output is not readable media: {e}"),
        })?;
        let url = self.client_url(&key).await?;
        let output = job_output(job, key, url, content_type, &stored, info);
        self.finish_background(job, output, our_url).await
    }

    /// A transcript in whatever shape its model gave, stored in the one shape
    /// (`crate::transcript`), its words in the result.
    async fn store_transcript(&self, job: &Job, mut body: ByteStream) -> Result<JobOutput, WorkError> {
        let unreadable = |message: String| WorkError::Fatal {
            code: "unreadable_output",
            message,
        };
        let mut raw = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| WorkError::Passing {
                message: format!("reading the transcript: {e}"),
                retry_after: None,
            })?;
            if raw.len() + chunk.len() > MAX_TRANSCRIPT_BYTES {
                return Err(unreadable(format!(
                    "the transcript is over {MAX_TRANSCRIPT_BYTES} bytes"
                )));
            }
            raw.extend_from_slice(&chunk);
        }
        let transcript = transcript::normalise(&String::from_utf8_lossy(&raw))
            .map_err(|e| unreadable(format!("the provider's transcript cannot be read: {e}")))?;
        let json = serde_json::to_vec(&transcript).map_err(|e| unreadable(e.to_string()))?;
        let key = output_key(job, "json");
        let content_type = "application/json".to_string();
        let once: ByteStream = Box::pin(futures::stream::once(async { Ok(Bytes::from(json)) }));
        let stored = self.blobs.put(&key, &content_type, once).await?;
        let url = self.client_url(&key).await?;
        let info = MediaInfo {
            words: Some(transcript.words),
            ..Default::default()
        };
        Ok(job_output(job, key, url, content_type, &stored, info))
    }

    /// A background removal's output made what the job asked for (`crate::background`): a
    /// model gives a green screen (video) or alpha (still), and one ffmpeg pass turns that
    /// into a colour or transparency when asked. The result names the background.
    async fn finish_background(&self, job: &Job, output: JobOutput, our_url: String) -> Result<JobOutput, WorkError> {
        let Params::Provider(params) = &job.spec.params else {
            return Ok(output);
        };
        let asked =
            Background::of(job.spec.operation, &params.options).map_err(|(field, message)| WorkError::Fatal {
                code: "invalid_param",
                message: format!("`{field}` {message}"),
            })?;
        let Some(asked) = asked else {
            return Ok(output);
        };
        let mut output = match asked.step(output.kind) {
            None => output,
            Some((key, fill)) => {
                let task = MediaTask::Background {
                    input: our_url,
                    still: output.kind == MediaKind::Image,
                    key,
                    fill,
                };
                let artifact = self.media.run(task).await.map_err(WorkError::media)?;
                self.store_artifact(job, artifact).await?
            }
        };
        output.background = Some(asked.label());
        Ok(output)
    }
}

/// Far beyond any transcript (a day of speech is a few MB of JSON).
const MAX_TRANSCRIPT_BYTES: usize = 64 << 20;
