//! Jobs done by an AI provider: submit once (intent first, reconcile on retry), wait for
//! its webhook or poll it, then copy the output in.

use std::time::Duration;

use futures::StreamExt;
use rand::Rng;

use super::lifecycle::WorkError;
use super::media_jobs::{job_output, output_key, resolve};
use super::{CallbackRejected, Engine, EngineError, Handled, Recorded, Via, MAX_RACES};
use crate::domain::{Completion, Job, JobKey, JobOutput, JobStatus, ProviderCall, ProviderOutcome};
use crate::plan::{reference, MediaRef, ProviderParams, Secret};
use crate::ports::{
    Callback, CallbackError, Message, ProviderError, ProviderRequest, ProviderStatus, Write, DEFAULT_DEADLINE,
};

impl From<ProviderError> for WorkError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Fatal(message) => WorkError::Fatal {
                code: "provider_rejected",
                message,
            },
            ProviderError::Retryable { message, retry_after } => WorkError::Passing { message, retry_after },
            ProviderError::RateLimited { retry_after } => WorkError::Throttled { retry_after },
            ProviderError::Uncertain(message) => WorkError::Uncertain { message },
        }
    }
}

/// What became of an attempt to get a job to its provider.
enum Submitted {
    /// The provider has it (submitted now, or found from an earlier attempt).
    Accepted(String, Option<ProviderStatus>),
    /// The provider answered and did not take it: nothing waits there.
    Refused(WorkError),
    /// Anything else (no answer, the inputs, a lookup that failed).
    Failed(WorkError),
}

/// How often a job whose submit went unanswered looks again for its adoption by callback.
const ADOPTION_WAIT: Duration = Duration::from_secs(30);

impl Engine {
    /// Submits a claimed provider job. The intent (with its token) is written before the
    /// provider is called; a retry that finds an intent asks the provider for that token
    /// before it submits again, so a job that reached the provider is never paid twice.
    pub(super) async fn start_provider_job(
        &self,
        job: &Job,
        params: &ProviderParams,
    ) -> Result<Option<Handled>, EngineError> {
        let Some(provider) = self.providers.get(&params.provider) else {
            let message = format!("provider `{}` is not configured on this server", params.provider);
            return self.fail(job.clone(), "provider_unavailable", message).await;
        };
        // An intent written by this very handler has never been submitted: no need to ask.
        let fresh_intent = job.provider.is_none();
        let job = match &job.provider {
            Some(_) => job.clone(),
            None => {
                let completion = provider
                    .models()
                    .iter()
                    .find(|m| m.id == params.model_id)
                    .map(|m| m.completion.clone())
                    .unwrap_or(Completion::Polling);
                let mut next = job.clone();
                next.provider = Some(ProviderCall {
                    provider: params.provider.clone(),
                    model_id: params.model_id.clone(),
                    token: new_token(),
                    provider_job_id: None,
                    completion,
                    submitted_at: None,
                    polls: 0,
                    next_poll_at: None,
                    outcome: None,
                    // A submit may be on its way from here on; cleared if the provider refuses.
                    uncertain_since: Some(self.now()),
                });
                match self.store.update_job(job, &next).await? {
                    Write::Applied(job) => job,
                    Write::Stale => return Ok(None),
                }
            }
        };
        let Some(call) = job.provider.clone() else {
            return Ok(None);
        };
        // Whether an earlier attempt may have reached the provider (before this one re-arms).
        let earlier_uncertain = if fresh_intent { None } else { call.uncertain_since };
        let job = if call.provider_job_id.is_none() && call.uncertain_since.is_none() {
            match self.set_uncertain(&job, Some(self.now())).await? {
                Some(job) => job,
                None => return Ok(None),
            }
        } else {
            job
        };
        let submitted = match &call.provider_job_id {
            Some(id) => Submitted::Accepted(id.clone(), None),
            None => {
                self.reconcile_or_submit(&job, params, &call, fresh_intent, earlier_uncertain)
                    .await
            }
        };
        let (provider_job_id, finished) = match submitted {
            Submitted::Accepted(id, finished) => (id, finished),
            // Nothing reached the provider: a retry may submit without asking.
            Submitted::Refused(e) => {
                return match self.set_uncertain(&job, None).await? {
                    Some(job) => self.settle(job, Err(e)).await,
                    None => Ok(None),
                }
            }
            Submitted::Failed(e) => return self.settle(job, Err(e)).await,
        };
        let now = self.now();
        // A webhook model on a server providers cannot call back is a polling model.
        let first_poll = match (&call.completion, &self.settings.callback_base) {
            (Completion::Webhook, Some(_)) => self.settings.webhook_grace,
            _ => self.settings.poll_first,
        };
        // An answer adopted from the provider's callback (`adopt_from_callback`) counts too.
        let outcome = finished.and_then(outcome_of).or(call.outcome.clone());
        let answered = outcome.is_some();
        let mut next = job.clone();
        next.status = JobStatus::AwaitingProvider;
        // Answered at once: keep the lease and finish in this same handler.
        if !answered {
            next.lease_until = None;
        }
        if let Some(c) = next.provider.as_mut() {
            c.provider_job_id = Some(provider_job_id);
            c.submitted_at = Some(now);
            // Answered: this handler finishes it now, so the poller must not take it for an
            // answer whose message was lost (and re-send it) while the output is copied.
            let next_poll = if answered {
                self.settings.stale_queued_after
            } else {
                first_poll
            };
            c.next_poll_at = Some(now + next_poll.as_millis() as i64);
            c.outcome = outcome;
        }
        match self.store.update_job(&job, &next).await? {
            Write::Applied(waiting) => {
                self.emit_job(waiting.key(), JobStatus::AwaitingProvider);
                if answered {
                    return self.finish_claimed_provider_job(waiting).await;
                }
                Ok(Some(Handled::Done))
            }
            Write::Stale => {
                // Cancelled while we submitted: stop the provider job we just started.
                if let Some(fresh) = self.store.job(&job.key()).await? {
                    if fresh.status == JobStatus::Cancelled {
                        self.cancel_at_provider(&next).await;
                    }
                }
                Ok(None)
            }
        }
    }

