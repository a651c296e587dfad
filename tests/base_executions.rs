//! `baseExecutionId`: a later execution reuses a base's finished jobs, waits for its open
//! ones, and fails at once, naming the base job, when what it needs did not complete.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use support::{failing_image_job, job, scene, spawn_app, spawn_app_with, App, ACME};

/// The base: two scenes merged into one video (the final job).
fn product_video() -> Value {
    json!({"jobs": [
        scene("scene1"),
        scene("scene2"),
        {"id": "video", "type": "merge", "params": {"items": [{"url": "$scene1"}, {"url": "$scene2"}]}},
    ]})
}

/// A variant whose root job names no input: it takes the base's final output.
fn vertical_variant(base: &str, id: &str) -> Value {
    json!({"baseExecutionId": base, "jobs": [
        {"id": id, "type": "reframe", "params": {"aspectRatio": "9:16", "resolution": "240p"}},
    ]})
}

/// Provider jobs the local provider was ever asked for.
fn provider_jobs(app: &App) -> usize {
    std::fs::read_dir(app.dir.path().join("provider/jobs")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_of_a_completed_base_reuses_its_outputs() {
    let app = spawn_app().await;
    let base = app.submit(ACME, &product_video()).await;
    let base_status = app.ended(ACME, &base).await;
    assert_eq!(base_status["status"], "completed", "{base_status}");
    let paid = provider_jobs(&app);

    let variant = app.submit(ACME, &vertical_variant(&base, "vertical")).await;
    let status = app.ended(ACME, &variant).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["baseExecutionId"], base.as_str());
    assert_eq!(status["result"]["aspectRatio"], "9:16");
    // The base's final job is in the variant as a reference to the base's output.
    assert_eq!(job(&status, "video")["result"]["url"], base_status["result"]["url"]);
    assert_eq!(status["totalJobs"], 2);

    // Same ids as the base's completed jobs: reused, not run again.
    let again = json!({"executionPlan": {"baseExecutionId": base, "jobs": [
        scene("scene1"),
        scene("scene2"),
        {"id": "recut", "type": "merge", "params": {"items": [{"url": "$scene2"}, {"url": "$scene1"}]}},
    ]}});
    let recut = app.submit(ACME, &again).await;
    let status = app.ended(ACME, &recut).await;
    assert_eq!(status["status"], "completed", "{status}");
    for scene in ["scene1", "scene2"] {
        assert_eq!(
            job(&status, scene)["result"]["url"],
            job(&base_status, scene)["result"]["url"]
        );
    }
    assert_eq!(provider_jobs(&app), paid, "a reused scene was generated again");
    assert_ne!(status["result"]["url"], base_status["result"]["url"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_submitted_while_the_base_runs_wait_for_it_then_run_in_parallel() {
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_millis(1500)).await;
    let base = app.submit(ACME, &product_video()).await;
    let french = app.submit(ACME, &vertical_variant(&base, "french")).await;
    let spanish = app.submit(ACME, &vertical_variant(&base, "spanish")).await;
    // Waiting, not failed, while the base's final job is open.
    let early = app.status(ACME, &french).await;
    assert!(
        ["pending", "processing"].contains(&early["status"].as_str().unwrap()),
        "{early}"
    );
    assert_eq!(job(&early, "french")["status"], "waiting");

    let base_status = app.ended(ACME, &base).await;
    assert_eq!(base_status["status"], "completed");
    for variant in [&french, &spanish] {
        let status = app.ended(ACME, variant).await;
        assert_eq!(status["status"], "completed", "{status}");
        assert_eq!(status["result"]["aspectRatio"], "9:16");
        assert_eq!(job(&status, "video")["result"]["url"], base_status["result"]["url"]);
        // It started only once the base's video was there.
        let started = job(&status, variant_job(&status))["startedAt"]
            .as_str()
            .unwrap()
            .to_string();
        let base_done = job(&base_status, "video")["completedAt"].as_str().unwrap().to_string();
        assert!(started >= base_done, "{started} before {base_done}");
    }
    app.stop().await;
}

fn variant_job(status: &Value) -> &str {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .find(|id| *id != "video")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_base_fails_its_variant_at_once_naming_the_base_job() {
    let app = spawn_app().await;
    let base_plan = json!({"jobs": [
        failing_image_job("still", "safety filter"),
        {"id": "video", "type": "reframe", "params": {"aspectRatio": "9:16", "video": "$still"}},
    ]});
    let base = app.submit(ACME, &base_plan).await;
    assert_eq!(app.ended(ACME, &base).await["status"], "failed");
    let variant = app.submit(ACME, &vertical_variant(&base, "vertical")).await;
    let status = app.ended(ACME, &variant).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("base job `video`"), "{error}");
    assert_eq!(job(&status, "vertical")["status"], "skipped");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_that_fails_while_a_variant_waits_fails_the_variant() {
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_millis(800)).await;
    let base_plan = json!({"jobs": [
        scene("scene1"),
        failing_image_job("still", "out of credits"),
        {"id": "video", "type": "merge", "params": {"items": [{"url": "$scene1"}, {"url": "$still", "type": "image"}]}},
    ]});
    let base = app.submit(ACME, &base_plan).await;
    let variant = app.submit(ACME, &vertical_variant(&base, "vertical")).await;
    assert_eq!(app.ended(ACME, &base).await["status"], "failed");
    let status = app.ended(ACME, &variant).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("base job `video`"),
        "{status}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_base_and_base_job_ids_are_clear_errors() {
    let app = spawn_app().await;
    let missing = app
        .post(ACME, "/api/execute", &vertical_variant("no-such-execution", "v"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert_eq!(missing.body["code"], "base_execution_not_found");

    let base = app.submit(ACME, &json!({"jobs": [scene("scene1")]})).await;
    app.ended(ACME, &base).await;
    let wrong = json!({"baseExecutionId": base, "jobs": [
        {"id": "v", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["scene9"]},
    ]});
    let answer = app.post(ACME, "/api/execute", &wrong).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let detail = &answer.body["details"][0];
    assert_eq!(
        (detail["code"].as_str(), detail["jobId"].as_str()),
        (Some("unknown_dependency"), Some("v"))
    );
    app.stop().await;
}
