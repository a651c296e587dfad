//! Routes: submit an execution, read its status.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use reelay_core::Engine;

use crate::{iso8601, status_view, ApiError};

#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    /// The tenant every call acts for (API keys that name a tenant come with the API issue).
    pub tenant_id: String,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/execute", post(execute))
        .route("/api/execute/{id}/status", get(status))
        .route("/api/status/{id}", get(status))
        .with_state(state)
}

async fn execute(State(state): State<ApiState>, request: Request<Body>) -> Result<impl IntoResponse, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::NotJson);
    }
    let limit = state.engine.settings().limits.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(size) = declared.filter(|s| *s > limit) {
        return Err(ApiError::TooLarge { size, limit });
    }
    // Read one byte past the limit, so an oversize body without a length is caught too.
    let body = to_bytes(request.into_body(), limit + 1)
        .await
        .map_err(|_| ApiError::TooLarge { size: limit + 1, limit })?;
    let execution = state.engine.submit(&state.tenant_id, &body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "executionId": execution.id,
            "status": execution.status.name(),
            "createdAt": iso8601(execution.created_at),
        })),
    ))
}

async fn status(State(state): State<ApiState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let found = state
        .engine
        .store()
        .execution_with_jobs(&id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match found {
        Some((execution, jobs)) if execution.tenant_id == state.tenant_id => Ok(Json(status_view(&execution, &jobs))),
        _ => Err(ApiError::NotFound(id)),
    }
}
