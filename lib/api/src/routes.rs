//! Routes: submit, read, list, wait for and cancel executions, and the OpenAPI document.
//! Every route but the document needs `Authorization: Bearer <api key>` (the scheme in any
//! case) and acts for that key's tenant only: another tenant's execution reads as missing.
//!
//! Every refusal is an [`ApiError`], the framework's own too: unknown paths and methods answer
//! through [`finish`]'s fallbacks, each body-taking route has one body limit of reelay's
//! ([`limited`]), path and query parameters are read by [`PathId`] and [`Queried`], and what
//! an extractor or layer still answers in plain text is rewritten by [`json_errors`].

use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;

use axum::body::{to_bytes, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use reelay_core::domain::ExecutionStatus;
use reelay_core::ports::{KeyStore, PageCursor};
use reelay_core::tenants::authenticate;
use reelay_core::{Engine, Event};

use crate::view::execution_error;
use crate::workflows;
use crate::{iso8601, status_view, ApiError, StatusView};

#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub keys: Arc<dyn KeyStore>,
}

/// The tenant an authenticated request acts for.
#[derive(Debug, Clone)]
pub(crate) struct Tenant(pub(crate) String);

/// The longest `?wait=` a status call may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// The body limit of a route that takes no real body (cancel).
pub(crate) const SMALL_BODY: usize = 64 * 1024;
/// The biggest provider callback read (a prediction object with its logs).
const MAX_CALLBACK_BYTES: usize = 4 * 1024 * 1024;

/// The router, and the (method, path) of every route it serves (checked against the OpenAPI
/// document by a test).
pub fn routes(state: ApiState) -> (Router, Vec<(Method, &'static str)>) {
    let mut served = Vec::new();
    let mut authed = Router::new();
    // Plans and workflow requests share the plan limit (the engine's `max_body_bytes`, 1 MiB).
    let plan_limit = state.engine.settings().limits.max_body_bytes;
    let mut add = |router: Router<ApiState>, method: Method, path: &'static str, handler: MethodRouter<ApiState>| {
        served.push((method, path));
        router.route(path, handler)
    };
    authed = add(authed, Method::POST, "/api/execute", limited(post(execute), plan_limit));
    authed = add(authed, Method::GET, "/api/execute/{id}/status", get(sdk_status));
    authed = add(authed, Method::GET, "/api/status/{id}", get(status));
    authed = add(authed, Method::GET, "/api/executions", get(list));
    authed = add(
        authed,
        Method::POST,
        "/api/executions/{id}/cancel",
        limited(post(cancel), SMALL_BODY),
    );
    authed = add(
        authed,
        Method::POST,
        workflows::START,
        limited(post(workflows::start), plan_limit),
    );
    authed = add(authed, Method::GET, workflows::STATUS, get(workflows::status));
    let mut public = add(Router::new(), Method::GET, "/api/openapi.json", get(openapi));
    public = add(public, Method::POST, CALLBACK_PATH, callback());
    // Signed output URLs carry their own authority; the key spans segments (`{*key}`).
    served.push((Method::GET, crate::files::PATH));
    public = public.route(crate::files::ROUTE, get(crate::files::file));
    let router = authed
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .merge(public);
    (finish(router, state), served)
}

pub fn router(state: ApiState) -> Router {
    routes(state).0
}

/// Where providers call back. They authenticate with the job's token and their own
/// signature, not an API key.
const CALLBACK_PATH: &str = "/api/webhooks/job/{record}";

/// The provider callback route alone (the provider-webhook Lambda serves only this).
pub fn callback_router(state: ApiState) -> Router {
    finish(Router::new().route(CALLBACK_PATH, callback()), state)
}

/// The provider callback route, with the 4 MiB the document promises providers.
fn callback() -> MethodRouter<ApiState> {
    limited(post(provider_callback), MAX_CALLBACK_BYTES)
}

