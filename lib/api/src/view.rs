//! The status answer: the union of what the SDK and the design documents read.

use serde::Serialize;
use serde_json::Value;

use reelay_core::domain::{DeliveryState, Execution, ExecutionStatus, Job, JobOutput, JobStatus, WebhookDelivery};
use reelay_core::plan::{Params, ProviderParams};

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
    /// Whether the execution was cancelled: on the SDK's route its `status` reads `failed`.
    pub cancelled: bool,
    pub failed_jobs: Vec<String>,
    pub base_execution_id: Option<String>,
    /// The end-of-execution webhook's delivery, when the execution has a webhook and has ended.
    pub webhook: Option<DeliveryView>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// Where a webhook message stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub webhook_id: String,
    pub delivered: bool,
    /// pending, delivered, failed (given up: 4xx, 410, refused address) or dead (every attempt failed).
    pub state: &'static str,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

impl From<&WebhookDelivery> for DeliveryView {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryView {
            webhook_id: d.id.clone(),
            delivered: d.state == DeliveryState::Delivered,
            state: d.state.name(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            next_attempt_at: d
                .next_attempt_at
                .filter(|_| d.state == DeliveryState::Pending)
                .map(iso8601),
            delivered_at: d.delivered_at.map(iso8601),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub operation: &'static str,
    /// The model a provider job runs: the one it named, or the server's default for its
    /// operation when it named none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub status: &'static str,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// The job's own webhook (`sendJobWebhook`), once it has ended.
    pub webhook: Option<DeliveryView>,
}

fn model_of(job: &Job) -> Option<&ProviderParams> {
    match &job.spec.params {
        Params::Provider(params) => Some(params),
        _ => None,
    }
}

pub fn status_view(execution: &Execution, jobs: &[Job], deliveries: &[WebhookDelivery]) -> StatusView {
    let delivery_of = |job: Option<&str>| {
        deliveries
            .iter()
            .find(|d| d.job_id.as_deref() == job)
            .map(DeliveryView::from)
    };
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
                provider: model_of(j).map(|p| p.provider.clone()),
                model_id: model_of(j).map(|p| p.model_id.clone()),
                status: j.status.name(),
                result: j.output.as_ref().map(JobOutput::as_result),
                error: j.error.as_ref().map(|e| e.message.clone()),
                started_at: j.started_at.map(iso8601),
                completed_at: j.completed_at.map(iso8601),
                webhook: delivery_of(Some(j.id())),
            })
            .collect(),
        result: execution.result.as_ref().map(JobOutput::as_result),
        outputs: execution
            .outputs
            .iter()
            .map(|(id, o)| (id.clone(), o.as_result()))
            .collect(),
        error: execution_error(execution),
        cancelled: execution.status == ExecutionStatus::Cancelled,
        failed_jobs: execution
            .error
            .as_ref()
            .map(|e| e.failed_jobs.clone())
            .unwrap_or_default(),
        base_execution_id: execution.base_execution_id.clone(),
        webhook: delivery_of(None),
        created_at: iso8601(execution.created_at),
        started_at: execution.started_at.map(iso8601),
        completed_at: execution.completed_at.map(iso8601),
    }
}

impl StatusView {
    /// As the SDK's route answers: its blocking mode polls until `completed` or `failed` and
    /// knows no other end, so a cancelled execution reads `failed` there, with `cancelled`
    /// and `error` saying why.
    pub fn for_sdk(mut self) -> Self {
        if self.cancelled {
            self.status = ExecutionStatus::Failed.name();
        }
        self
    }
}

/// Why an execution did not complete: its failure, or its cancellation (and when it was
/// asked for), so a client that shows only `error` has something to show.
pub(crate) fn execution_error(execution: &Execution) -> Option<String> {
    if let Some(error) = &execution.error {
        return Some(error.message.clone());
    }
    (execution.status == ExecutionStatus::Cancelled).then(|| match execution.cancel_requested_at {
        Some(at) => format!("execution was cancelled by a cancel request at {}", iso8601(at)),
        None => "execution was cancelled".to_string(),
    })
}
