//! Claiming, completing and failing jobs; releasing children; ending executions.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use rand::Rng;

use super::{Engine, EngineError, Event, Handled};
use crate::domain::{Execution, ExecutionError, ExecutionStatus, Job, JobError, JobOutput, JobStatus};
use crate::plan::Params;
use crate::ports::{Message, Write};
use crate::webhooks::message;

/// Why a job's work did not finish.
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
    /// The engine's own ports failed: let the queue retry the message.
    Engine(EngineError),
}

impl<E: Into<EngineError>> From<E> for WorkError {
    fn from(e: E) -> Self {
        WorkError::Engine(e.into())
    }
}

/// How long a rate-limited job waits when the provider did not say (jittered up to +20 %).
const THROTTLE_WAIT: Duration = Duration::from_secs(5);

/// Released children sent per queue call while a completion walks its children.
const SEND_CHUNK: usize = 32;

impl Engine {
    /// Takes the job (queued, or running with a lapsed lease) and does its work.
    pub(super) async fn claim_and_run(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let now = self.now();
        let mut next = job.clone();
        next.status = JobStatus::Running;
        next.attempts += 1;
        next.lease_until = Some(now + self.settings.lease.as_millis() as i64);
        next.started_at.get_or_insert(now);
        let job = match self.store.update_job(&job, &next).await? {
            Write::Applied(job) => job,
            Write::Stale => return Ok(None),
        };
        self.emit_job(job.key(), JobStatus::Running);
        match &job.spec.params {
            Params::Provider(params) => {
                let params = params.clone();
                self.start_provider_job(&job, &params).await
            }
            Params::Merge(_) | Params::Reframe(_) => {
                let outcome = self.run_media_job(&job).await.map(Some);
                self.settle(job, outcome).await
            }
            Params::Base(base) => {
                let base = base.clone();
                self.run_base_job(job, &base).await
            }
        }
    }

