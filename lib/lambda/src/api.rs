//! The HTTP functions: the API's router and the provider-callback route alone, each served
//! by `lambda_http::run` (API Gateway HTTP API, payload 2.0).

use std::time::Duration;

use axum::Router;

use reelay_api::ApiState;

/// How often a status call's `?wait=` re-reads the store here: the functions that move
/// executions on run elsewhere, so this process's engine sends it no events.
pub const WAIT_REREAD: Duration = Duration::from_secs(1);

/// The longest `?wait=` here: API Gateway ends a request at 30 s, so a full 30 s wait would
/// reach the client as a 503 instead of the status.
pub const LONGEST_WAIT: Duration = Duration::from_secs(25);

/// The whole API (the execute-api function).
pub fn router(state: ApiState) -> Router {
    reelay_api::reread_while_waiting(reelay_api::router(state), WAIT_REREAD, LONGEST_WAIT)
}

/// Only `POST /api/webhooks/job/{record}` (the provider-webhook function): it checks and
/// records the callback, and the job queue does the heavy work (downloading outputs), so the
/// answer comes well within API Gateway's 30 s.
pub fn callback_router(state: ApiState) -> Router {
    reelay_api::callback_router(state)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::body::to_bytes;
    use axum::http::StatusCode;
    use serde_json::Value;
    use tower::ServiceExt;

    use reelay_core::domain::ExecutionStatus;
    use reelay_core::ports::{KeyStore, Write};
    use reelay_core::tenants::new_key;
    use reelay_local::{LocalNode, LocalSettings};

    use super::*;

    struct App {
        node: LocalNode,
        key: String,
        _dir: tempfile::TempDir,
    }

    /// An engine and key store on the embedded stack, not started: nothing moves executions
    /// on but what a test does.
    async fn app() -> App {
        let dir = tempfile::tempdir().unwrap();
        let node = LocalNode::open(LocalSettings::new(dir.path(), Default::default())).unwrap();
        let (key, record) = new_key("acme", "test", 1);
        node.store().create_key(&record).await.unwrap();
        App { node, key, _dir: dir }
    }

    impl App {
        fn state(&self) -> ApiState {
            ApiState {
                engine: self.node.engine().clone(),
                keys: self.node.store().clone(),
            }
        }
    }

    /// An API Gateway HTTP API event from `fixtures/`, with `replace` applied to its text.
    fn event(name: &str, replace: &[(&str, &str)]) -> lambda_http::Request {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut text = std::fs::read_to_string(path).unwrap();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        lambda_http::request::from_str(&text).unwrap()
    }

    async fn call(router: Router, request: lambda_http::Request) -> (StatusCode, Value) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn api_gateway_events_reach_the_routes() {
        let app = app().await;
        let (status, body) = call(router(app.state()), event("apigw-v2-openapi.json", &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["openapi"], "3.1.0", "{body}");

        let (status, body) = call(router(app.state()), event("apigw-v2-execute-unauthenticated.json", &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["code"] == "unauthorized" && body["error"].is_string(), "{body}");

        // Refused callbacks change nothing: an unknown job reads as unauthorised.
        let (status, body) = call(router(app.state()), event("apigw-v2-provider-callback.json", &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    #[tokio::test]
    async fn the_callback_function_serves_the_callback_route_only() {
        let app = app().await;
        let (status, body) = call(
            callback_router(app.state()),
            event("apigw-v2-provider-callback.json", &[]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        for other in ["apigw-v2-openapi.json", "apigw-v2-execute-unauthenticated.json"] {
            let (status, body) = call(callback_router(app.state()), event(other, &[])).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{other}: {body}");
        }
    }

    /// Submits a one-job plan for `acme`; returns its execution id.
    async fn submit(app: &App) -> String {
        let plan = br#"{"executionPlan":{"jobs":[{"id":"clip","type":"pipeline:generate","params":{"provider":"local","modelId":"video","prompt":"a fox","duration":1}}]}}"#;
        app.node.engine().submit("acme", plan).await.unwrap().id
    }

    /// Ends the execution in the store directly, as another function would: this engine sends
    /// no event for it.
    async fn complete_elsewhere(app: &App, id: &str) {
        let store = app.node.store();
        let prev = reelay_core::ports::Store::execution(store.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        let mut next = prev.clone();
        next.status = ExecutionStatus::Completed;
        let written = reelay_core::ports::Store::update_execution(store.as_ref(), &prev, &next)
            .await
            .unwrap();
        assert!(matches!(written, Write::Applied(_)));
    }

    #[tokio::test]
    async fn a_wait_sees_an_end_written_by_another_function() {
        let app = app().await;
        let id = submit(&app).await;
        let request = || {
            event(
                "apigw-v2-status-wait.json",
                &[("EXECUTION_ID", &id), ("API_KEY", &app.key), ("wait=5", "wait=3")],
            )
        };
        let waiting = tokio::spawn(call(router(app.state()), request()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ended_at = Instant::now();
        complete_elsewhere(&app, &id).await;
        let (status, body) = waiting.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "completed", "{body}");
        // Seen on the next re-read, well before the 3 s wait ends.
        let took = ended_at.elapsed();
        assert!(took < WAIT_REREAD + Duration::from_millis(700), "{took:?}");

        // The embedded router does not re-read: only its engine's events end a wait early.
        let id = submit(&app).await;
        let request = event(
            "apigw-v2-status-wait.json",
            &[("EXECUTION_ID", &id), ("API_KEY", &app.key), ("wait=5", "wait=2")],
        );
        let started = Instant::now();
        let waiting = tokio::spawn(call(reelay_api::router(app.state()), request));
        tokio::time::sleep(Duration::from_millis(300)).await;
        complete_elsewhere(&app, &id).await;
        let (status, body) = waiting.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() >= Duration::from_secs(2), "{body}");
    }

    #[tokio::test]
    async fn a_wait_ends_before_the_gateway_cuts_it_short() {
        let app = app().await;
        let id = submit(&app).await;
        let request = event(
            "apigw-v2-status-wait.json",
            &[("EXECUTION_ID", &id), ("API_KEY", &app.key)],
        );
        let router = reelay_api::reread_while_waiting(
            reelay_api::router(app.state()),
            Duration::from_millis(100),
            Duration::from_secs(1),
        );
        let started = Instant::now();
        let (status, body) = call(router, request).await;
        let took = started.elapsed();
        // Asked for 5 s; answered, still pending, after the 1 s cap.
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "pending", "{body}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(LONGEST_WAIT < Duration::from_secs(30));
    }
}