/// What every router answers for unknown paths and methods, and every refusal in the error
/// shape.
fn finish(router: Router<ApiState>, state: ApiState) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// A route's one body limit, enforced by reelay: a declared length over it is refused before
/// the handler runs, and [`read_body`] stops reading there (a body sent without a length).
/// axum's own limit is set to the same, so no extractor of axum's answers first with another.
fn limited(route: MethodRouter<ApiState>, limit: usize) -> MethodRouter<ApiState> {
    route
        .route_layer(DefaultBodyLimit::max(limit))
        .route_layer(middleware::from_fn_with_state(BodyLimit(limit), limit_body))
}

/// The body limit of the route a request is on (set by [`limited`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(usize);

async fn limit_body(State(limit): State<BodyLimit>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|size| size > limit.0 as u64) {
        return Err(ApiError::TooLarge { limit: limit.0 });
    }
    request.extensions_mut().insert(limit);
    Ok(next.run(request).await)
}

/// The answers of the framework itself (an extractor's rejection, a layer's refusal) are plain
/// text: each becomes the error shape with the code of its status, keeping its headers
/// (`Allow`, `Retry-After`). reelay's own errors are JSON already and pass untouched, as does
/// every success (the outputs' own types).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The framework's messages are one short line; a longer body is not one of them.
    let text = to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let mut answer = ApiError::Refused { status, message }.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

/// How a status call's `?wait=` behaves when set on the router by [`reread_while_waiting`].
#[derive(Debug, Clone, Copy)]
struct Reread {
    every: Duration,
    longest: Duration,
}

/// Makes `?wait=` re-read the store every `every` as well as listen to the engine's events,
/// and wait `longest` at most (then answer the status as it stands, as when a wait runs out):
/// for deployments where other processes (the AWS functions) move executions on, so this
/// process's engine sees no event, behind a gateway that cuts requests short. Without it a
/// wait only listens (no store polling) for up to 30 s.
pub fn reread_while_waiting(router: Router, every: Duration, longest: Duration) -> Router {
    router.layer(Extension(Reread { every, longest }))
}

async fn require_key(State(state): State<ApiState>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let key = authenticate(state.keys.as_ref(), bearer).await?;
    request.extensions_mut().insert(Tenant(key.tenant_id));
    Ok(next.run(request).await)
}

/// The token of `Bearer <token>`. An auth scheme is case-insensitive (RFC 9110 §11.1):
/// `bearer`, `BEARER` and `Bearer` alike; spaces may repeat before the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

async fn execute(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::NotJson(content_type));
    }
    let body = read_body(request).await?;
    let execution = state.engine.submit(&tenant, &body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "executionId": execution.id,
            "status": execution.status.name(),
            "createdAt": iso8601(execution.created_at),
        })),
    ))
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    /// Seconds to wait for the execution to end before answering (at most 30); empty is
    /// absent. Parsed here, so a bad value is named as `wait`.
    wait: Option<String>,
}

/// `GET /api/status/{id}`: the execution as it stands.
async fn status(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    PathId(id): PathId,
    reread: Option<Extension<Reread>>,
    Queried(query): Queried<StatusQuery>,
) -> Result<Json<StatusView>, ApiError> {
    read_status(&state, &tenant, id, reread, query).await.map(Json)
}

/// `GET /api/execute/{id}/status`, the SDK's: the same answer, but a cancelled execution reads
/// `failed`, because the SDK's blocking mode stops polling only on `completed` or `failed`.
async fn sdk_status(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    PathId(id): PathId,
    reread: Option<Extension<Reread>>,
    Queried(query): Queried<StatusQuery>,
) -> Result<Json<StatusView>, ApiError> {
    let view = read_status(&state, &tenant, id, reread, query).await?;
    Ok(Json(view.for_sdk()))
}

