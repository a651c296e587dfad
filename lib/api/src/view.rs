//! The status answer: the union of what the SDK and the design documents read.

use serde::Serialize;
use serde_json::Value;

use reelay_core::domain::{Execution, Job, JobOutput, JobStatus};

use crate::iso8601;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub id: String,
    pub execution_id: String,
    pub status: &'static str,
    /// 0–100.
    pub progress: u32,
    pub total_jobs: u32,
    pub completed_jobs: u32,
    /// A running job, if any (the SDK shows one).
    pub current_job: Option<String>,
    pub running_jobs: Vec<String>,
    pub jobs: Vec<JobView>,
    pub result: Option<Value>,
    pub outputs: serde_json::Map<String, Value>,
    pub error: Option<String>,
    pub failed_jobs: Vec<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub operation: &'static str,
    pub status: &'static str,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// A result as clients read it: at least `{url, status, duration, aspectRatio}` for a video.
fn result_value(output: &JobOutput) -> Value {
    let mut value = serde_json::to_value(output).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("status".into(), Value::from("completed"));
    }
    value
}

pub fn status_view(execution: &Execution, jobs: &[Job]) -> StatusView {
    let mut running: Vec<&Job> = jobs
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Running | JobStatus::AwaitingProvider))
        .collect();
    running.sort_by_key(|j| j.started_at);
    // Jobs in plan order, as the client wrote them.
    let order: std::collections::HashMap<&str, usize> =
        jobs.iter().map(|j| j.id()).enumerate().map(|(i, id)| (id, i)).collect();
    let mut sorted: Vec<&Job> = jobs.iter().collect();
    sorted.sort_by_key(|j| order.get(j.id()).copied());
    let total = execution.total_jobs.max(1);
    StatusView {
        id: execution.id.clone(),
        execution_id: execution.id.clone(),
        status: execution.status.name(),
        progress: execution.completed_jobs * 100 / total,
        total_jobs: execution.total_jobs,
        completed_jobs: execution.completed_jobs,
        current_job: running.first().map(|j| j.id().to_string()),
        running_jobs: running.iter().map(|j| j.id().to_string()).collect(),
        jobs: sorted
            .iter()
            .map(|j| JobView {
                id: j.id().to_string(),
                operation: j.spec.operation.name(),
                status: j.status.name(),
                result: j.output.as_ref().map(result_value),
                error: j.error.as_ref().map(|e| e.message.clone()),
                started_at: j.started_at.map(iso8601),
                completed_at: j.completed_at.map(iso8601),
            })
            .collect(),
        result: execution.result.as_ref().map(result_value),
        outputs: execution
            .outputs
            .iter()
            .map(|(id, o)| (id.clone(), result_value(o)))
            .collect(),
        error: execution.error.as_ref().map(|e| e.message.clone()),
        failed_jobs: execution
            .error
            .as_ref()
            .map(|e| e.failed_jobs.clone())
            .unwrap_or_default(),
        created_at: iso8601(execution.created_at),
        started_at: execution.started_at.map(iso8601),
        completed_at: execution.completed_at.map(iso8601),
    }
}
