//! The one place errors become HTTP answers: `{error, code, details}`.
//!
//! `error` is one line of text, because the SDK shows it as text (`${body.error} (${body.code})`):
//! the first problem, led by its job and field, and how many more there are. `code` is stable.
//! `details` lists every problem as `{code, message, jobId?, field?}`, at least one, so a
//! client can always walk it.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use reelay_core::domain::ExecutionStatus;
use reelay_core::plan::PlanError;
use reelay_core::ports::CallbackError;
use reelay_core::ports::StoreError;
use reelay_core::scenes::WorkflowError;
use reelay_core::tenants::AuthError;
use reelay_core::{CallbackRejected, CancelError, EngineError, OutputRefused, SubmitError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the plan is invalid")]
    Invalid(Vec<PlanError>),
    /// A query parameter, path segment or header that is not as documented.
    #[error("{message}")]
    BadRequest { field: String, message: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// With the Content-Type that was sent, if any.
    #[error("the body must be JSON (Content-Type: application/json), not {}", sent_type(.0.as_deref()))]
    NotJson(Option<String>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("no execution {0}")]
    NotFound(String),
    #[error("Workflow run not found")]
    RunNotFound,
    /// A workflow request that is not as documented.
    #[error(transparent)]
    Workflow(WorkflowError),
    #[error("no route {0}; see /api/openapi.json")]
    NoRoute(String),
    #[error("{path} does not take {method}")]
    WrongMethod { method: String, path: String },
    /// A refusal of the framework's own (an extractor, a layer), with its status and text.
    #[error("{}", refused_text(.status, .message))]
    Refused { status: StatusCode, message: String },
    #[error("no base execution {0}")]
    BaseNotFound(String),
    #[error("execution {id} already ended ({}); only a pending or processing execution can be cancelled", .status.name())]
    AlreadyEnded { id: String, status: ExecutionStatus },
    #[error("{reason}")]
    Limited { reason: String, retry_after: Duration },
    #[error(transparent)]
    Callback(CallbackError),
    /// A request for an output at a signed URL (`/api/files/…`).
    #[error(transparent)]
    Output(OutputRefused),
    // The cause goes to the logs (see `into_response`), never to the client.
    #[error("the server could not reach its store or queue; try again")]
    Internal(#[from] EngineError),
}

fn refused_text(status: &StatusCode, message: &str) -> String {
    match message {
        "" => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_string(),
        text => text.to_string(),
    }
}

fn sent_type(content_type: Option<&str>) -> String {
    content_type.map_or_else(|| "a body without a Content-Type".to_string(), |ct| format!("`{ct}`"))
}

impl From<OutputRefused> for ApiError {
    fn from(e: OutputRefused) -> Self {
        match e {
            OutputRefused::Engine(e) => ApiError::Internal(e),
            other => ApiError::Output(other),
        }
    }
}

impl From<CallbackRejected> for ApiError {
    fn from(e: CallbackRejected) -> Self {
        match e {
            CallbackRejected::Callback(e) => ApiError::Callback(e),
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

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_plan"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::NotJson(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) | ApiError::NoRoute(_) | ApiError::RunNotFound => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::Workflow(e) => (StatusCode::BAD_REQUEST, e.code),
            ApiError::WrongMethod { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Refused { status, .. } => (*status, refused_code(*status)),
            ApiError::BaseNotFound(_) => (StatusCode::NOT_FOUND, "base_execution_not_found"),
            ApiError::AlreadyEnded { .. } => (StatusCode::CONFLICT, "already_ended"),
            ApiError::Limited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Callback(CallbackError::Unauthorized(_)) => (StatusCode::UNAUTHORIZED, "callback_refused"),
            ApiError::Callback(CallbackError::Malformed(_)) => (StatusCode::BAD_REQUEST, "callback_malformed"),
            // The provider retries its webhook; polling covers us meanwhile.
            ApiError::Callback(CallbackError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "try_again"),
            ApiError::Output(OutputRefused::Url(_)) => (StatusCode::FORBIDDEN, "url_refused"),
            ApiError::Output(OutputRefused::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Output(OutputRefused::Range { .. }) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::Output(OutputRefused::Engine(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    /// Every problem, at least one: a plan's own list, else this error as the one problem,
    /// naming the field at fault when there is one.
    fn details(&self, code: &str) -> Vec<PlanError> {
        let one = PlanError::new(code, self.to_string());
        match self {
            ApiError::Invalid(errors) if !errors.is_empty() => errors.clone(),
            ApiError::BadRequest { field, message } => vec![PlanError::new("invalid_field", message).field(field)],
            ApiError::Workflow(e) => vec![PlanError::new(e.code, &e.message).field(&e.field)],
            ApiError::BaseNotFound(_) => vec![one.field("baseExecutionId")],
            _ => vec![one],
        }
    }
}

/// The stable code of a framework refusal, by its status.
fn refused_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "unavailable",
        _ => "invalid_request",
    }
}

/// The one line shown to a user: the first problem, where it is, and how many more.
fn summary(details: &[PlanError]) -> String {
    let Some((first, rest)) = details.split_first() else {
        return String::new();
    };
    let mut line = headline(first);
    match rest.len() {
        0 => {}
        1 => line.push_str(" (and 1 more problem)"),
        n => line.push_str(&format!(" (and {n} more problems)")),
    }
    line
}

/// A problem led by its job and field: "job `a`, field `params.prompt`: prompt is required".
fn headline(problem: &PlanError) -> String {
    let mut message = problem.message.as_str();
    let mut at = Vec::new();
    if let Some(job) = &problem.job_id {
        // Most messages already lead with their job: say it once.
        let lead = format!("job `{job}`: ");
        message = message.strip_prefix(&lead).unwrap_or(message);
        at.push(format!("job `{job}`"));
    }
    if let Some(field) = problem.field.as_ref().filter(|f| !message.contains(&format!("`{f}`"))) {
        at.push(format!("field `{field}`"));
    }
    if at.is_empty() {
        message.to_string()
    } else {
        format!("{}: {message}", at.join(", "))
    }
}

/// An error on a workflow route: the same answer with `"success": false`, as the workflow
/// API's clients read it.
pub(crate) struct WorkflowApiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for WorkflowApiError {
    fn from(e: E) -> Self {
        WorkflowApiError(e.into())
    }
}

impl IntoResponse for WorkflowApiError {
    fn into_response(self) -> Response {
        self.0.respond(true)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(false)
    }
}

impl ApiError {
    fn respond(self, workflow: bool) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let details = self.details(code);
        let mut body = json!({ "error": summary(&details), "code": code, "details": details });
        if let ApiError::AlreadyEnded { status: ended, .. } = &self {
            body["status"] = json!(ended.name());
        }
        if workflow {
            body["success"] = json!(false);
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
            ApiError::Output(OutputRefused::Range { size }) => {
                if let Ok(range) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, range);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt_required(job: &str) -> PlanError {
        PlanError::new("invalid_param", format!("job `{job}`: prompt is required"))
            .job(job)
            .field("params.prompt")
    }

    #[test]
    fn a_plan_summary_names_the_first_problem_and_counts_the_rest() {
        let one = vec![prompt_required("job2")];
        assert_eq!(summary(&one), "job `job2`, field `params.prompt`: prompt is required");
        let three = vec![
            prompt_required("job2"),
            prompt_required("job3"),
            PlanError::new("empty_plan", "the plan has no jobs"),
        ];
        assert_eq!(
            summary(&three),
            "job `job2`, field `params.prompt`: prompt is required (and 2 more problems)"
        );
        assert!(summary(&three[..2]).ends_with("(and 1 more problem)"));
    }

    #[test]
    fn a_field_the_message_already_names_is_not_repeated() {
        let named = PlanError::new("invalid_field", "`webhook.url` must be an http(s) URL").field("webhook.url");
        assert_eq!(summary(&[named]), "`webhook.url` must be an http(s) URL");
        let unnamed = PlanError::new("base_execution_not_found", "no base execution x").field("baseExecutionId");
        assert_eq!(summary(&[unnamed]), "field `baseExecutionId`: no base execution x");
    }

    #[test]
    fn every_error_has_at_least_one_detail() {
        let errors = [
            ApiError::Invalid(Vec::new()),
            ApiError::NotJson(None),
            ApiError::Callback(CallbackError::Unavailable("later".into())),
        ];
        for error in errors {
            let (_, code) = error.status_and_code();
            let details = error.details(code);
            assert_eq!(details.len(), 1, "{error:?}");
            assert_eq!(summary(&details), error.to_string());
        }
    }
}
