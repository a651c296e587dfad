//! Stage 3, base-execution reuse (`baseExecutionId`). At admission, a plan's jobs that a base
//! execution completed (or may still complete) become references to their base twins. Once
//! dispatch claims such a reference, it completes with its twin's output. While the twin is
//! still open, the job registers as a watcher of it and goes back to `waiting`; the twin's end
//! sends it a message, on which it checks the twin and queues itself again. The job re-reads
//! the twin after registering and on every message, so a twin that ends in between is never
//! missed, and a repeat of either side is harmless. Next: completion (`completion.rs`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Engine, EngineError, MAX_RACES};
use crate::domain::{Execution, Job, JobKey, JobStatus};
use crate::plan::{BaseRef, JobSpec, Params};
use crate::ports::{Message, Write};
use crate::worker::Handled;

/// A base execution as read for a submission.
pub(super) type Base = (Execution, Vec<Job>);

impl Engine {
    /// Runs a claimed reference to a base job.
    pub(super) async fn run_base_job(&self, job: Job, base: &BaseRef) -> Result<Option<Handled>, EngineError> {
        let twin_key = JobKey {
            execution_id: base.execution_id.clone(),
            job_id: base.job_id.clone(),
        };
        if let Some(handled) = self.settle_from_twin(&job, base).await? {
            return Ok(handled);
        }
        self.store.add_watcher(&twin_key, &job.key()).await?;
        self.mark_watched(&base.execution_id).await?;
        // The twin may have ended between our read and the registration: look again.
        if let Some(handled) = self.settle_from_twin(&job, base).await? {
            return Ok(handled);
        }
        let mut parked = job.clone();
        parked.status = JobStatus::Waiting;
        parked.lease_until = None;
        parked.queued_at = None;
        match self.store.update_job(&job, &parked).await? {
            Write::Applied(parked) => {
                self.emit_job(parked.key(), JobStatus::Waiting);
                Ok(Some(Handled::Done))
            }
            Write::Stale => Ok(None),
        }
    }

    /// Flags the base execution as watched, so its job ends look for watchers.
    async fn mark_watched(&self, execution_id: &str) -> Result<(), EngineError> {
        for _ in 0..MAX_RACES {
            let Some(execution) = self.store.execution(execution_id).await? else {
                return Ok(());
            };
            if execution.watched {
                return Ok(());
            }
            let mut next = execution.clone();
            next.watched = true;
            if let Write::Applied(_) = self.store.update_execution(&execution, &next).await? {
                return Ok(());
            }
        }
        Err(EngineError::Contention(JobKey {
            execution_id: execution_id.to_string(),
            job_id: String::new(),
        }))
    }

    /// Queues a parked reference whose twin has ended; `None` to re-read and run it.
    pub(super) async fn wake_if_twin_ended(&self, job: Job, base: &BaseRef) -> Result<Option<Handled>, EngineError> {
        let key = JobKey {
            execution_id: base.execution_id.clone(),
            job_id: base.job_id.clone(),
        };
        let twin_open = self.store.job(&key).await?.is_some_and(|t| !t.status.is_terminal());
        if twin_open {
            return Ok(Some(Handled::Done));
        }
        let mut next = job.clone();
        next.status = JobStatus::Queued;
        next.queued_at = Some(self.now());
        if let Write::Applied(_) = self.store.update_job(&job, &next).await? {
            self.emit_job(job.key(), JobStatus::Queued);
        }
        Ok(None)
    }

    /// Completes or fails the job from its ended twin; `None` while the twin is open.
    async fn settle_from_twin(&self, job: &Job, base: &BaseRef) -> Result<Option<Option<Handled>>, EngineError> {
        let key = JobKey {
            execution_id: base.execution_id.clone(),
            job_id: base.job_id.clone(),
        };
        let twin = self.store.job(&key).await?;
        let outcome = match twin {
            Some(twin) if twin.status == JobStatus::Completed => match twin.output {
                Some(output) => self.complete(job, output).await?,
                None => {
                    let message = format!("base job `{}` completed without an output", base.job_id);
                    self.fail(job.clone(), "base_job_not_completed", message).await?
                }
            },
            Some(twin) if twin.status.is_terminal() => {
                let message = format!(
                    "base job `{}` of execution {} did not complete (it was {})",
                    base.job_id,
                    base.execution_id,
                    twin.status.name()
                );
                self.fail(job.clone(), "base_job_not_completed", message).await?
            }
            Some(_) => return Ok(None),
            None => {
                let message = format!("base execution {} has no job `{}`", base.execution_id, base.job_id);
                self.fail(job.clone(), "base_job_missing", message).await?
            }
        };
        Ok(Some(outcome))
    }

    /// Tells the jobs watching `job_id` (or every job of the execution, at its end) that it
    /// ended, by a message each. Safe to repeat.
    pub(super) async fn notify_watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<(), EngineError> {
        let watchers = self.store.watchers(execution_id, job_id).await?;
        let mut ready = Vec::new();
        for key in watchers {
            // The watcher's own handler checks the twin and wakes itself (`wake_if_twin_ended`).
            if let Some(watcher) = self.store.job(&key).await? {
                if !watcher.status.is_terminal() && matches!(watcher.spec.params, Params::Base(_)) {
                    ready.push(Message::Job(key));
                }
            }
        }
        self.queue.send(&ready, Duration::ZERO).await?;
        Ok(())
    }
}

/// The plan's jobs with the base execution's jobs it reuses or needs made into references
/// (`Params::Base`): a job whose id is a base job that completed, or may still complete, is
/// not run again; a base job depended on but not in the plan is added. A job whose base
/// twin ended without completing, or completed with its output deferred, runs anew.
pub(super) fn with_base_jobs(specs: Vec<JobSpec>, (base, base_jobs): &Base) -> Vec<JobSpec> {
    let by_id: HashMap<&str, &Job> = base_jobs.iter().map(|j| (j.id(), j)).collect();
    let reference = |job: &Job, send_job_webhook: bool| JobSpec {
        id: job.id().to_string(),
        operation: job.spec.operation,
        params: Params::Base(BaseRef {
            execution_id: base.id.clone(),
            job_id: job.id().to_string(),
        }),
        depends_on: Vec::new(),
        send_job_webhook,
        quality: job.spec.quality,
    };
    // A deferred output has no file (`fusion.rs`): such a job runs again, on its reused inputs.
    let deferred = |job: &Job| job.output.as_ref().is_some_and(|o| o.deferred.is_some());
    let reusable = |job: &&Job| (!job.status.is_terminal() || job.status == JobStatus::Completed) && !deferred(job);
    let mut out: Vec<JobSpec> = specs
        .into_iter()
        .map(|spec| match by_id.get(spec.id.as_str()).copied().filter(reusable) {
            Some(job) => reference(job, spec.send_job_webhook),
            None => spec,
        })
        .collect();
    let mut ids: HashSet<String> = out.iter().map(|s| s.id.clone()).collect();
    let mut needed: Vec<String> = out.iter().flat_map(|s| s.depends_on.iter()).cloned().collect();
    // Added before the plan's jobs, so the plan's last job stays last.
    let mut referenced = Vec::new();
    while let Some(id) = needed.pop() {
        let Some(job) = by_id.get(id.as_str()) else { continue };
        if !ids.insert(id) {
            continue;
        }
        if deferred(job) {
            needed.extend(job.spec.depends_on.iter().cloned());
            referenced.push(JobSpec {
                send_job_webhook: false,
                ..job.spec.clone()
            });
        } else {
            referenced.push(reference(job, false));
        }
    }
    referenced.append(&mut out);
    referenced
}
