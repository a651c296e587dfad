//! The webhook messages reelay sends: what they say (the bodies of `api-compat.md`) and
//! their ids (stable, so making one twice is a no-op and receivers can dedupe).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::{DeliveryState, Execution, Job, Millis, StoredWebhook, WebhookDelivery};
use crate::plan::MediaKind;
use crate::time::iso8601;

/// `webhook-id` of an execution's end message.
pub fn execution_message_id(execution_id: &str) -> String {
    format!("msg_{}", execution_id.replace('-', ""))
}

/// `webhook-id` of a job's end message (job ids are free strings: hashed into the id).
pub fn job_message_id(execution_id: &str, job_id: &str) -> String {
    let digest = Sha256::digest(job_id.as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{}_{short}", execution_id.replace('-', ""))
}

/// `{executionId, status, result, video?, error, failedJobs, outputs, completedAt}`.
pub fn execution_body(execution: &Execution) -> Value {
    let result = execution.result.as_ref().map(|o| o.as_result());
    let mut body = json!({
        "executionId": execution.id,
        "status": execution.status.name(),
        "result": result,
        "error": execution.error.as_ref().map(|e| e.message.clone()),
        "failedJobs": execution.error.as_ref().map(|e| e.failed_jobs.clone()).unwrap_or_default(),
        "outputs": execution.outputs.iter().map(|(id, o)| (id.clone(), o.as_result())).collect::<serde_json::Map<_, _>>(),
        "completedAt": execution.completed_at.map(iso8601),
    });
    // The design documents read a video result under `video` as well.
    if execution.result.as_ref().is_some_and(|o| o.kind == MediaKind::Video) {
        body["video"] = body["result"].clone();
    }
    body
}

/// `{executionId, jobId, operation, status, result, error, completedAt}`.
pub fn job_body(job: &Job) -> Value {
    json!({
        "executionId": job.execution_id,
        "jobId": job.id(),
        "operation": job.spec.operation.name(),
        "status": job.status.name(),
        "result": job.output.as_ref().map(|o| o.as_result()),
        "error": job.error.as_ref().map(|e| e.message.clone()),
        "completedAt": job.completed_at.map(iso8601),
    })
}

fn delivery(
    id: String,
    execution_id: &str,
    job_id: Option<String>,
    target: &StoredWebhook,
    body: &Value,
    now: Millis,
) -> WebhookDelivery {
    WebhookDelivery {
        id,
        execution_id: execution_id.to_string(),
        job_id,
        url: target.url.clone(),
        secret: target.secret.clone(),
        body: body.to_string(),
        state: DeliveryState::Pending,
        attempts: 0,
        last_status_code: None,
        last_error: None,
        next_attempt_at: Some(now),
        created_at: now,
        delivered_at: None,
        version: 0,
    }
}

/// The end message of an ended execution that has a webhook.
pub fn for_execution(execution: &Execution, now: Millis) -> Option<WebhookDelivery> {
    let target = execution.webhook.as_ref()?;
    execution.status.is_terminal().then(|| {
        delivery(
            execution_message_id(&execution.id),
            &execution.id,
            None,
            target,
            &execution_body(execution),
            now,
        )
    })
}

/// The end message of a job that asked for one (`sendJobWebhook`), once it has ended.
pub fn for_job(target: &StoredWebhook, job: &Job, now: Millis) -> Option<WebhookDelivery> {
    (job.spec.send_job_webhook && job.status.is_terminal()).then(|| {
        delivery(
            job_message_id(&job.execution_id, job.id()),
            &job.execution_id,
            Some(job.id().to_string()),
            target,
            &job_body(job),
            now,
        )
    })
}
