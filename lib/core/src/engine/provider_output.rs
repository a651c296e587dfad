//! Stage 3, a provider job's output: the provider's recorded answer (`provider_wait.rs`, or
//! straight from the submit in `provider_submit.rs`; a large inline one is stored as it is
//! recorded, `outcome_to_record`) is acted on. A success's output is copied into the blob
//! store and probed (a transcript normalised into one shape, a removed background finished
//! with ffmpeg), then the job completes (`completion.rs`); a failure fails it. A copy that
//! did not go through goes to `settle.rs`.

use super::outputs::{extension_for, guess_content_type, job_output, output_key};
use super::provider_call::outcome_of;
use super::settle::WorkError;
use super::{Engine, EngineError};
use bytes::Bytes;
use futures::StreamExt;

use crate::background::Background;
use crate::domain::{Job, JobOutput, ProviderCall, ProviderOutcome};
use crate::plan::{MediaKind, Params, Quality};
use crate::ports::{ByteStream, MediaInfo, MediaTask, ProviderStatus, StoredBlob, Write};
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
        let output = match call.outcome.clone() {
            Some(ProviderOutcome::Failed { message }) => return self.fail(job, "provider_failed", message).await,
            Some(ProviderOutcome::Succeeded {
                output_url,
                content_type,
            }) => self.copy_output(&job, &call, &output_url, content_type).await,
            Some(ProviderOutcome::Stored {
                key,
                content_type,
                size_bytes,
            }) => self.stored_output(&job, key, content_type, size_bytes).await,
            None => return Ok(Some(Handled::Done)),
        };
        match output {
            Ok(output) => self.complete(&job, output).await,
            Err(e) => self.settle(job, Err(e)).await,
        }
    }

    /// The outcome to record for a provider's answer; `None` while it is still working. An
    /// inline output over `MAX_INLINE_OUTCOME` is stored first and the outcome names its blob,
    /// so the record stays small (a DynamoDB item is capped at 400 KB) and the answer, which
    /// such a provider cannot give again, is still kept before the job moves on. Should the
    /// store fail, the answer is recorded inline, as it came: better than losing it.
    pub(super) async fn outcome_to_record(
        &self,
        job: &Job,
        call: &ProviderCall,
        status: ProviderStatus,
    ) -> Option<ProviderOutcome> {
        let outcome = outcome_of(status)?;
        let ProviderOutcome::Succeeded {
            output_url,
            content_type,
        } = &outcome
        else {
            return Some(outcome);
        };
        if !output_url.starts_with("data:") || output_url.len() <= MAX_INLINE_OUTCOME {
            return Some(outcome);
        }
        // Same key on every try: a repeat overwrites what an earlier one stored.
        match self.store_download(job, call, output_url, content_type.clone()).await {
            Ok(stored) => Some(ProviderOutcome::Stored {
                key: stored.key,
                content_type: stored.content_type,
                size_bytes: stored.size,
            }),
            Err(e) => {
                tracing::warn!(execution = %job.execution_id, job = %job.id(), error = ?e, "an inline output is recorded as it came: storing it failed");
                Some(outcome)
            }
        }
    }

    async fn copy_output(
        &self,
        job: &Job,
        call: &ProviderCall,
        url: &str,
        content_type: Option<String>,
    ) -> Result<JobOutput, WorkError> {
        if job.spec.operation.output_kind() == MediaKind::Transcript {
            let body = self.download(job, call, url).await?;
            return self.store_transcript(job, body).await;
        }
        let stored = self.store_download(job, call, url, content_type).await?;
        self.probed_output(job, stored).await
    }

    /// Scene code is a file, not media: kept as it came, nothing to probe.
    async fn code_output(&self, job: &Job, stored: StoredBlob) -> Result<JobOutput, WorkError> {
        let url = self.client_url(&stored.key).await?;
        Ok(job_output(
            job,
            stored.key.clone(),
            url,
            stored.content_type.clone(),
            &stored,
            MediaInfo::default(),
        ))
    }

    /// The job's output from an answer already in the blob store (`ProviderOutcome::Stored`).
    async fn stored_output(
        &self,
        job: &Job,
        key: String,
        content_type: String,
        size: u64,
    ) -> Result<JobOutput, WorkError> {
        if job.spec.operation.output_kind() == MediaKind::Transcript {
            let body = self.blobs.get(&key).await?;
            return self.store_transcript(job, body).await;
        }
        let stored = StoredBlob {
            key,
            size,
            content_type,
        };
        self.probed_output(job, stored).await
    }

    async fn download(&self, job: &Job, call: &ProviderCall, url: &str) -> Result<ByteStream, WorkError> {
        let provider = self.provider_of(call)?;
        let api_key = self.api_key_for(job, &call.provider).await?;
        Ok(provider.download(url, api_key.as_ref()).await?)
    }

    /// The provider's output as it came, stored under the job's output key.
    async fn store_download(
        &self,
        job: &Job,
        call: &ProviderCall,
        url: &str,
        content_type: Option<String>,
    ) -> Result<StoredBlob, WorkError> {
        let kind = job.spec.operation.output_kind();
        let content_type = content_type.unwrap_or_else(|| guess_content_type(url, kind).to_string());
        let body = self.download(job, call, url).await?;
        let key = output_key(job, extension_for(&content_type, url));
        let stored = self.blobs.put(&key, &content_type, body).await?;
        Ok(StoredBlob {
            key,
            content_type,
            ..stored
        })
    }

    /// A stored output probed and made the job's output.
    async fn probed_output(&self, job: &Job, stored: StoredBlob) -> Result<JobOutput, WorkError> {
        if job.spec.operation.output_kind() == MediaKind::Code {
            return self.code_output(job, stored).await;
        }
        let our_url = self.blobs.url(&stored.key).await?;
        let info = self.media.probe(&our_url).await.map_err(|e| WorkError::Fatal {
            code: "unreadable_output",
            message: format!("the provider's output is not readable media: {e}"),
        })?;
        let url = self.client_url(&stored.key).await?;
        let output = job_output(job, stored.key.clone(), url, stored.content_type.clone(), &stored, info);
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
                let artifact = self
                    .media
                    .run(task, Quality::default())
                    .await
                    .map_err(WorkError::media)?;
                self.store_artifact(job, artifact).await?
            }
        };
        output.background = Some(asked.label());
        Ok(output)
    }
}

/// Above this, an inline answer is stored before it is recorded: a few of them fit in a record.
const MAX_INLINE_OUTCOME: usize = 32 << 10;

/// Far beyond any transcript (a day of speech is a few MB of JSON).
const MAX_TRANSCRIPT_BYTES: usize = 64 << 20;