    /// Records whether a submit may be on its way (`Some`: since when); `None` if the job moved.
    async fn set_uncertain(&self, job: &Job, since: Option<crate::domain::Millis>) -> Result<Option<Job>, EngineError> {
        let mut next = job.clone();
        if let Some(c) = next.provider.as_mut() {
            c.uncertain_since = since;
        }
        Ok(match self.store.update_job(job, &next).await? {
            Write::Applied(job) => Some(job),
            Write::Stale => None,
        })
    }

    async fn reconcile_or_submit(
        &self,
        job: &Job,
        params: &ProviderParams,
        call: &ProviderCall,
        fresh_intent: bool,
        earlier_uncertain: Option<crate::domain::Millis>,
    ) -> Submitted {
        let provider = match self.provider_of(call) {
            Ok(p) => p,
            Err(e) => return Submitted::Failed(e),
        };
        let request = match self.provider_request(job, params, call).await {
            Ok(r) => r,
            Err(e) => return Submitted::Failed(e),
        };
        if !fresh_intent {
            match provider.find(&request).await {
                Ok(Some(found)) => {
                    tracing::info!(execution = %job.execution_id, job = %job.id(), "adopted a provider job submitted before a crash");
                    return Submitted::Accepted(found.provider_job_id, found.finished);
                }
                Ok(None) => {}
                Err(e) => return Submitted::Failed(e.into()),
            }
            if let Some(since) = earlier_uncertain.filter(|_| !provider.reconciles()) {
                return Submitted::Failed(self.unanswered_submit(call, since));
            }
        }
        match provider.submit(request).await {
            Ok(submission) => Submitted::Accepted(submission.provider_job_id, submission.finished),
            Err(e @ ProviderError::Uncertain(_)) => Submitted::Failed(e.into()),
            Err(e) => Submitted::Refused(e.into()),
        }
    }

    /// A submit went unanswered and the provider cannot be asked whether it arrived: submitting
    /// again could pay twice. A webhook model waits (without using attempts) for the provider's
    /// callback to adopt it, until the model's deadline; otherwise the job fails.
    fn unanswered_submit(&self, call: &ProviderCall, since: crate::domain::Millis) -> WorkError {
        let deadline = self
            .providers
            .get(&call.provider)
            .and_then(|p| p.models().iter().find(|m| m.id == call.model_id).map(|m| m.deadline))
            .unwrap_or(DEFAULT_DEADLINE);
        let can_call_back = call.completion == Completion::Webhook && self.settings.callback_base.is_some();
        if can_call_back && self.now() - since < deadline.as_millis() as i64 {
            return WorkError::Throttled {
                retry_after: Some(ADOPTION_WAIT),
            };
        }
        WorkError::Fatal {
            code: "submission_unknown",
            message: format!(
                "{} may have received this job but did not answer, and cannot be asked; \
                 it was not submitted again, so it is not paid twice",
                call.provider
            ),
        }
    }

