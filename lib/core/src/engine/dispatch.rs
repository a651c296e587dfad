//! Stage 2, dispatch: a job message (sent at admission, by a release, a callback or a sweep)
//! is read and the job moved on by its status. A queued job is claimed here and its work
//! started by kind: provider submit (`provider_submit.rs`), a media job (`media_jobs.rs`) or a
//! base reference (`base_jobs.rs`). A repeat of an ended job re-runs what follows its end
//! (`completion.rs`, `ending.rs`), which is what repairs a crash between the two.
//!
//! A runner sized for provider work (AWS's job runner) handles messages with a media queue
//! ([`crate::worker::MediaForwarding`]): a media job's message is forwarded there, to the runner
//! with the memory for ffmpeg, before anything is claimed.

use std::time::Duration;

use super::{Engine, EngineError, MAX_RACES};
use crate::background::Background;
use crate::domain::{Job, JobStatus};
use crate::plan::{Operation, Params};
use crate::ports::{Message, Queue, Write};
use crate::worker::Handled;

impl Engine {
    /// Moves the job a message names as far as it can go now.
    pub async fn handle(&self, message: &Message) -> Result<Handled, EngineError> {
        self.handle_on(message, None).await
    }

    /// [`Engine::handle`] on a runner that leaves media work to the runner of `media_queue`,
    /// when given.
    pub(crate) async fn handle_on(
        &self,
        message: &Message,
        media_queue: Option<&dyn Queue>,
    ) -> Result<Handled, EngineError> {
        let key = match message {
            Message::Job(key) => key,
            Message::Cancel { execution_id } => {
                self.carry_out_cancel(execution_id).await?;
                return Ok(Handled::Done);
            }
            Message::Webhook { .. } => {
                tracing::warn!("a webhook message reached the job queue; dropped");
                return Ok(Handled::Done);
            }
        };
        for _ in 0..MAX_RACES {
            let Some(job) = self.store.job(key).await? else {
                tracing::warn!(execution = %key.execution_id, job = %key.job_id, "message for an unknown job dropped");
                return Ok(Handled::Done);
            };
            // Forwarded as it came, and done here: no claim, so a duplicate is forwarded too
            // and meets the media runner's claim like any duplicate.
            if let Some(media_queue) = media_queue.filter(|_| is_media_work(&job)) {
                media_queue.send(std::slice::from_ref(message), Duration::ZERO).await?;
                return Ok(Handled::Done);
            }
            if let Some(handled) = self.step(job).await? {
                return Ok(handled);
            }
        }
        Err(EngineError::Contention(key.clone()))
    }

    /// One step; `None` when a conditional write lost a race and the job must be re-read.
    async fn step(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let now = self.now();
        let held = |job: &Job| {
            let until = job.lease_until.unwrap_or(now);
            Handled::RetryAfter(Duration::from_millis((until - now).max(1) as u64))
        };
        match job.status {
            // A scene step whose code was refused, its rewind cut short by a crash.
            JobStatus::Waiting if job.rewind.is_some() => {
                self.carry_out_rewind(job).await?;
                Ok(Some(Handled::Done))
            }
            JobStatus::Waiting => match &job.spec.params {
                // A reference to a base job, told its twin ended (perhaps while it was parking).
                Params::Base(base) => {
                    let base = base.clone();
                    self.wake_if_twin_ended(job, &base).await
                }
                // A duplicate or early message: the job is released by its last parent.
                _ => Ok(Some(Handled::Done)),
            },
            JobStatus::Queued => self.claim_and_run(job).await,
            JobStatus::Running if job.lease_free(now) => self.claim_and_run(job).await,
            JobStatus::Running => Ok(Some(held(&job))),
            JobStatus::AwaitingProvider => {
                let has_outcome = job.provider.as_ref().is_some_and(|p| p.outcome.is_some());
                if !has_outcome {
                    // The webhook or the poller will send it on when the provider is done.
                    Ok(Some(Handled::Done))
                } else if job.lease_free(now) {
                    self.finish_provider_job(job).await
                } else {
                    Ok(Some(held(&job)))
                }
            }
            // Repeats of a finished job re-run what follows it: this is what repairs a crash
            // between the job's own write and the release of its children.
            JobStatus::Completed => {
                self.after_completed(&job).await?;
                Ok(Some(Handled::Done))
            }
            JobStatus::Failed => {
                self.after_failed(&job).await?;
                Ok(Some(Handled::Done))
            }
            JobStatus::Skipped | JobStatus::Cancelled => {
                self.finalize_if_idle(&job.execution_id, None).await?;
                Ok(Some(Handled::Done))
            }
        }
    }

    /// Takes the job (queued, or running with a lapsed lease) and does its work.
    async fn claim_and_run(&self, job: Job) -> Result<Option<Handled>, EngineError> {
        let now = self.now();
        let mut next = job.clone();
        next.status = JobStatus::Running;
        next.attempts += 1;
        next.lease_until = Some(now + self.settings.lease.as_millis() as i64);
        next.started_at.get_or_insert(now);
        next.attempt_started_at = Some(now);
        // Released in a repair round before its rewind was marked done: the rewind is done.
        next.rewind = None;
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
            Params::Merge(_) | Params::Reframe(_) | Params::Subtitles(_) | Params::Layer(_) => {
                let outcome = self.run_media_job(&job).await;
                self.settle(job, outcome).await
            }
            Params::Base(base) => {
                let base = base.clone();
                self.run_base_job(job, &base).await
            }
            Params::Scene(params) => {
                let params = params.clone();
                let outcome = Box::pin(self.run_scene_job(&job, &params)).await;
                self.settle(job, outcome).await
            }
        }
    }

    /// Re-sends messages for jobs released long ago and never claimed (a lost send). Each is
    /// marked re-sent first (its `queued_at` moves to now), so under a backlog a job is sent
    /// again once per `stale_queued_after`, not at every tick.
    pub async fn sweep_stale(&self, limit: usize) -> Result<usize, EngineError> {
        let now = self.now();
        let before = now - self.settings.stale_queued_after.as_millis() as i64;
        let mut messages = Vec::new();
        for key in self.store.stale_queued(before, limit).await? {
            let Some(job) = self.store.job(&key).await? else {
                continue;
            };
            if job.status != JobStatus::Queued || job.queued_at.is_none_or(|at| at >= before) {
                continue;
            }
            let mut resent = job.clone();
            resent.queued_at = Some(now);
            // Stale: it moved meanwhile, and whoever moved it carries on.
            if let Write::Applied(_) = self.store.update_job(&job, &resent).await? {
                messages.push(Message::Job(key));
            }
        }
        self.queue.send(&messages, Duration::ZERO).await?;
        Ok(messages.len())
    }
}

/// Whether a job's work needs the media runner's memory and CPUs: an ffmpeg job, a scene's
/// upload (a remux), or a background removal whose output gets an ffmpeg pass. A scene's
/// check and render run in the scene renderer (the runner only waits), and a provider's
/// output is only probed.
fn is_media_work(job: &Job) -> bool {
    let operation = job.spec.operation;
    match &job.spec.params {
        Params::Merge(_) | Params::Reframe(_) | Params::Subtitles(_) | Params::Layer(_) => true,
        Params::Scene(_) => operation == Operation::UploadScene,
        Params::Provider(params) => Background::of(operation, &params.options)
            .ok()
            .flatten()
            .is_some_and(|asked| asked.step(operation.output_kind()).is_some()),
        Params::Base(_) => false,
    }
}
