//! The one place errors become HTTP answers: `{error: {code, message, details}, code}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use reelay_core::domain::ExecutionStatus;
use reelay_core::plan::PlanError;
use reelay_core::ports::CallbackError;
use reelay_core::ports::StoreError;
use reelay_core::tenants::AuthError;
use reelay_core::{CallbackRejected, CancelError, EngineError, SubmitError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the plan is invalid")]
    Invalid(Vec<PlanError>),
    /// A query parameter or header that is not as documented.
    #[error("{message}")]
    BadRequest { field: String, message: String },
    #[error("the body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the body must be JSON (Content-Type: application/json)")]
    NotJson,
    #[error("{0}")]
    Unauthorized(String),
    #[error("no execution {0}")]
    NotFound(String),
    #[error("no route {0}; see /api/openapi.json")]
    NoRoute(String),
    #[error("{path} does not take {method}")]
    WrongMethod { method: String, path: String },
    #[error("no base execution {0}")]
    BaseNotFound(String),
    #[error("execution {id} already ended {}", .status.name())]
    AlreadyEnded { id: String, status: ExecutionStatus },
    #[error("{reason}")]
    Limited { reason: String, retry_after: Duration },
    #[error("{0}")]
    CallbackRefused(String),
    #[error("{0}")]
    CallbackMalformed(String),
    #[error("{0}")]
    CallbackLater(String),
    #[error("internal error")]
    Internal(#[from] EngineError),
}

impl From<CallbackRejected> for ApiError {
    fn from(e: CallbackRejected) -> Self {
        match e {
            CallbackRejected::Callback(CallbackError::Unauthorized(why)) => ApiError::CallbackRefused(why),
            CallbackRejected::Callback(CallbackError::Malformed(why)) => ApiError::CallbackMalformed(why),
            CallbackRejected::Callback(CallbackError::Unavailable(why)) => ApiError::CallbackLater(why),
            CallbackRejected::Engine(e) => ApiError::Internal(e),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(errors) => ApiError::Invalid(errors),
            SubmitError::BaseNotFound(id) => ApiError::BaseNotFound(id),
            SubmitError::Limited { reason, retry_after } => ApiError::Limited { reason, retry_after },
            SubmitError::Engine(e) => ApiError::Internal(e),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound(id) => ApiError::NotFound(id),
            CancelError::Finished { id, status } => ApiError::AlreadyEnded { id, status },
            CancelError::Engine(e) => ApiError::Internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = match &self {
            ApiError::Invalid(errors) => (StatusCode::BAD_REQUEST, "invalid_plan", json!(errors)),
            ApiError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                json!([{ "code": "invalid_field", "message": message, "field": field }]),
            ),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", json!([])),
            ApiError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", json!([])),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", json!([])),
            ApiError::NotFound(_) | ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found", json!([])),
            ApiError::WrongMethod { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", json!([])),
            ApiError::BaseNotFound(_) => (
                StatusCode::NOT_FOUND,
                "base_execution_not_found",
                json!([{ "code": "base_execution_not_found", "message": self.to_string(), "field": "baseExecutionId" }]),
            ),
            ApiError::AlreadyEnded { .. } => (StatusCode::CONFLICT, "already_ended", json!([])),
            ApiError::Limited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", json!([])),
            ApiError::CallbackRefused(_) => (StatusCode::UNAUTHORIZED, "callback_refused", json!([])),
            ApiError::CallbackMalformed(_) => (StatusCode::BAD_REQUEST, "callback_malformed", json!([])),
            // The provider retries its webhook; polling covers us meanwhile.
            ApiError::CallbackLater(_) => (StatusCode::SERVICE_UNAVAILABLE, "try_again", json!([])),
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
        let mut body = json!({ "error": { "code": code, "message": message, "details": details }, "code": code });
        if let ApiError::AlreadyEnded { status: ended, .. } = &self {
            body["status"] = json!(ended.name());
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Limited { retry_after, .. } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
