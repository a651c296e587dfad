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

    /// Stops every job of a cancelled execution that has not ended, then ends it. Safe to repeat:
    /// a repeat also asks the provider for a cancelled job whose request was not sent (a crash
    /// between the job's write and the request).
    pub(super) async fn carry_out_cancel(&self, id: &str) -> Result<(), EngineError> {
        let Some((execution, jobs)) = self.store.execution_with_jobs(id).await? else {
            return Ok(());
        };
        if execution.cancel_requested_at.is_none() {
            return Ok(());
        }
        for job in jobs {
            if !job.status.is_terminal() {
                self.cancel_job(job).await?;
            } else if job.status == JobStatus::Cancelled && cancel_unsent(&job) {
                self.cancel_at_provider(job, None).await?;
            }
        }
        self.finalize_if_idle(id, None).await
    }

    async fn cancel_job(&self, mut job: Job) -> Result<(), EngineError> {
        for _ in 0..MAX_RACES {
            if job.status.is_terminal() {
                return Ok(());
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
                    // Only the handler whose write cancelled the job asks the provider (and
                    // that too through a conditional write): concurrent cancels ask once.
                    let cancelled = self.cancel_at_provider(cancelled, None).await?;
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

    /// Asks the provider to stop a job it may be running, once per job: the request is recorded
    /// on the job (`cancel_sent_at`) by a conditional write before it is sent, and only the
    /// handler whose write applied sends it. Best effort: a provider that cannot cancel still
    /// finishes, and its answer is ignored. `known`: the provider's id when the caller has it
    /// and the job does not record it (a submit answered after the job was cancelled).
    /// Returns the job as it now stands.
    pub(super) async fn cancel_at_provider(&self, mut job: Job, known: Option<&str>) -> Result<Job, EngineError> {
        for _ in 0..MAX_RACES {
            if !cancel_unsent(&job) {
                return Ok(job);
            }
            let found = match known {
                Some(id) => Some(id.to_string()),
                None => self.provider_job_to_cancel(&job).await,
            };
            let Some(provider_job_id) = found else {
                return Ok(job);
            };
            let mut next = job.clone();
            if let Some(c) = next.provider.as_mut() {
                c.provider_job_id.get_or_insert_with(|| provider_job_id.clone());
                c.cancel_sent_at = Some(self.now());
            }
            match self.store.update_job(&job, &next).await? {
                Write::Applied(recorded) => {
                    self.send_provider_cancel(&recorded, &provider_job_id).await;
                    return Ok(recorded);
                }
                Write::Stale => match self.store.job(&job.key()).await? {
                    Some(fresh) => job = fresh,
                    None => return Ok(job),
                },
            }
        }
        Err(EngineError::Contention(job.key()))
    }

    /// The provider's id of the job to cancel: recorded, or found by its request when the
    /// submit went out but its answer was not recorded yet.
    async fn provider_job_to_cancel(&self, job: &Job) -> Option<String> {
        let call = job.provider.as_ref()?;
        let provider = self.providers.get(&call.provider)?;
        match (&call.provider_job_id, &job.spec.params) {
            (Some(id), _) => Some(id.clone()),
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
        }
    }

    async fn send_provider_cancel(&self, job: &Job, provider_job_id: &str) {
        let Some(call) = &job.provider else { return };
        let Some(provider) = self.providers.get(&call.provider) else {
            return;
        };
        let key = self.api_key_for(job, &call.provider).await.ok().flatten();
        match provider.cancel(provider_job_id, key.as_ref()).await {
            Ok(()) => tracing::info!(job = %job.id(), %provider_job_id, "provider job cancelled"),
            Err(e) => tracing::warn!(job = %job.id(), error = %e, "provider did not cancel"),
        }
    }
}

/// Whether the job has a provider call not yet asked to stop.
fn cancel_unsent(job: &Job) -> bool {
    job.provider.as_ref().is_some_and(|c| c.cancel_sent_at.is_none())
}
