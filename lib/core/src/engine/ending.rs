//! Stage 6, ending: what follows a job's end (`completion.rs`, `cancel.rs`) outward. A job
//! that asked for one gets its webhook message; once no job of the execution is open, the
//! execution ends, its webhook message is made, and executions built on it are told
//! (`base_jobs.rs`). The messages go to the webhook queue (`crate::webhooks::Dispatcher`).

use std::time::Duration;

use super::outputs::{execution_outputs, execution_result};
use super::{Engine, EngineError, Event, MAX_RACES};
use crate::domain::{Execution, ExecutionError, ExecutionStatus, Job, JobKey, JobStatus};
use crate::ports::{Message, Write};
use crate::webhooks::message;

impl Engine {
    /// Ends the execution once no job is open. Any number of callers may race here: the
    /// conditional write lets one win. `ended`: the job whose end brought us here, whose
    /// watchers (in executions built on this one) are told.
    pub(super) async fn finalize_if_idle(&self, execution_id: &str, ended: Option<&str>) -> Result<(), EngineError> {
        let mut told = false;
        for _ in 0..MAX_RACES {
            let Some(execution) = self.store.execution(execution_id).await? else {
                return Ok(());
            };
            // Read after the job's own write: a watcher that registered too late for this
            // read finds the job ended when it looks again (`run_base_job`).
            if execution.watched && !told {
                if let Some(job) = ended {
                    self.notify_watchers(execution_id, Some(job)).await?;
                }
                told = true;
            }
            if execution.status.is_terminal() {
                // A repeat: finish what follows the end, in case a crash cut it short.
                return self.after_ended(&execution).await;
            }
            if execution.open_jobs > 0 {
                return Ok(());
            }
            let Some((execution, jobs)) = self.store.execution_with_jobs(execution_id).await? else {
                return Ok(());
            };
            let failed: Vec<&Job> = jobs.iter().filter(|j| j.status == JobStatus::Failed).collect();
            let mut next = execution.clone();
            next.completed_at = Some(self.now());
            next.outputs = execution_outputs(&jobs);
            if execution.cancel_requested_at.is_some() {
                next.status = ExecutionStatus::Cancelled;
            } else if !failed.is_empty() {
                next.status = ExecutionStatus::Failed;
                let causes: Vec<String> = failed
                    .iter()
                    .map(|j| {
                        let why = j.error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error");
                        format!("job `{}` failed: {why}", j.id())
                    })
                    .collect();
                next.error = Some(ExecutionError {
                    message: causes.join("; "),
                    failed_jobs: failed.iter().map(|j| j.id().to_string()).collect(),
                });
            } else if jobs.iter().any(|j| j.status == JobStatus::Cancelled) {
                next.status = ExecutionStatus::Cancelled;
            } else {
                next.status = ExecutionStatus::Completed;
                next.result = execution_result(&jobs, &execution.final_job);
            }
            match self.store.update_execution(&execution, &next).await? {
                Write::Applied(done) => {
                    tracing::info!(execution = %done.id, status = done.status.name(), "execution ended");
                    // Its webhook exists before anyone woken by the event reads the status.
                    let followed = self.after_ended(&done).await;
                    self.emit(Event::ExecutionEnded {
                        id: done.id.clone(),
                        status: done.status,
                    });
                    return followed;
                }
                Write::Stale => continue,
            }
        }
        Err(EngineError::Contention(JobKey {
            execution_id: execution_id.to_string(),
            job_id: String::new(),
        }))
    }

    /// What follows an execution's end: its webhook message, and the executions built on it
    /// that wait for its jobs. Safe to repeat.
    async fn after_ended(&self, execution: &Execution) -> Result<(), EngineError> {
        if let Some(delivery) = message::for_execution(execution, self.now()) {
            if self.store.create_delivery(&delivery).await? {
                self.send_delivery(delivery.id).await?;
            }
        }
        if execution.watched {
            self.notify_watchers(&execution.id, None).await?;
        }
        Ok(())
    }

    /// Makes the end message of a job that asked for one (`sendJobWebhook`). Safe to repeat.
    pub(super) async fn ensure_job_webhook(&self, job: &Job) -> Result<(), EngineError> {
        if !job.spec.send_job_webhook || !job.status.is_terminal() {
            return Ok(());
        }
        let Some(target) = self.store.execution(&job.execution_id).await?.and_then(|e| e.webhook) else {
            return Ok(());
        };
        if let Some(delivery) = message::for_job(&target, job, self.now()) {
            if self.store.create_delivery(&delivery).await? {
                self.send_delivery(delivery.id).await?;
            }
        }
        Ok(())
    }

    /// A lost send is found by the dispatcher's sweep of due deliveries.
    async fn send_delivery(&self, delivery_id: String) -> Result<(), EngineError> {
        let message = Message::Webhook { delivery_id };
        self.webhook_queue.send(&[message], Duration::ZERO).await?;
        Ok(())
    }
}
