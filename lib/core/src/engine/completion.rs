//! Stage 5, completion: a job's work is done (`provider_output.rs`, `media_jobs.rs`,
//! `base_jobs.rs`) or has failed for good (`settle.rs`). A completed job releases its
//! children's edges and sends those it made ready back to dispatch (`dispatch.rs`); a failed
//! one skips every descendant not yet started. Next: `ending.rs` (webhooks, the execution's end).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::repair::{ended_attempt, Release};
use super::{Engine, EngineError, MAX_RACES};
use crate::domain::{AttemptOutcome, Job, JobError, JobKey, JobOutput, JobStatus};
use crate::ports::{Message, Write};
use crate::worker::Handled;

/// Released children sent per queue call while a completion walks its children.
const SEND_CHUNK: usize = 32;

impl Engine {
    /// Records the job's output, then releases its children; `None` if the job moved meanwhile.
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

    /// Fails the job for good, then skips its descendants; `None` if the job moved meanwhile.
    pub(super) async fn fail(&self, job: Job, code: &str, message: String) -> Result<Option<Handled>, EngineError> {
        tracing::warn!(execution = %job.execution_id, job = %job.id(), code, %message, "job failed");
        let mut next = job.clone();
        next.history
            .push(ended_attempt(&job, self.now(), AttemptOutcome::Failed, code, &message));
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
            let key = JobKey {
                execution_id: job.execution_id.clone(),
                job_id: child.clone(),
            };
            match self.release_rewound(job, &key).await? {
                Some(Release::Send) => {
                    ready.push(Message::Job(key));
                    continue;
                }
                Some(Release::Nothing) => continue,
                None => {}
            }
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
        for _ in 0..MAX_RACES {
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
}
