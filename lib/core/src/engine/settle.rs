//! Stage 4, settling work that did not finish: a claimed job's work (`provider_submit.rs`,
//! `provider_output.rs`, `media_jobs.rs`) ends in a `WorkError`, which becomes a retry with
//! backoff, a wait that costs no attempt, or the job's failure (`completion.rs`).

use std::time::Duration;

use rand::Rng;

use super::repair::ended_attempt;
use super::{Engine, EngineError};
use crate::domain::{AttemptOutcome, Job};
use crate::ports::{MediaError, ProviderError, Write};
use crate::worker::Handled;

/// Why a job's work did not finish.
#[derive(Debug)]
pub(super) enum WorkError {
    /// Retrying cannot help: fail the job.
    Fatal { code: &'static str, message: String },
    /// Try again later, if attempts remain.
    Passing {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Over a provider's rate limit: wait, without using up an attempt.
    Throttled { retry_after: Option<Duration> },
    /// A submit got no answer: it may have reached the provider.
    Uncertain { message: String },
    /// A scene's code was refused (`code_key`: the refused code): written again (`repair.rs`).
    Refused { message: String, code_key: String },
    /// The engine's own ports failed: let the queue retry the message.
    Engine(EngineError),
}

impl WorkError {
    /// A media task's failure: bad inputs fail the job, a tool's failure is retried.
    pub(super) fn media(e: MediaError) -> WorkError {
        match e {
            MediaError::Invalid(message) => WorkError::Fatal {
                code: "media_invalid",
                message,
            },
            MediaError::Failed(message) => WorkError::Passing {
                message,
                retry_after: None,
            },
        }
    }
}

impl<E: Into<EngineError>> From<E> for WorkError {
    fn from(e: E) -> Self {
        WorkError::Engine(e.into())
    }
}

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

/// How long a rate-limited job waits when the provider did not say (jittered up to +20 %).
const THROTTLE_WAIT: Duration = Duration::from_secs(5);

impl Engine {
    /// Turns the result of a piece of work into the job's next state.
    pub(super) async fn settle(
        &self,
        job: Job,
        outcome: Result<Option<Handled>, WorkError>,
    ) -> Result<Option<Handled>, EngineError> {
        let policy = self.settings.retry_policy(job.spec.operation);
        match outcome {
            Ok(handled) => Ok(handled),
            Err(WorkError::Engine(e)) => Err(e),
            Err(WorkError::Fatal { code, message }) => self.fail(job, code, message).await,
            // Boxed: a rewind's writes would otherwise grow every settle's future.
            Err(WorkError::Refused { message, code_key }) => Box::pin(self.repair(job, message, code_key)).await,
            Err(WorkError::Throttled { retry_after }) => {
                // Not the job's fault: the attempt is given back with the lease.
                let delay = retry_after
                    .unwrap_or(THROTTLE_WAIT)
                    .mul_f64(rand::rng().random_range(1.0..1.2));
                let mut next = job.clone();
                next.lease_until = None;
                next.attempts = next.attempts.saturating_sub(1);
                match self.store.update_job(&job, &next).await? {
                    Write::Applied(_) => Ok(Some(Handled::RetryAfter(delay))),
                    Write::Stale => Ok(None),
                }
            }
            Err(WorkError::Uncertain { message }) => {
                let passing = WorkError::Passing {
                    message,
                    retry_after: None,
                };
                Box::pin(self.settle(job, Err(passing))).await
            }
            Err(WorkError::Passing { message, retry_after }) if job.attempts < policy.max_attempts => {
                let delay = retry_after.unwrap_or(policy.delay_after(job.attempts));
                tracing::warn!(execution = %job.execution_id, job = %job.id(), attempt = job.attempts, %message, ?delay, "job will be retried");
                // Give up the lease so the redelivered message can claim the job again.
                let mut next = job.clone();
                next.lease_until = None;
                next.history.push(ended_attempt(
                    &job,
                    self.now(),
                    AttemptOutcome::Retried,
                    "retried",
                    &message,
                ));
                match self.store.update_job(&job, &next).await? {
                    Write::Applied(_) => Ok(Some(Handled::RetryAfter(delay))),
                    Write::Stale => Ok(None),
                }
            }
            Err(WorkError::Passing { message, .. }) => {
                let message = format!("gave up after {} attempts: {message}", job.attempts);
                self.fail(job, "retries_exhausted", message).await
            }
        }
    }
}