    pub(super) fn provider_of(
        &self,
        call: &ProviderCall,
    ) -> Result<&std::sync::Arc<dyn crate::ports::Provider>, WorkError> {
        self.providers.get(&call.provider).ok_or_else(|| WorkError::Fatal {
            code: "provider_unavailable",
            message: format!("provider `{}` is not configured on this server", call.provider),
        })
    }

    /// The request a provider job makes: inputs resolved to URLs, its key, and where to call back.
    pub(super) async fn provider_request(
        &self,
        job: &Job,
        params: &ProviderParams,
        call: &ProviderCall,
    ) -> Result<ProviderRequest, WorkError> {
        let parents = self.parent_outputs(job).await?;
        let mut resolved = params.clone();
        for source in resolved.inputs.values_mut() {
            *source = MediaRef::Url(resolve(source, &parents)?.0);
        }
        for value in resolved.options.values_mut() {
            substitute_references(value, &parents);
        }
        let callback_url = match (&self.settings.callback_base, &call.completion) {
            (Some(base), Completion::Webhook) => Some(format!(
                "{}/api/webhooks/job/{}?token={}",
                base.trim_end_matches('/'),
                job.key().record_id(),
                call.token
            )),
            _ => None,
        };
        Ok(ProviderRequest {
            job: job.key(),
            operation: job.spec.operation,
            params: resolved,
            token: call.token.clone(),
            api_key: self.api_key_for(job, &call.provider).await?,
            callback_url,
        })
    }

    /// The provider key to submit with: the job's own, else the one sent with the request for
    /// that provider, else none (the provider adapter's configured key).
    pub(super) async fn api_key_for(&self, job: &Job, provider: &str) -> Result<Option<Secret>, WorkError> {
        let sealed = match &job.api_key {
            Some(sealed) => Some(sealed.clone()),
            None => self
                .store
                .execution(&job.execution_id)
                .await?
                .and_then(|e| e.provider_keys.get(provider).cloned()),
        };
        sealed
            .map(|s| self.sealer.open(&s))
            .transpose()
            .map_err(|e| WorkError::Fatal {
                code: "unreadable_secret",
                message: e.to_string(),
            })
    }

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
    async fn finish_claimed_provider_job(&self, job: Job) -> Result<Option<Handled>, EngineError> {
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
        let info = if kind == crate::plan::MediaKind::Transcript {
            Default::default()
        } else {
            self.media.probe(&our_url).await.map_err(|e| WorkError::Fatal {
                code: "unreadable_output",
                message: format!("the provider's output is not readable media: {e}"),
            })?
        };
        Ok(job_output(job, key, our_url, content_type, &stored, info))
    }

