//! A scene's code refused (by validation, or by a render that failed for the code's sake):
//! the scene goes back to code generation with the error as feedback, a bounded number of
//! times (`EngineSettings::scene_repairs`). Reached from `settle.rs`.
//!
//! The rewind is a chain of conditional writes, each safe to repeat. The refusing step first
//! records it (`rewind`, the new round) and goes back to `waiting`; then the steps between
//! it and the code job go back to `waiting`, and the code job to `queued` with the note, and
//! the refusing step's `rewind` is cleared. A crash midway leaves the step `waiting` with its
//! `rewind` set; the redelivered message finds it there (`dispatch.rs`) and finishes the
//! rewind. Steps of the new round are released by their parent directly (`release_rewound`),
//! since their dependency edges were spent in the first round.

use std::time::Duration;

use super::{Engine, EngineError, MAX_RACES};
use crate::domain::{AttemptOutcome, AttemptRecord, Job, JobKey, JobStatus, RepairNote};
use crate::plan::{Operation, Params};
use crate::ports::{Message, Write};
use crate::scenes::{Repair, SceneStep};
use crate::worker::Handled;

impl Engine {
    pub(super) async fn repair(
        &self,
        job: Job,
        message: String,
        code_key: String,
    ) -> Result<Option<Handled>, EngineError> {
        // The scene's round is its code's, which its input shares: a step released by its
        // parent's edge (never rewound before) is still at round 0.
        let chain_round = match scene_input(&job) {
            Some(id) => {
                let key = JobKey {
                    execution_id: job.execution_id.clone(),
                    job_id: id,
                };
                self.store.job(&key).await?.map_or(job.round, |parent| parent.round)
            }
            None => job.round,
        };
        let round = chain_round.max(job.round) + 1;
        if round > self.settings.scene_repairs {
            let message = match round - 1 {
                0 => message,
                n => format!("{message} (still refused after the code was written again {n} times)"),
            };
            return self.fail(job, "code_refused", message).await;
        }
        tracing::info!(execution = %job.execution_id, job = %job.id(), round, %message, "scene code refused: writing it again");
        let mut next = job.clone();
        let mut attempt = ended_attempt(&job, self.now(), AttemptOutcome::Repaired, "code_refused", &message);
        // The scene's round: this step may not have been rewound into it yet.
        attempt.round = chain_round;
        next.history.push(attempt);
        next.status = JobStatus::Waiting;
        next.lease_until = None;
        next.released_by = None;
        next.attempts = 0;
        next.round = round;
        next.rewind = Some(RepairNote {
            round,
            refused_by: job.id().to_string(),
            step: match job.spec.operation {
                Operation::RenderScene => SceneStep::Compilation,
                _ => SceneStep::Validation,
            },
            error: message,
            code_key,
        });
        match self.store.update_job(&job, &next).await? {
            Write::Applied(job) => {
                self.emit_job(job.key(), JobStatus::Waiting);
                self.carry_out_rewind(job).await?;
                Ok(Some(Handled::Done))
            }
            Write::Stale => Ok(None),
        }
    }

