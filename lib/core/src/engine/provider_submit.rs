//! Stage 3, provider submit: a provider job claimed by dispatch (`dispatch.rs`) is submitted
//! once: the intent (with its token) is written first, and a retry reconciles with the
//! provider before it submits again. Next: the wait for its answer (`provider_wait.rs`), or
//! at once `provider_output.rs` when the provider answered with the submit; `settle.rs` when
//! the submit did not go through.

use std::time::Duration;

use super::provider_call::new_token;
use super::settle::WorkError;
use super::{Engine, EngineError};
use crate::domain::{Completion, Job, JobStatus, Millis, ProviderCall};
use crate::plan::ProviderParams;
use crate::ports::{ProviderError, ProviderStatus, Write};
use crate::worker::Handled;

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
        if self.providers.get(&params.provider).is_none() {
            let message = format!("provider `{}` is not configured on this server", params.provider);
            return self.fail(job.clone(), "provider_unavailable", message).await;
        }
        // An intent written by this very handler has never been submitted: no need to ask.
        let fresh_intent = job.provider.is_none();
        let job = match &job.provider {
            Some(_) => job.clone(),
            None => {
                let completion = self
                    .providers
                    .model(&params.provider, &params.model_id)
                    .map_or(Completion::Polling, |m| m.completion.clone());
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
                    cancel_sent_at: None,
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
        let outcome = match finished {
            Some(status) => self.outcome_to_record(&job, &call, status).await,
            None => None,
        }
        .or(call.outcome.clone());
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
                        let started = next.provider.as_ref().and_then(|c| c.provider_job_id.as_deref());
                        self.cancel_at_provider(fresh, started).await?;
                    }
                }
                Ok(None)
            }
        }
    }

    /// Records whether a submit may be on its way (`Some`: since when); `None` if the job moved.
    async fn set_uncertain(&self, job: &Job, since: Option<Millis>) -> Result<Option<Job>, EngineError> {
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
        earlier_uncertain: Option<Millis>,
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
    fn unanswered_submit(&self, call: &ProviderCall, since: Millis) -> WorkError {
        let deadline = self.model_deadline(call);
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
}
