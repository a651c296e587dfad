//! Stage 3, a provider job's output: the provider's recorded answer (`provider_wait.rs`, or
//! straight from the submit in `provider_submit.rs`) is acted on. A success's output is copied
//! into the blob store and probed, then the job completes (`completion.rs`); a failure fails
//! it. A copy that did not go through goes to `settle.rs`.

use super::outputs::{extension_for, guess_content_type, job_output, output_key};
use super::settle::WorkError;
use super::{Engine, EngineError};
use crate::domain::{Job, JobOutput, ProviderCall, ProviderOutcome};
use crate::plan::MediaKind;
use crate::ports::Write;
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
        let key = output_key(job, extension_for(&content_type, url));
        let api_key = self.api_key_for(job, &call.provider).await?;
        let body = provider.download(url, api_key.as_ref()).await?;
        let stored = self.blobs.put(&key, &content_type, body).await?;
        let our_url = self.blobs.url(&key).await?;
        let info = if kind == MediaKind::Transcript {
            Default::default()
        } else {
            self.media.probe(&our_url).await.map_err(|e| WorkError::Fatal {
                code: "unreadable_output",
                message: format!("the provider's output is not readable media: {e}"),
            })?
        };
        let url = self.client_url(&key).await?;
        Ok(job_output(job, key, url, content_type, &stored, info))
    }
}
