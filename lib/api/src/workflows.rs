//! The code-to-video workflow routes: start a run, read it. A run is an execution, so the
//! execution routes (status, list, cancel) serve it too.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use reelay_core::scenes::WorkflowRequest;

use crate::error::WorkflowApiError;
use crate::routes::{read_body, ApiState, Tenant};
use crate::workflow_view::workflow_view;
use crate::ApiError;

pub(crate) const START: &str = "/api/workflows/generate-video";
pub(crate) const STATUS: &str = "/api/workflows/status";

/// `POST /api/workflows/generate-video`: answers at once with the run's id.
pub(crate) async fn start(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    request: Request,
) -> Result<impl IntoResponse, WorkflowApiError> {
    let body = read_body(request).await?;
    let request = WorkflowRequest::parse(&body).map_err(ApiError::Workflow)?;
    let execution = state.engine.start_workflow(&tenant, &request).await?;
    let scenes = request.scenes.len();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "runId": execution.id,
            "mode": request.mode.name(),
            "message": format!(
                "Workflow started: {scenes} scene{} to write, check, render and upload{}",
                if scenes == 1 { "" } else { "s" },
                if scenes > 1 { ", then merge" } else { "" },
            ),
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusQuery {
    run_id: Option<String>,
}

/// `GET /api/workflows/status?runId=`: the run as it stands. Unknown runs, other tenants'
/// and executions that are not workflow runs read as not found.
pub(crate) async fn status(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Value>, WorkflowApiError> {
    let Some(run_id) = query.ok().and_then(|Query(q)| q.run_id).filter(|id| !id.is_empty()) else {
        return Err(ApiError::BadRequest {
            field: "runId".into(),
            message: "`runId` is required".into(),
        }
        .into());
    };
    let found = state.engine.store().execution_with_jobs(&run_id).await?;
    let (mut execution, mut jobs) = match found {
        Some((execution, jobs)) if execution.tenant_id == tenant && execution.workflow.is_some() => (execution, jobs),
        _ => return Err(ApiError::RunNotFound.into()),
    };
    state.engine.fresh_urls(&mut execution, &mut jobs).await?;
    let run = execution.workflow.clone().ok_or(ApiError::RunNotFound)?;
    Ok(Json(workflow_view(&execution, &run, &jobs)))
}