    /// A provider's callback (`POST /api/webhooks/job/{record}?token=…`): the job's token,
    /// then the provider's own signature, are checked before anything is recorded.
    pub async fn provider_callback(
        &self,
        record_id: &str,
        token: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Recorded, CallbackRejected> {
        let refused = |why: &str| CallbackRejected::Callback(CallbackError::Unauthorized(why.to_string()));
        let key = JobKey::from_record_id(record_id).ok_or_else(|| refused("unknown job"))?;
        let job = self.store.job(&key).await?.ok_or_else(|| refused("unknown job"))?;
        let call = job.provider.clone().ok_or_else(|| refused("no provider job"))?;
        if !constant_time_eq(token.as_bytes(), call.token.as_bytes()) {
            return Err(refused("bad token"));
        }
        let provider = self
            .providers
            .get(&call.provider)
            .ok_or_else(|| refused("provider not configured"))?;
        let callback = provider.verify_callback(headers, body).await?;
        match &call.provider_job_id {
            Some(id) if !provider.is_same_job(id, &callback.provider_job_id) => {
                Err(refused("callback for another provider job"))
            }
            Some(_) => Ok(self
                .record_provider_status(&key, Via::Webhook { token }, callback.status)
                .await?),
            None => self.adopt_from_callback(job, callback).await,
        }
    }

    /// The provider called back before we recorded its job id (the submit's answer was lost,
    /// or is still on its way): record the id, so a retry never submits again.
    async fn adopt_from_callback(&self, job: Job, callback: Callback) -> Result<Recorded, CallbackRejected> {
        if job.status.is_terminal() {
            return Ok(Recorded::Ignored);
        }
        if !job.lease_free(self.now()) {
            // Its submit is in flight: let that handler record the id; the provider retries.
            return Err(CallbackRejected::Callback(CallbackError::Unavailable(
                "the job's submission is being recorded".into(),
            )));
        }
        let mut next = job.clone();
        let Some(c) = next.provider.as_mut() else {
            return Ok(Recorded::Ignored);
        };
        c.provider_job_id = Some(callback.provider_job_id);
        c.outcome = outcome_of(callback.status);
        match self.store.update_job(&job, &next).await? {
            Write::Applied(_) => {
                tracing::info!(execution = %job.execution_id, job = %job.id(), "adopted a provider job from its callback");
                self.queue.send(&[Message::Job(job.key())], Duration::ZERO).await?;
                Ok(Recorded::Outcome)
            }
            Write::Stale => Err(CallbackRejected::Callback(CallbackError::Unavailable(
                "the job changed meanwhile".into(),
            ))),
        }
    }

    pub(super) async fn record_provider_status(
        &self,
        key: &JobKey,
        via: Via<'_>,
        status: ProviderStatus,
    ) -> Result<Recorded, EngineError> {
        for _ in 0..MAX_RACES {
            let job = self
                .store
                .job(key)
                .await?
                .ok_or_else(|| EngineError::JobNotFound(key.clone()))?;
            let Some(call) = &job.provider else {
                return match via {
                    Via::Webhook { .. } => Err(EngineError::BadToken(key.clone())),
                    Via::Poll => Ok(Recorded::Ignored),
                };
            };
            if let Via::Webhook { token } = via {
                if !constant_time_eq(token.as_bytes(), call.token.as_bytes()) {
                    return Err(EngineError::BadToken(key.clone()));
                }
            }
            if job.status != JobStatus::AwaitingProvider || call.outcome.is_some() {
                return Ok(Recorded::Ignored);
            }
            let now = self.now();
            let mut next = job.clone();
            let Some(c) = next.provider.as_mut() else {
                return Ok(Recorded::Ignored);
            };
            let recorded = match outcome_of(status.clone()) {
                Some(outcome) => {
                    c.outcome = Some(outcome);
                    Recorded::Outcome
                }
                None if via == Via::Poll => {
                    c.polls += 1;
                    c.next_poll_at = Some(now + self.poll_delay(c.polls).as_millis() as i64);
                    Recorded::Rescheduled
                }
                // A non-terminal callback (`start`, `output`) changes nothing: polling goes on.
                None => return Ok(Recorded::Ignored),
            };
            if recorded == Recorded::Outcome {
                // Kept due, later: should the send below be lost, the poller re-sends it.
                c.next_poll_at = Some(now + self.settings.stale_queued_after.as_millis() as i64);
            }
            match self.store.update_job(&job, &next).await? {
                Write::Applied(_) => {
                    if recorded == Recorded::Outcome {
                        self.queue.send(&[Message::Job(key.clone())], Duration::ZERO).await?;
                    }
                    return Ok(recorded);
                }
                Write::Stale => continue,
            }
        }
        Err(EngineError::Contention(key.clone()))
    }

    pub(super) async fn poll_due_jobs(&self, limit: usize) -> Result<usize, EngineError> {
        let keys = self.store.due_polls(self.now(), limit).await?;
        let polled = keys.len();
        let results: Vec<Result<(), EngineError>> = futures::stream::iter(keys)
            .map(|key| async move { self.poll_one(&key).await })
            .buffer_unordered(8)
            .collect()
            .await;
        for result in results {
            if let Err(e) = result {
                tracing::warn!(error = %e, "poll failed");
            }
        }
        Ok(polled)
    }

    async fn poll_one(&self, key: &JobKey) -> Result<(), EngineError> {
        let Some(job) = self.store.job(key).await? else {
            return Ok(());
        };
        let Some(call) = job.provider.clone() else {
            return Ok(());
        };
        if job.status != JobStatus::AwaitingProvider {
            return Ok(());
        }
        if call.outcome.is_some() {
            // The answer is in but its message was lost: send it again, and again later if need be.
            let mut next = job.clone();
            if let Some(c) = next.provider.as_mut() {
                c.next_poll_at = Some(self.now() + self.settings.stale_queued_after.as_millis() as i64);
            }
            if let Write::Applied(_) = self.store.update_job(&job, &next).await? {
                self.queue.send(&[Message::Job(key.clone())], Duration::ZERO).await?;
            }
            return Ok(());
        }
        let (Some(provider), Some(provider_job_id)) =
            (self.providers.get(&call.provider), call.provider_job_id.as_deref())
        else {
            return Ok(());
        };
        let deadline = provider
            .models()
            .iter()
            .find(|m| m.id == call.model_id)
            .map_or(DEFAULT_DEADLINE, |m| m.deadline);
        let waited = self.now() - call.submitted_at.unwrap_or(job.started_at.unwrap_or(0));
        if waited > deadline.as_millis() as i64 {
            self.cancel_at_provider(&job).await;
            let message = format!(
                "{} did not finish within {} s; cancelled there",
                call.provider,
                deadline.as_secs()
            );
            return self
                .record_provider_status(key, Via::Poll, ProviderStatus::Failed { message })
                .await
                .map(|_| ());
        }
        let api_key = self.api_key_for(&job, &call.provider).await.unwrap_or_default();
        let status = match provider.status(provider_job_id, api_key.as_ref()).await {
            Ok(status) => status,
            Err(
                e @ (ProviderError::Retryable { .. } | ProviderError::RateLimited { .. } | ProviderError::Uncertain(_)),
            ) => {
                tracing::warn!(execution = %key.execution_id, job = %key.job_id, error = %e, "poll failed; will poll again");
                ProviderStatus::Pending
            }
            Err(ProviderError::Fatal(message)) => ProviderStatus::Failed { message },
        };
        self.record_provider_status(key, Via::Poll, status).await.map(|_| ())
    }

    /// poll_first × 1.5^(polls−1), capped, with ±10 % jitter so polls do not bunch up.
    fn poll_delay(&self, polls: u32) -> Duration {
        let base = self.settings.poll_first.as_secs_f64() * 1.5f64.powi(polls.saturating_sub(1).min(64) as i32);
        let capped = base.min(self.settings.poll_max.as_secs_f64());
        let jitter = rand::rng().random_range(0.9..1.1);
        Duration::from_secs_f64(capped * jitter)
    }
}

/// The outcome a terminal status records; `None` while the provider is still working.
fn outcome_of(status: ProviderStatus) -> Option<ProviderOutcome> {
    match status {
        ProviderStatus::Pending => None,
        ProviderStatus::Succeeded {
            output_url,
            content_type,
        } => Some(ProviderOutcome::Succeeded {
            output_url,
            content_type,
        }),
        ProviderStatus::Failed { message } => Some(ProviderOutcome::Failed { message }),
    }
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Replaces `$job1` / `_videoJobDependency:job1` strings inside raw model params with the
/// URL of that job's output.
fn substitute_references(value: &mut serde_json::Value, parents: &std::collections::HashMap<String, JobOutput>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(output) = reference(s).and_then(|id| parents.get(id)) {
                *s = output.url.clone();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| substitute_references(v, parents)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| substitute_references(v, parents)),
        _ => {}
    }
}

fn guess_content_type(url: &str, kind: crate::plan::MediaKind) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let by_ext = [
        (".mp4", "video/mp4"),
        (".mov", "video/quicktime"),
        (".webm", "video/webm"),
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".m4a", "audio/mp4"),
        (".mp3", "audio/mpeg"),
        (".wav", "audio/wav"),
        (".json", "application/json"),
    ];
    if let Some((_, ct)) = by_ext.iter().find(|(ext, _)| path.ends_with(ext)) {
        return ct;
    }
    match kind {
        crate::plan::MediaKind::Video => "video/mp4",
        crate::plan::MediaKind::Image => "image/png",
        crate::plan::MediaKind::Audio => "audio/mp4",
        crate::plan::MediaKind::Transcript => "application/json",
    }
}

fn extension_for(content_type: &str, url: &str) -> &'static str {
    match content_type {
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/webm" => "webm",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "audio/mp4" => "m4a",
        "audio/mpeg" => "mp3",
        "audio/wav" => "wav",
        "application/json" => "json",
        _ if url.ends_with(".mp4") => "mp4",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_raw_params_become_urls() {
        let mut parents = std::collections::HashMap::new();
        parents.insert(
            "job1".to_string(),
            JobOutput {
                url: "file:///out.mp4".into(),
                key: "k".into(),
                kind: crate::plan::MediaKind::Video,
                content_type: "video/mp4".into(),
                size_bytes: 1,
                duration: None,
                width: None,
                height: None,
                aspect_ratio: None,
            },
        );
        let mut v = serde_json::json!({"a": "$job1", "b": ["_videoJobDependency:job1", "plain"], "c": "$other"});
        substitute_references(&mut v, &parents);
        assert_eq!(
            v,
            serde_json::json!({"a": "file:///out.mp4", "b": ["file:///out.mp4", "plain"], "c": "$other"})
        );
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(new_token().len(), 32);
    }
}
