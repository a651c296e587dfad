//! The one place errors become HTTP answers: `{error: {code, message, details}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use reelay_core::plan::PlanError;
use reelay_core::{EngineError, SubmitError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the plan is invalid")]
    Invalid(Vec<PlanError>),
    #[error("the body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the body must be JSON (Content-Type: application/json)")]
    NotJson,
    #[error("no execution {0}")]
    NotFound(String),
    #[error("internal error")]
    Internal(#[from] EngineError),
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(errors) => ApiError::Invalid(errors),
            SubmitError::Engine(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = match &self {
            ApiError::Invalid(errors) => (StatusCode::BAD_REQUEST, "invalid_plan", json!(errors)),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", json!([])),
            ApiError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", json!([])),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", json!([])),
            ApiError::Internal(e) => {
                // The detail stays in our logs; the client gets no internals.
                tracing::error!(error = %e, "request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", json!([]))
            }
        };
        let message = match &self {
            ApiError::Invalid(errors) => match errors.as_slice() {
                [one] => one.message.clone(),
                many => format!("the plan has {} problems", many.len()),
            },
            other => other.to_string(),
        };
        let body = json!({ "error": { "code": code, "message": message, "details": details }, "code": code });
        (status, Json(body)).into_response()
    }
}
