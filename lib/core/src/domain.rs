//! Executions and jobs: their records, states and outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{JobId, JobSpec, MediaKind};
use crate::scenes::{SceneStep, WorkflowMode};
// A provider call records how its model completes, which the catalog owns.
pub use crate::plan::Completion;
use crate::secrets::Sealed;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Waiting,
    Queued,
    Running,
    AwaitingProvider,
    Completed,
    Failed,
    Skipped,
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Skipped | JobStatus::Cancelled
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::AwaitingProvider => "awaiting_provider",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Skipped => "skipped",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<JobStatus> {
        [
            JobStatus::Waiting,
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::AwaitingProvider,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Skipped,
            JobStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Processing => "processing",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<ExecutionStatus> {
        [
            ExecutionStatus::Pending,
            ExecutionStatus::Processing,
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A spoken word and when it is said, in seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

/// A stored media output (ours, in the blob store) and what probing it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutput {
    pub url: String,
    /// The blob key the output lives under.
    pub key: String,
    pub kind: MediaKind,
    pub content_type: String,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// Speech whose provider gave word timings (ElevenLabs, Hume): the words, so captions
    /// need no transcription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Vec<TimedWord>>,
    /// A removed background's kind: `green`, `#rrggbb`, `transparent` or `matte`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Not made: the one edit that reads this output made it part of its own single encode
    /// (`engine/fusion.rs`). No file, no URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Deferred>,
}

/// An output left unmade because the edit that reads it ran with it as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deferred {
    /// The job whose edit this output is (another execution's, when reused as a base job).
    pub job: JobKey,
    /// The job that made it part of its own encode.
    pub fused_into: JobId,
}

impl JobOutput {
    /// The output as clients read it (status answers, webhooks): at least
    /// `{url, status, duration, aspectRatio}` for a video.
    pub fn as_result(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("status".into(), serde_json::Value::from("completed"));
            // Where it is kept is ours; clients use the URL.
            map.remove("key");
            if self.deferred.is_some() {
                // No file: no URL, size or probe to show.
                for field in ["url", "sizeBytes"] {
                    map.remove(field);
                }
            }
        }
        value
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// Where a provider job stands. Written before the provider is called (the intent), so a
/// retried submit can reconcile instead of paying twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCall {
    pub provider: String,
    pub model_id: String,
    /// Carried to the provider (callback URL, metadata) and checked on its callback.
    pub token: String,
    pub provider_job_id: Option<String>,
    pub completion: Completion,
    pub submitted_at: Option<Millis>,
    pub polls: u32,
    pub next_poll_at: Option<Millis>,
    pub outcome: Option<ProviderOutcome>,
    /// When a submit went out and no answer came back: the provider may have the job.
    #[serde(default)]
    pub uncertain_since: Option<Millis>,
    /// When the provider was asked to stop this job: written (conditionally) before the
    /// request, so that of all the handlers that would cancel it only one asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_sent_at: Option<Millis>,
}

/// What the provider said at the end, recorded once; the job runner acts on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ProviderOutcome {
    Succeeded {
        output_url: String,
        content_type: Option<String>,
    },
    /// A success that came inline (a `data:` URI), too large for the record: its output was
    /// kept in the blob store first, under the job's output key (`provider_output.rs`).
    Stored {
        key: String,
        content_type: String,
        size_bytes: u64,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub execution_id: String,
    pub spec: JobSpec,
    pub children: Vec<JobId>,
    /// The parent whose completion released this job (that parent re-sends the message when
    /// its completion is retried, repairing a crash between the release and the send).
    /// The set of parents still pending lives in the store, one entry per edge (`Store::release_edge`).
    pub released_by: Option<JobId>,
    pub status: JobStatus,
    pub attempts: u32,
    /// While set and in the future, a runner holds this job.
    pub lease_until: Option<Millis>,
    pub queued_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    pub provider: Option<ProviderCall>,
    pub output: Option<JobOutput>,
    pub error: Option<JobError>,
    /// The job's own provider key (`apiKey`), sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Sealed>,
    /// When the current attempt began (`started_at` is the first's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_started_at: Option<Millis>,
    /// Attempts that ended without completing the job, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
    /// Repair round (a scene's steps run again on new code after their code was refused,
    /// `engine/repair.rs`): 0 until then.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// Set on a scene step whose code was refused, until the rewind of its chain is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind: Option<RepairNote>,
    /// On a scene's code job: each refusal of its code, oldest first (the feedback for the
    /// next round).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<RepairNote>,
    /// Bumped by every write; every write is conditional on it.
    pub version: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An attempt that ended without completing its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub round: u32,
    pub attempt: u32,
    pub started_at: Option<Millis>,
    pub ended_at: Millis,
    pub outcome: AttemptOutcome,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttemptOutcome {
    /// A passing failure: tried again after a backoff.
    Retried,
    /// Its code was refused: the scene's code is written again with the error as feedback.
    Repaired,
    /// The job failed for good.
    Failed,
}

/// What a workflow run was asked for, beyond its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    pub mode: WorkflowMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A scene's code refused by one of its steps: the round its chain moves on to, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairNote {
    pub round: u32,
    pub refused_by: JobId,
    pub step: SceneStep,
    pub error: String,
    /// The refused code's blob, read when the code is written again (the record keeps the
    /// key, not the code, to stay small).
    pub code_key: String,
}

impl Job {
    /// The records of a new execution's jobs: roots queued at `now`, the rest waiting,
    /// each job's children listed.
    pub fn for_plan(execution_id: &str, specs: &[JobSpec], now: Millis) -> Vec<Job> {
        let mut jobs: Vec<Job> = specs
            .iter()
            .map(|spec| {
                let root = spec.depends_on.is_empty();
                Job {
                    execution_id: execution_id.to_string(),
                    spec: spec.clone(),
                    children: Vec::new(),
                    released_by: None,
                    status: if root { JobStatus::Queued } else { JobStatus::Waiting },
                    attempts: 0,
                    lease_until: None,
                    queued_at: root.then_some(now),
                    started_at: None,
                    completed_at: None,
                    provider: None,
                    output: None,
                    error: None,
                    api_key: None,
                    attempt_started_at: None,
                    history: Vec::new(),
                    round: 0,
                    rewind: None,
                    repairs: Vec::new(),
                    version: 0,
                }
            })
            .collect();
        let index: std::collections::HashMap<&str, usize> =
            specs.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        for spec in specs {
            for dep in &spec.depends_on {
                if let Some(&parent) = index.get(dep.as_str()) {
                    jobs[parent].children.push(spec.id.clone());
                }
            }
        }
        jobs
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn key(&self) -> JobKey {
        JobKey {
            execution_id: self.execution_id.clone(),
            job_id: self.spec.id.clone(),
        }
    }

    pub fn lease_free(&self, now: Millis) -> bool {
        self.lease_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobKey {
    pub execution_id: String,
    pub job_id: JobId,
}

impl JobKey {
    /// The job's id in provider callback URLs: URL-safe, one-to-one with the key.
    pub fn record_id(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}\n{}", self.execution_id, self.job_id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn from_record_id(record: &str) -> Option<JobKey> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(record).ok()?;
        let (execution_id, job_id) = std::str::from_utf8(&raw).ok()?.split_once('\n')?;
        Some(JobKey {
            execution_id: execution_id.to_string(),
            job_id: job_id.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionError {
    pub message: String,
    /// The root-cause jobs (those that failed; their descendants were skipped).
    pub failed_jobs: Vec<JobId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    pub tenant_id: String,
    pub status: ExecutionStatus,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    pub total_jobs: u32,
    /// Jobs not yet in a terminal state; kept by the store in the same atomic write as each job's.
    pub open_jobs: u32,
    pub completed_jobs: u32,
    pub final_job: JobId,
    pub result: Option<JobOutput>,
    pub outputs: BTreeMap<JobId, JobOutput>,
    pub error: Option<ExecutionError>,
    pub webhook: Option<StoredWebhook>,
    pub base_execution_id: Option<String>,
    /// Provider keys sent with the request, by provider, sealed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_keys: BTreeMap<String, Sealed>,
    /// Set once by a cancel request; the execution then ends `cancelled`.
    #[serde(default)]
    pub cancel_requested_at: Option<Millis>,
    /// Another execution builds on this one's jobs (`baseExecutionId`) and waits for some:
    /// only then do job ends look for watchers.
    #[serde(default)]
    pub watched: bool,
    /// Set when the execution is a code-to-video workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowRun>,
    pub version: u64,
}

/// Where an execution's webhooks go; the secret is sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredWebhook {
    pub url: String,
    pub secret: Option<Sealed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; `next_attempt_at` says when to try.
    Pending,
    Delivered,
    /// Given up for good: a 4xx other than 408/429, 410 Gone, or a refused address.
    Failed,
    /// Every attempt of the schedule failed: dead-lettered.
    Dead,
}

impl DeliveryState {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
        }
    }
}

/// One client webhook message (an execution's end, or a job's), with its delivery state.
/// The body is fixed when the message is made, so every retry sends the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The `webhook-id`: derived from what the message is about, so making it twice is a no-op.
    pub id: String,
    pub execution_id: String,
    /// Set for a per-job webhook.
    pub job_id: Option<JobId>,
    pub url: String,
    pub secret: Option<Sealed>,
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due (while pending); pushed ahead while an attempt is in flight.
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
    pub version: u64,
}

/// How a job's transition moves its execution's counters. Adapters apply it in the same
/// atomic write as the job, so the counters can never drift from the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterDelta {
    pub open: i64,
    pub completed: i64,
    /// The execution leaves `pending` (the first job started).
    pub start: bool,
}

impl CounterDelta {
    pub fn between(prev: JobStatus, next: JobStatus) -> CounterDelta {
        let terminal = |s: JobStatus| i64::from(s.is_terminal());
        let done = |s: JobStatus| i64::from(s == JobStatus::Completed);
        CounterDelta {
            open: terminal(prev) - terminal(next),
            completed: done(next) - done(prev),
            start: prev != JobStatus::Running && next == JobStatus::Running,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == CounterDelta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_round_trip_any_job_id() {
        for job_id in ["job1", "a b/c?d=e", "ünïcode\n2", ""] {
            let key = JobKey {
                execution_id: "0196a3f2-7c1e".into(),
                job_id: job_id.into(),
            };
            let record = key.record_id();
            assert!(
                record
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{record}"
            );
            assert_eq!(JobKey::from_record_id(&record), Some(key));
        }
        assert_eq!(JobKey::from_record_id("!!"), None);
    }

    #[test]
    fn counter_delta_follows_terminal_moves_only() {
        use JobStatus::*;
        assert_eq!(CounterDelta::between(Queued, Queued), CounterDelta::default());
        let d = CounterDelta::between(Running, Completed);
        assert_eq!((d.open, d.completed, d.start), (-1, 1, false));
        let d = CounterDelta::between(Waiting, Skipped);
        assert_eq!((d.open, d.completed), (-1, 0));
        assert!(CounterDelta::between(Queued, Running).start);
        assert!(CounterDelta::between(Completed, Completed).is_empty());
    }
}
