//! Stage 3, the wait for a provider's answer: a submitted job (`provider_submit.rs`) waits in
//! `awaiting_provider` for the provider's callback or the poller's next look; a job past its
//! model's deadline is cancelled there and failed. The terminal answer is recorded and the
//! job sent back to dispatch (`dispatch.rs`), which hands it to `provider_output.rs`.

use std::time::Duration;

use futures::StreamExt;
use rand::Rng;

use super::provider_call::constant_time_eq;
use super::{Engine, EngineError, MAX_RACES};
use crate::domain::{Job, JobKey, JobStatus, ProviderCall};
use crate::ports::{Callback, CallbackError, Message, ProviderError, ProviderStatus, QueueError, StoreError, Write};

/// Why a provider callback was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRejected {
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for CallbackRejected {
    fn from(e: StoreError) -> Self {
        CallbackRejected::Engine(e.into())
    }
}

impl From<QueueError> for CallbackRejected {
    fn from(e: QueueError) -> Self {
        CallbackRejected::Engine(e.into())
    }
}

/// Where a provider's answer came from: its callback is checked against the job's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    Webhook { token: &'a str },
    Poll,
}

/// What became of a provider's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The terminal answer was recorded and the job sent on to finish.
    Outcome,
    /// Still running: next poll scheduled.
    Rescheduled,
    /// The job had moved on already (duplicate or late answer): nothing changed.
    Ignored,
}

impl Recorded {
    pub fn name(self) -> &'static str {
        match self {
            Recorded::Outcome => "outcome",
            Recorded::Rescheduled => "rescheduled",
            Recorded::Ignored => "ignored",
        }
    }
}

impl Engine {
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
                .provider_update(&key, Via::Webhook { token }, callback.status)
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
        let Some(call) = job.provider.clone() else {
            return Ok(Recorded::Ignored);
        };
        let outcome = self.outcome_to_record(&job, &call, callback.status).await;
        let mut next = job.clone();
        next.provider = Some(ProviderCall {
            provider_job_id: Some(callback.provider_job_id),
            outcome,
            ..call
        });
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

    /// Records a provider's answer for a job, from its callback or from a poll.
    pub async fn provider_update(
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
            let outcome = self.outcome_to_record(&job, call, status.clone()).await;
            let mut next = job.clone();
            let Some(c) = next.provider.as_mut() else {
                return Ok(Recorded::Ignored);
            };
            let recorded = match outcome {
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

    /// Polls every provider job that is due; returns how many were polled.
    pub async fn poll_due(&self, limit: usize) -> Result<usize, EngineError> {
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

    /// Polls one job now, ahead of its schedule: its provider (`local`, in process) says it
    /// just ended. The answer is still read by polling, as for any polling model.
    pub async fn poll_now(&self, key: &JobKey) -> Result<(), EngineError> {
        self.poll_one(key).await
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
            // A runner holding the lease is finishing it: a write here would make that runner's
            // completion stale, and leave the job held until the lease lapsed (found under
            // load: `make bench-load`). Should that runner die, the lease lapses and a later
            // poll sends the message again.
            if !job.lease_free(self.now()) {
                return Ok(());
            }
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
        let deadline = self.model_deadline(&call);
        let waited = self.now() - call.submitted_at.unwrap_or(job.started_at.unwrap_or(0));
        if waited > deadline.as_millis() as i64 {
            self.cancel_at_provider(job.clone(), None).await?;
            let message = format!(
                "{} did not finish within {} s; cancelled there",
                call.provider,
                deadline.as_secs()
            );
            return self
                .provider_update(key, Via::Poll, ProviderStatus::Failed { message })
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
        self.provider_update(key, Via::Poll, status).await.map(|_| ())
    }

    /// poll_first × 1.5^(polls−1), capped, with ±10 % jitter so polls do not bunch up.
    fn poll_delay(&self, polls: u32) -> Duration {
        let base = self.settings.poll_first.as_secs_f64() * 1.5f64.powi(polls.saturating_sub(1).min(64) as i32);
        let capped = base.min(self.settings.poll_max.as_secs_f64());
        let jitter = rand::rng().random_range(0.9..1.1);
        Duration::from_secs_f64(capped * jitter)
    }
}