/// The status of the tenant's execution `id`, once it ends or `?wait=` runs out.
async fn read_status(
    state: &ApiState,
    tenant: &str,
    id: String,
    reread: Option<Extension<Reread>>,
    query: StatusQuery,
) -> Result<StatusView, ApiError> {
    let wait = match present(&query.wait) {
        None => Duration::ZERO,
        Some(raw) => match raw.parse::<f64>() {
            Ok(w) if (0.0..=MAX_WAIT.as_secs_f64()).contains(&w) => Duration::from_secs_f64(w),
            Ok(_) => {
                return Err(ApiError::BadRequest {
                    field: "wait".into(),
                    message: format!("`wait` must be between 0 and {} seconds", MAX_WAIT.as_secs()),
                })
            }
            Err(_) => {
                return Err(ApiError::BadRequest {
                    field: "wait".into(),
                    message: format!("`wait` must be a number of seconds, not `{raw}`"),
                })
            }
        },
    };
    // Listen before the first read, so an end between the read and the wait is not missed.
    let mut events = state.engine.subscribe();
    let wait = match reread {
        Some(Extension(Reread { longest, .. })) => wait.min(longest),
        None => wait,
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let store = state.engine.store();
        let found = store.execution_with_jobs(&id).await?;
        let (mut execution, mut jobs) = match found {
            Some((execution, jobs)) if execution.tenant_id == tenant => (execution, jobs),
            _ => return Err(ApiError::NotFound(id)),
        };
        if execution.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            let deliveries = store.deliveries(&id).await?;
            state.engine.fresh_urls(&mut execution, &mut jobs).await?;
            return Ok(status_view(&execution, &jobs, &deliveries));
        }
        // Sleep until this execution ends (or the deadline); a lagging receiver re-reads, and
        // so does a set re-read period when it passes.
        let ended = async {
            loop {
                match events.recv().await {
                    Ok(Event::ExecutionEnded { id: ended, .. }) if ended == id => return,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let period = async {
            match reread {
                Some(Extension(Reread { every, .. })) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        let woken = async {
            tokio::select! {
                () = ended => {}
                () = period => {}
            }
        };
        let _ = tokio::time::timeout_at(deadline, woken).await;
    }
}

/// A query value as given: an empty one (`?cursor=`) is as absent, as the document says.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    /// Parsed here, so a bad value is named as `limit`.
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    Queried(q): Queried<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = match present(&q.status) {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| ApiError::BadRequest {
            field: "status".into(),
            message: format!("`status` must be pending, processing, completed, failed or cancelled, not `{s}`"),
        })?),
    };
    let limit = match present(&q.limit) {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: "limit".into(),
                message: format!("`limit` must be a whole number from 1 to {MAX_PAGE}, not `{raw}`"),
            })?,
    };
    let after = present(&q.cursor).map(decode_cursor).transpose()?;
    // One more than asked tells whether another page exists.
    let mut page = state
        .engine
        .store()
        .list_executions(&tenant, status, after.as_ref(), limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = page.last().filter(|_| more).map(|e| encode_cursor(e.created_at, &e.id));
    let executions: Vec<_> = page
        .iter()
        .map(|e| {
            json!({
                "executionId": e.id,
                "status": e.status.name(),
                "progress": e.completed_jobs * 100 / e.total_jobs.max(1),
                "totalJobs": e.total_jobs,
                "completedJobs": e.completed_jobs,
                "baseExecutionId": e.base_execution_id,
                "error": execution_error(e),
                "createdAt": iso8601(e.created_at),
                "completedAt": e.completed_at.map(iso8601),
            })
        })
        .collect();
    Ok(Json(json!({ "executions": executions, "nextCursor": next_cursor })))
}

