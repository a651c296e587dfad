//! The local HTTP API (the router `reelay serve` runs), on the embedded node.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use reelay_api::{router, ApiState};
use reelay_local::{LocalNode, NodeSettings};

struct App {
    router: axum::Router,
    node: LocalNode,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = NodeSettings::new(dir.path());
    settings.provider_delay = Duration::from_millis(10);
    let mut node = LocalNode::open(settings).unwrap();
    node.start();
    let router = router(ApiState {
        engine: node.engine().clone(),
        tenant_id: "local".into(),
    });
    App {
        router,
        node,
        _dir: dir,
    }
}

async fn call(app: &App, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/api/execute")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn image_job(id: &str) -> Value {
    json!({"id": id, "type": "generateImage", "params": {"provider": "local", "modelId": "image", "prompt": "p", "aspectRatio": "1:1", "resolution": "240p"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_in_both_forms_then_poll_status_to_completion() {
    let app = app();
    let top_level = json!({"jobs": [image_job("a")]});
    let nested = json!({"executionPlan": {"jobs": [image_job("a")]}, "options": {}});
    for body in [top_level, nested] {
        let (status, accepted) = call(&app, post(body.to_string())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert_eq!(accepted["status"], "pending");
        assert!(accepted["createdAt"].as_str().unwrap().ends_with('Z'));
        let id = accepted["executionId"].as_str().unwrap().to_string();
        let mut last = Value::Null;
        for _ in 0..300 {
            let (code, view) = call(
                &app,
                Request::get(format!("/api/execute/{id}/status"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(code, StatusCode::OK);
            last = view;
            if last["status"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "completed", "{last}");
        assert_eq!(last["executionId"], id.as_str());
        assert_eq!(last["progress"], 100);
        assert_eq!(
            (last["totalJobs"].as_u64(), last["completedJobs"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(last["jobs"][0]["status"], "completed");
        assert_eq!(last["result"]["status"], "completed");
        assert_eq!(last["result"]["aspectRatio"], "1:1");
        assert!(last["result"]["url"].as_str().unwrap().starts_with("file://"));
        // The design documents' path answers the same.
        let (code, other) = call(
            &app,
            Request::get(format!("/api/status/{id}")).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(other["result"], last["result"]);
    }
    app.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let app = app();
    // Every validation problem at once, each naming its job and field.
    let bad = json!({"jobs": [
        {"id": "a", "type": "generate", "params": {"provider": "local", "modelId": "video", "duration": 0}},
        {"id": "a", "type": "explode"},
        {"id": "c", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["zzz"]},
    ]});
    let (status, body) = call(&app, post(bad.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let details = body["error"]["details"].as_array().unwrap();
    let has = |code: &str, job: &str| details.iter().any(|d| d["code"] == code && d["jobId"] == job);
    assert!(has("invalid_param", "a"), "{body}");
    assert!(has("duplicate_job_id", "a"), "{body}");
    assert!(has("unknown_operation", "a"), "{body}");
    assert!(has("unknown_dependency", "c"), "{body}");
    assert!(details.iter().any(|d| d["field"] == "params.duration"));

    let (status, body) = call(&app, post("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["code"], "invalid_json");

    let not_json = Request::post("/api/execute")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(call(&app, not_json).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!("{{\"jobs\":[],\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let (status, body) = call(&app, post(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");

    let (status, _) = call(&app, Request::get("/api/status/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.node.stop().await;
}