    /// Moves the refusing step's chain back to its code job (see the module doc). Safe to repeat.
    pub(super) async fn carry_out_rewind(&self, job: Job) -> Result<(), EngineError> {
        let Some(note) = job.rewind.clone() else {
            return Ok(());
        };
        let cancelled = self
            .store
            .execution(&job.execution_id)
            .await?
            .is_none_or(|e| e.cancel_requested_at.is_some());
        if !cancelled {
            let mut parent = scene_input(&job);
            while let Some(id) = parent {
                let key = JobKey {
                    execution_id: job.execution_id.clone(),
                    job_id: id,
                };
                let Some(step) = self.rewind_one(&key, &note).await? else {
                    break;
                };
                parent = scene_input(&step);
            }
        }
        // Clear the intent, unless the step moved on already (released in the new round).
        let mut current = job;
        for _ in 0..MAX_RACES {
            if current.rewind.as_ref().is_none_or(|r| r.round != note.round) {
                return Ok(());
            }
            let mut next = current.clone();
            next.rewind = None;
            match self.store.update_job(&current, &next).await? {
                Write::Applied(_) => return Ok(()),
                Write::Stale => match self.store.job(&current.key()).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(()),
                },
            }
        }
        Err(EngineError::Contention(current.key()))
    }

    /// Moves one step of the chain to the note's round: a step between back to `waiting`,
    /// the code job to `queued` with the note (and its message sent). Returns the step as it
    /// now is, `None` past the code job.
    async fn rewind_one(&self, key: &JobKey, note: &RepairNote) -> Result<Option<Job>, EngineError> {
        for _ in 0..MAX_RACES {
            let Some(step) = self.store.job(key).await? else {
                return Ok(None);
            };
            let is_code = step.spec.operation == Operation::GenerateSceneCode;
            if step.round >= note.round {
                if is_code && step.status == JobStatus::Queued {
                    // A repeat: the send may have been lost.
                    self.queue.send(&[Message::Job(key.clone())], Duration::ZERO).await?;
                }
                return Ok((!is_code).then_some(step));
            }
            let mut next = step.clone();
            next.round = note.round;
            next.attempts = 0;
            next.output = None;
            next.error = None;
            next.completed_at = None;
            next.lease_until = None;
            next.released_by = None;
            if is_code {
                next.status = JobStatus::Queued;
                next.queued_at = Some(self.now());
                // A new call: the refused round's answer is kept as the note's code.
                next.provider = None;
                next.repairs.push(note.clone());
            } else {
                next.status = JobStatus::Waiting;
                next.queued_at = None;
            }
            if let Write::Applied(step) = self.store.update_job(&step, &next).await? {
                self.emit_job(key.clone(), step.status);
                if is_code {
                    self.queue.send(&[Message::Job(key.clone())], Duration::ZERO).await?;
                    return Ok(None);
                }
                return Ok(Some(step));
            }
        }
        Err(EngineError::Contention(key.clone()))
    }

    /// A child rewound into `parent`'s round is released by `parent` directly (its edge was
    /// spent in the first round). `None`: not such a child; the edge releases it.
    pub(super) async fn release_rewound(&self, parent: &Job, child: &JobKey) -> Result<Option<Release>, EngineError> {
        if parent.round == 0 {
            return Ok(None);
        }
        let resend_after = self.settings.resend_after.as_millis() as i64;
        for _ in 0..MAX_RACES {
            let Some(step) = self.store.job(child).await? else {
                return Ok(None);
            };
            if step.round != parent.round {
                return Ok(None);
            }
            let mine = step.released_by.as_deref() == Some(parent.id());
            match step.status {
                JobStatus::Waiting => {
                    let now = self.now();
                    let mut next = step.clone();
                    next.status = JobStatus::Queued;
                    next.queued_at = Some(now);
                    next.released_by = Some(parent.id().to_string());
                    if let Write::Applied(_) = self.store.update_job(&step, &next).await? {
                        self.emit_job(child.clone(), JobStatus::Queued);
                        return Ok(Some(Release::Send));
                    }
                }
                JobStatus::Queued if mine && step.queued_at.is_some_and(|at| at <= self.now() - resend_after) => {
                    return Ok(Some(Release::Send))
                }
                _ => return Ok(Some(Release::Nothing)),
            }
        }
        Err(EngineError::Contention(child.clone()))
    }

    /// A code job's refused rounds as the model reads them: each step's error and the code.
    pub(super) async fn repairs_of(&self, job: &Job) -> Result<Vec<Repair>, super::settle::WorkError> {
        let mut repairs = Vec::new();
        for note in &job.repairs {
            repairs.push(Repair {
                step: note.step,
                error: note.error.clone(),
                code: self.read_text(&note.code_key).await?,
            });
        }
        Ok(repairs)
    }
}

/// What a parent's release of a rewound child calls for.
pub(super) enum Release {
    Send,
    Nothing,
}

/// The job a scene step reads (its parent in the scene's chain).
fn scene_input(job: &Job) -> Option<String> {
    match &job.spec.params {
        Params::Scene(p) => Some(p.input.clone()),
        _ => None,
    }
}

/// A record of the attempt `job` is ending now.
pub(super) fn ended_attempt(job: &Job, now: i64, outcome: AttemptOutcome, code: &str, message: &str) -> AttemptRecord {
    AttemptRecord {
        round: job.round,
        attempt: job.attempts,
        started_at: job.attempt_started_at,
        ended_at: now,
        outcome,
        code: code.to_string(),
        message: message.to_string(),
    }
}