/// Cursors are opaque to clients: base64url of `created_at:id`.
fn encode_cursor(created_at: i64, id: &str) -> String {
    B64.encode(format!("{created_at}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<PageCursor, ApiError> {
    let bad = || ApiError::BadRequest {
        field: "cursor".into(),
        message: "`cursor` is not one this API gave out".into(),
    };
    let raw = String::from_utf8(B64.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (at, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok(PageCursor {
        created_at: at.parse().map_err(|_| bad())?,
        id: id.to_string(),
    })
}

async fn cancel(
    State(state): State<ApiState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let cancelled = state.engine.cancel(&tenant, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "executionId": cancelled.execution_id, "status": cancelled.status.name() })),
    ))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    token: Option<String>,
}

async fn provider_callback(
    State(state): State<ApiState>,
    PathId(record): PathId,
    Queried(query): Queried<CallbackQuery>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    let body = read_body(request).await?;
    let token = query.token.unwrap_or_default();
    let recorded = state.engine.provider_callback(&record, &token, &headers, &body).await?;
    Ok(Json(json!({ "received": true, "recorded": recorded.name() })))
}

/// The whole body, refused past the route's limit ([`limited`]; [`SMALL_BODY`] on a route
/// without one): by its declared length before reading, else while reading (a body sent
/// without a length is caught too). A body that breaks off is a bad request, not a large one.
pub(crate) async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    let BodyLimit(limit) = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit(SMALL_BODY));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|size| size > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = request.into_body();
    let mut read = Vec::with_capacity(declared.map_or(0, |size| size as usize));
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ApiError::BadRequest {
            field: "body".into(),
            message: format!("the request body could not be read: {e}"),
        })?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > limit {
                return Err(ApiError::TooLarge { limit });
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(read))
}

/// A route's one path parameter (an execution id, a job record, an output's key). axum's own
/// refusal would be plain text; this one answers like every other error.
pub(crate) struct PathId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                field: "path".into(),
                message: e.body_text(),
            })?;
        Ok(PathId(id))
    }
}

/// A query string read into `T`, refused (naming `query`) like every other error.
pub(crate) struct Queried<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Queried<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                field: "query".into(),
                message: e.body_text(),
            })?;
        Ok(Queried(query))
    }
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::WrongMethod {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn answer(response: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_extractors_plain_text_rejection_becomes_the_error_shape() {
        // axum's own `Json` extractor answers 415 and 422 in plain text; behind `json_errors`
        // they are errors like any other.
        let router: Router = Router::new()
            .route("/", post(|Json(v): Json<Value>| async move { Json(v) }))
            .layer(middleware::map_response(json_errors));
        for (content_type, body, status, code) in [
            (
                "text/plain",
                "{}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            ("application/json", "{", StatusCode::BAD_REQUEST, "invalid_request"),
            ("application/json", "[1", StatusCode::BAD_REQUEST, "invalid_request"),
        ] {
            let request = Request::post("/")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap();
            let (got, headers, body) = answer(router.clone().oneshot(request).await.unwrap()).await;
            assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
            assert_eq!(body["details"][0]["code"], code, "{body}");
        }
        // A success passes untouched, whatever its type.
        let ok = Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("[1]"))
            .unwrap();
        let (status, _, body) = answer(router.oneshot(ok).await.unwrap()).await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!([1])));
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_headers_and_names_its_status_when_it_has_no_text() {
        let plain = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET,HEAD")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = answer(json_errors(plain).await).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["error"], "Method Not Allowed");
        let late = Response::builder()
            .status(StatusCode::GATEWAY_TIMEOUT)
            .body(Body::from("timed out"))
            .unwrap();
        let (_, _, body) = answer(json_errors(late).await).await;
        assert_eq!(
            (body["code"].as_str(), body["error"].as_str()),
            (Some("unavailable"), Some("timed out"))
        );
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in ["Bearer k", "bearer k", "BEARER k", "bEaReR   k", " Bearer k "] {
            assert_eq!(bearer_token(value), Some("k"), "{value}");
        }
        for value in ["Basic k", "Bearerk", "k", "Bearer", "Token k"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