    /// Turns the result of a piece of work into the job's next state.
    pub(super) async fn settle(
        &self,
        job: Job,
        outcome: Result<Option<Handled>, WorkError>,
    ) -> Result<Option<Handled>, EngineError> {
        match outcome {
            Ok(handled) => Ok(handled),
            Err(WorkError::Engine(e)) => Err(e),
            Err(WorkError::Fatal { code, message }) => self.fail(job, code, message).await,
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
            Err(WorkError::Passing { message, retry_after }) if job.attempts < self.settings.max_attempts => {
                let backoff = self.settings.retry_base * 2u32.saturating_pow(job.attempts.saturating_sub(1));
                let delay = retry_after.unwrap_or(backoff);
                tracing::warn!(execution = %job.execution_id, job = %job.id(), attempt = job.attempts, %message, ?delay, "job will be retried");
                // Give up the lease so the redelivered message can claim the job again.
                let mut next = job.clone();
                next.lease_until = None;
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

    pub(super) async fn complete(&self, job: &Job, output: JobOutput) -> Result<Option<Handled>, EngineError> {
        let mut next = job.clone();
        next.status = JobStatus::Completed;
        next.output = Some(output);
        next.completed_at = Some(self.now());
        next.lease_until = None;
        match self.store.update_job(job, &next).await? {
            Write::Applied(done) => {
                self.emit_job(done.key(), JobStatus::Completed);
                self.after_completed(&done).await?;
                Ok(Some(Handled::Done))
            }
            Write::Stale => Ok(None),
        }
    }

    pub(super) async fn fail(&self, job: Job, code: &str, message: String) -> Result<Option<Handled>, EngineError> {
        tracing::warn!(execution = %job.execution_id, job = %job.id(), code, %message, "job failed");
        let mut next = job.clone();
        next.status = JobStatus::Failed;
        next.error = Some(JobError {
            code: code.to_string(),
            message,
        });
        next.completed_at = Some(self.now());
        next.lease_until = None;
        match self.store.update_job(&job, &next).await? {
            Write::Applied(failed) => {
                self.emit_job(failed.key(), JobStatus::Failed);
                self.after_failed(&failed).await?;
                Ok(Some(Handled::Done))
            }
            Write::Stale => Ok(None),
        }
    }

    /// Releases each child's edge from this job and sends the children it made ready.
    /// Safe to repeat: an edge is released once, and a repeat re-sends only the children
    /// this job released that nobody has claimed yet (their send may have been lost).
    pub(super) async fn after_completed(&self, job: &Job) -> Result<(), EngineError> {
        self.ensure_job_webhook(job).await?;
        let now = self.now();
        let resend_after = self.settings.resend_after.as_millis() as i64;
        let mut ready = Vec::new();
        for child in &job.children {
            let key = crate::domain::JobKey {
                execution_id: job.execution_id.clone(),
                job_id: child.clone(),
            };
            let release = self.store.release_edge(&key, job.id(), now).await?;
            let mine = release.status == JobStatus::Queued && release.released_by.as_deref() == Some(job.id());
            if mine && release.removed {
                self.emit_job(key.clone(), JobStatus::Queued);
                ready.push(Message::Job(key));
            } else if mine && release.queued_at.is_some_and(|at| at <= now - resend_after) {
                ready.push(Message::Job(key));
            }
            // Send as we go, so the first children of a wide fan-out start before the last
            // ones are released.
            if ready.len() >= SEND_CHUNK {
                self.queue.send(&ready, Duration::ZERO).await?;
                ready.clear();
            }
        }
        self.queue.send(&ready, Duration::ZERO).await?;
        self.finalize_if_idle(&job.execution_id, Some(job.id())).await
    }

    /// Skips every descendant that has not started (the whole sub-DAG), then ends the
    /// execution if nothing is left running. Safe to repeat.
    pub(super) async fn after_failed(&self, job: &Job) -> Result<(), EngineError> {
        self.ensure_job_webhook(job).await?;
        let mut frontier: VecDeque<String> = job.children.iter().cloned().collect();
        let mut seen: HashSet<String> = frontier.iter().cloned().collect();
        while !frontier.is_empty() {
            let ids: Vec<String> = frontier.drain(..).collect();
            for child in self.store.jobs(&job.execution_id, &ids).await? {
                for grandchild in &child.children {
                    if seen.insert(grandchild.clone()) {
                        frontier.push_back(grandchild.clone());
                    }
                }
                self.skip(child, job.id()).await?;
            }
        }
        self.finalize_if_idle(&job.execution_id, Some(job.id())).await
    }

    async fn skip(&self, mut child: Job, cause: &str) -> Result<(), EngineError> {
        for _ in 0..super::MAX_RACES {
            if child.status == JobStatus::Skipped {
                // A repeat: the webhook may not have been made before a crash.
                return self.ensure_job_webhook(&child).await;
            }
            if !matches!(child.status, JobStatus::Waiting | JobStatus::Queued) {
                return Ok(());
            }
            let mut next = child.clone();
            next.status = JobStatus::Skipped;
            next.error = Some(JobError {
                code: "dependency_failed".into(),
                message: format!("skipped: job `{cause}` failed upstream"),
            });
            next.completed_at = Some(self.now());
            match self.store.update_job(&child, &next).await? {
                Write::Applied(skipped) => {
                    self.emit_job(child.key(), JobStatus::Skipped);
                    return self.ensure_job_webhook(&skipped).await;
                }
                Write::Stale => match self.store.job(&child.key()).await? {
                    Some(fresh) => child = fresh,
                    None => return Ok(()),
                },
            }
        }
        Err(EngineError::Contention(child.key()))
    }

    /// Ends the execution once no job is open. Any number of callers may race here: the
    /// conditional write lets one win. `ended`: the job whose end brought us here, whose
    /// watchers (in executions built on this one) are told.
    pub(super) async fn finalize_if_idle(&self, execution_id: &str, ended: Option<&str>) -> Result<(), EngineError> {
        let mut told = false;
        for _ in 0..super::MAX_RACES {
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
            next.outputs = jobs
                .iter()
                .filter(|j| j.children.is_empty())
                .filter_map(|j| j.output.clone().map(|o| (j.id().to_string(), o)))
                .collect::<BTreeMap<_, _>>();
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
                next.result = jobs
                    .iter()
                    .find(|j| j.id() == execution.final_job)
                    .and_then(|j| j.output.clone());
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
        Err(EngineError::Contention(crate::domain::JobKey {
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
