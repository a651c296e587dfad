//! One encode per chain of edits. A media job whose output one edit alone reads (a reframe
//! or captions of this execution, waiting on nothing else) and that owes nobody its file (no
//! per-job webhook) is not run on its own: it completes at once with a *deferred* output, and
//! the edit that reads it runs both as one ffmpeg pass (`MediaTask::Chain`). A chain grows a
//! link at a time, so merge → reframe → captions is encoded once, by the captions job.
//!
//! Every job still completes with its own record; the deferred ones have no file. A later
//! execution that asks for one (a plan on this one as base in which nothing reads that job,
//! or it has a per-job webhook) makes it then: a deferred job is never reused as a base job
//! but run again, its own inputs reused (`base_jobs.rs`), so no provider is paid again.

use super::settle::WorkError;
use super::Engine;
use crate::domain::{Deferred, Job, JobKey, JobOutput};
use crate::plan::{MediaRef, Params, TranscriptSource};
use crate::ports::{MediaStep, MediaTask};

impl Engine {
    /// The job this one's edit can be fused into, if any.
    pub(super) async fn fused_reader(&self, job: &Job) -> Result<Option<String>, WorkError> {
        let starts_chain = matches!(
            job.spec.params,
            Params::Merge(_) | Params::Reframe(_) | Params::Subtitles(_)
        );
        let [reader] = job.children.as_slice() else {
            return Ok(None);
        };
        if !starts_chain || job.spec.send_job_webhook {
            return Ok(None);
        }
        let key = JobKey {
            execution_id: job.execution_id.clone(),
            job_id: reader.clone(),
        };
        let Some(reader) = self.store.job(&key).await? else {
            return Ok(None);
        };
        let mine = MediaRef::Job(job.id().to_string());
        let reads_only_me = reader.spec.depends_on.len() == 1
            && match &reader.spec.params {
                Params::Reframe(r) => r.input == mine,
                // Words read from this job's own output would need its file.
                Params::Subtitles(s) => s.video == mine && s.transcript != TranscriptSource::Media(mine.clone()),
                _ => false,
            };
        if !reads_only_me {
            return Ok(None);
        }
        // The execution's result (the plan's last job, which a plan listed out of order may
        // give a reader) is a file the client reads.
        let is_result = self
            .store
            .execution(&job.execution_id)
            .await?
            .is_some_and(|e| e.final_job == job.id());
        Ok((!is_result).then(|| reader.id().to_string()))
    }

    /// The edit this job reads its picture from, when that edit's output was deferred: the
    /// task that makes it (`None`: the input is a file).
    pub(super) async fn deferred_input(
        &self,
        input: &MediaRef,
        parents: &std::collections::HashMap<String, JobOutput>,
    ) -> Result<Option<MediaTask>, WorkError> {
        let MediaRef::Job(id) = input else { return Ok(None) };
        let Some(deferred) = parents.get(id).and_then(|o| o.deferred.as_ref()) else {
            return Ok(None);
        };
        let Some(maker) = self.store.job(&deferred.job).await? else {
            return Err(WorkError::Fatal {
                code: "input_missing",
                message: format!("job `{}`, whose edit this job was to run, is gone", deferred.job.job_id),
            });
        };
        Ok(Some(Box::pin(self.media_task(&maker)).await?))
    }
}

/// The output a job completes with when `reader` makes it part of its own encode.
pub(super) fn deferred_output(job: &Job, reader: String) -> JobOutput {
    JobOutput {
        url: String::new(),
        key: String::new(),
        kind: job.spec.operation.output_kind(),
        content_type: "video/mp4".into(),
        size_bytes: 0,
        duration: None,
        width: None,
        height: None,
        aspect_ratio: None,
        transcript: None,
        background: None,
        deferred: Some(Deferred {
            job: job.key(),
            fused_into: reader,
        }),
    }
}

/// `step` after `before` (a task or a chain), as one chain.
pub(super) fn then(before: MediaTask, step: MediaStep) -> MediaTask {
    match before {
        MediaTask::Chain { start, mut then } => {
            then.push(step);
            MediaTask::Chain { start, then }
        }
        start => MediaTask::Chain {
            start: Box::new(start),
            then: vec![step],
        },
    }
}
