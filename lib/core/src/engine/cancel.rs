//! Cancellation, at any stage of a job: the request is recorded on the execution (once) and a
//! message queued before any job is touched, so a crash midway is finished by the queue (via
//! `dispatch.rs`); jobs not yet ended become `cancelled` by conditional writes, provider jobs
//! are cancelled at the provider, and their late answers are ignored because the job is no
//! longer waiting for them. Next: `ending.rs` ends the execution.

use std::time::Duration;

use super::{Engine, EngineError, MAX_RACES};
use crate::domain::{ExecutionStatus, Job, JobError, JobStatus};
use crate::plan::Params;
use crate::ports::{Message, Write};

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no execution {0}")]
    NotFound(String),
    /// It ended before the request: nothing to cancel.
    #[error("execution {id} already ended {}", .status.name())]
    Finished { id: String, status: ExecutionStatus },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Where a cancelled execution stands after the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub execution_id: String,
    /// `cancelled` once every job has stopped; `processing` while a job is still winding down.
    pub status: ExecutionStatus,
}

impl Engine {
    /// Cancels the tenant's execution. Idempotent: a repeat answers as the first did.
    pub async fn cancel(&self, tenant_id: &str, id: &str) -> Result<Cancelled, CancelError> {
        for _ in 0..MAX_RACES {
            let execution = match self.store.execution(id).await.map_err(EngineError::from)? {
                Some(e) if e.tenant_id == tenant_id => e,
                _ => return Err(CancelError::NotFound(id.to_string())),
            };
            if execution.status.is_terminal() && execution.cancel_requested_at.is_none() {
                return Err(CancelError::Finished {
                    id: id.to_string(),
                    status: execution.status,
                });
            }
            if execution.cancel_requested_at.is_none() {
                let mut next = execution.clone();
                next.cancel_requested_at = Some(self.now());
                if let Write::Stale = self
                    .store
                    .update_execution(&execution, &next)
                    .await
                    .map_err(EngineError::from)?
                {
                    continue;
                }
                tracing::info!(execution = %id, "cancellation requested");
            }
            let message = Message::Cancel {
                execution_id: id.to_string(),
            };
            self.queue
                .send(&[message], Duration::ZERO)
                .await
                .map_err(EngineError::from)?;
            self.carry_out_cancel(id).await?;
            let status = self
                .store
                .execution(id)
                .await
                .map_err(EngineError::from)?
                .map_or(ExecutionStatus::Cancelled, |e| e.status);
            return Ok(Cancelled {
                execution_id: id.to_string(),
                status,
            });
        }
        Err(CancelError::Engine(EngineError::Contention(crate::domain::JobKey {
            execution_id: id.to_string(),
            job_id: String::new(),
        })))
    }

    /// Stops every job of a cancelled execution that has not ended, then ends it. Safe to repeat.
    pub(super) async fn carry_out_cancel(&self, id: &str) -> Result<(), EngineError> {
        let Some((execution, jobs)) = self.store.execution_with_jobs(id).await? else {
            return Ok(());
        };
        if execution.cancel_requested_at.is_none() {
            return Ok(());
        }
        for job in jobs.into_iter().filter(|j| !j.status.is_terminal()) {
            self.cancel_job(job).await?;
        }
        self.finalize_if_idle(id, None).await
    }

    async fn cancel_job(&self, mut job: Job) -> Result<(), EngineError> {
        for _ in 0..MAX_RACES {
            if job.status.is_terminal() {
                return Ok(());
            }
            if job.status == JobStatus::AwaitingProvider {
                self.cancel_at_provider(&job).await;
            }
            let mut next = job.clone();
            next.status = JobStatus::Cancelled;
            next.lease_until = None;
            next.completed_at = Some(self.now());
            next.error = Some(JobError {
                code: "cancelled".into(),
                message: "cancelled by request".into(),
            });
            match self.store.update_job(&job, &next).await? {
                Write::Applied(cancelled) => {
                    self.emit_job(cancelled.key(), JobStatus::Cancelled);
                    // A submit in flight when this job was cancelled: stop what it started.
                    if job.status == JobStatus::Running {
                        self.cancel_at_provider(&cancelled).await;
                    }
                    self.ensure_job_webhook(&cancelled).await?;
                    return Ok(());
                }
                Write::Stale => match self.store.job(&job.key()).await? {
                    Some(fresh) => job = fresh,
                    None => return Ok(()),
                },
            }
        }
        Err(EngineError::Contention(job.key()))
    }

    /// Asks the provider to stop a job it may be running. Best effort: a provider that cannot
    /// cancel still finishes, and its answer is ignored.
    pub(super) async fn cancel_at_provider(&self, job: &Job) {
        let Some(call) = &job.provider else { return };
        let Some(provider) = self.providers.get(&call.provider) else {
            return;
        };
        let key = self.api_key_for(job, &call.provider).await.ok().flatten();
        let provider_job_id = match (&call.provider_job_id, &job.spec.params) {
            (Some(id), _) => Some(id.clone()),
            // Submitted but not recorded yet: the provider may find it by its request.
            (None, Params::Provider(params)) => match self.provider_request(job, params, call).await {
                Ok(request) => match provider.find(&request).await {
                    Ok(found) => found.map(|s| s.provider_job_id),
                    Err(e) => {
                        tracing::warn!(job = %job.id(), error = %e, "could not look up a provider job to cancel");
                        None
                    }
                },
                Err(_) => None,
            },
            (None, _) => None,
        };
        if let Some(provider_job_id) = provider_job_id {
            match provider.cancel(&provider_job_id, key.as_ref()).await {
                Ok(()) => tracing::info!(job = %job.id(), %provider_job_id, "provider job cancelled"),
                Err(e) => tracing::warn!(job = %job.id(), error = %e, "provider did not cancel"),
            }
        }
    }
}
