//! The HTTP API on the embedded node: keys and tenants, submit, status (and `?wait=`),
//! listing, cancellation, limits, and secrets kept out of storage and answers.

mod support;

use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use reelay_core::ports::KeyStore;
use support::{failing_image_job, image_job, scene, spawn_app, spawn_app_with, App, ACME, GLOBEX};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_in_every_form_then_read_status_to_completion() {
    let app = spawn_app().await;
    let top_level = json!({"jobs": [image_job("a")]});
    let nested = json!({"executionPlan": {"jobs": [image_job("a")]}, "options": {}});
    for body in [top_level, nested] {
        let accepted = app.post(ACME, "/api/execute", &body).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
        assert_eq!(accepted.body["status"], "pending");
        assert!(accepted.body["createdAt"].as_str().unwrap().ends_with('Z'));
        let id = accepted.body["executionId"].as_str().unwrap().to_string();
        let last = app.ended(ACME, &id).await;
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
        assert_eq!(last["webhook"], Value::Null, "no webhook was asked for");
        // The SDK's path answers the same.
        let sdk = app.status(ACME, &id).await;
        assert_eq!(sdk["result"], last["result"]);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let app = spawn_app().await;
    // Every validation problem at once, each naming its job and field.
    let bad = json!({"jobs": [
        {"id": "a", "type": "generate", "params": {"provider": "local", "modelId": "video", "duration": 0}},
        {"id": "a", "type": "explode"},
        {"id": "c", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["zzz"]},
    ]});
    let answer = app.post(ACME, "/api/execute", &bad).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let details = answer.body["details"].as_array().unwrap();
    let has = |code: &str, job: &str| details.iter().any(|d| d["code"] == code && d["jobId"] == job);
    assert!(has("invalid_param", "a"), "{}", answer.body);
    assert!(has("duplicate_job_id", "a"), "{}", answer.body);
    assert!(has("unknown_operation", "a"), "{}", answer.body);
    assert!(has("unknown_dependency", "c"), "{}", answer.body);
    assert!(details.iter().any(|d| d["field"] == "params.duration"));
    assert_eq!(
        answer.body["code"], "invalid_plan",
        "the SDK reads `code` beside `error`"
    );

    let key = Some(app.key(ACME));
    let answer = app
        .call(Method::POST, "/api/execute", key, Some("{not json".into()))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["details"][0]["code"], "invalid_json");

    let not_json = axum::http::Request::post("/api/execute")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key(ACME)))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), not_json).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!("{{\"jobs\":[],\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let answer = app.call(Method::POST, "/api/execute", key, Some(huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body["code"], "body_too_large");

    assert_eq!(app.get(ACME, "/api/status/nope").await.status, StatusCode::NOT_FOUND);
    // Unknown routes and methods answer in the same error shape.
    let answer = app.get(ACME, "/api/nowhere").await;
    assert_eq!(
        (answer.status, answer.body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let answer = app.call(Method::DELETE, "/api/execute", key, None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.body["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_valid_key_are_refused() {
    let app = spawn_app().await;
    let body = json!({"jobs": [image_job("a")]}).to_string();
    let routes = [
        (Method::POST, "/api/execute".to_string(), Some(body.clone())),
        (Method::GET, "/api/status/x".to_string(), None),
        (Method::GET, "/api/execute/x/status".to_string(), None),
        (Method::GET, "/api/executions".to_string(), None),
        (Method::POST, "/api/executions/x/cancel".to_string(), None),
    ];
    let (revoked_key, record) = reelay_core::tenants::new_key(ACME, "old", 1);
    app.node.store().create_key(&record).await.unwrap();
    assert!(app.node.store().revoke_key(&record.id, 2).await.unwrap());
    for (method, path, body) in routes {
        for bearer in [None, Some("rl_live_0000"), Some(""), Some(revoked_key.as_str())] {
            let answer = app.call(method.clone(), &path, bearer, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {bearer:?}"
            );
            assert_eq!(answer.body["code"], "unauthorized");
            assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
    // A key is taken only as a bearer token.
    let basic = axum::http::Request::get("/api/executions")
        .header(header::AUTHORIZATION, format!("Basic {}", app.key(ACME)))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), basic).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The API's description is public.
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_executions() {
    let app = spawn_app().await;
    let id = app.submit(ACME, &json!({"jobs": [image_job("a")]})).await;
    let running = app.submit(ACME, &json!({"jobs": [scene("slow")]})).await;
    app.ended(ACME, &id).await;
    for path in [format!("/api/status/{id}"), format!("/api/execute/{id}/status")] {
        let foreign = app.get(GLOBEX, &path).await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{path}: {}", foreign.body);
        assert_eq!(app.get(ACME, &path).await.status, StatusCode::OK);
    }
    // Cancelling another tenant's running execution: not found, and it runs on.
    let foreign = app
        .post(GLOBEX, &format!("/api/executions/{running}/cancel"), &json!({}))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    // Building on another tenant's execution: not found, naming the field.
    let variant =
        json!({"baseExecutionId": id, "jobs": [{"id": "v", "type": "reframe", "params": {"aspectRatio": "9:16"}}]});
    let foreign = app.post(GLOBEX, "/api/execute", &variant).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);
    assert_eq!(foreign.body["details"][0]["field"], "baseExecutionId");
    // Listings hold only one's own.
    let listed = app.get(GLOBEX, "/api/executions").await;
    assert_eq!(listed.body["executions"], json!([]), "{}", listed.body);
    let listed = app.get(ACME, "/api/executions").await;
    assert_eq!(listed.body["executions"].as_array().unwrap().len(), 2);
    assert_eq!(app.ended(ACME, &running).await["status"], "completed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_paginated_and_filtered() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = if i % 2 == 0 {
            image_job("a")
        } else {
            failing_image_job("a", "no")
        };
        ids.push(app.submit(ACME, &json!({"jobs": [job]})).await);
    }
    for id in &ids {
        app.ended(ACME, id).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/executions?limit=2".to_string();
    loop {
        let page = app.get(ACME, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let executions = page.body["executions"].as_array().unwrap();
        assert!(executions.len() <= 2);
        seen.extend(
            executions
                .iter()
                .map(|e| e["executionId"].as_str().unwrap().to_string()),
        );
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/executions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let failed = app.get(ACME, "/api/executions?status=failed").await;
    let failed: Vec<&str> = failed.body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executionId"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec![ids[3].as_str(), ids[1].as_str()]);

    for bad in [
        "/api/executions?status=done",
        "/api/executions?limit=0",
        "/api/executions?limit=101",
        "/api/executions?cursor=!!",
        "/api/executions?limit=x",
    ] {
        let answer = app.get(ACME, bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
        assert_eq!(answer.body["code"], "invalid_request");
        let field = answer.body["details"][0]["field"].as_str().unwrap().to_string();
        assert!(bad.contains(&format!("{field}=")), "{bad} blamed `{field}`");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_can_wait_for_the_end() {
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_millis(1500)).await;
    let id = app.submit(ACME, &json!({"jobs": [image_job("a")]})).await;
    // A short wait answers with the execution still going.
    let early = app.get(ACME, &format!("/api/status/{id}?wait=0.2")).await;
    assert_eq!(early.status, StatusCode::OK);
    assert!(
        ["pending", "processing"].contains(&early.body["status"].as_str().unwrap()),
        "{}",
        early.body
    );
    // One call that waits long enough sees the end.
    let ended = app.get(ACME, &format!("/api/execute/{id}/status?wait=30")).await;
    assert_eq!(ended.body["status"], "completed", "{}", ended.body);
    for bad in ["31", "-1", "soon"] {
        let answer = app.get(ACME, &format!("/api/status/{id}?wait={bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "wait={bad}");
        assert_eq!(answer.body["details"][0]["field"], "wait");
    }
    app.stop().await;
}

/// A `local` polling model's end is noticed when its render ends, not at its next poll: with
/// the first poll an hour away, the execution still ends (the status wait gives up long
/// before an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_polling_models_end_is_noticed_without_waiting_for_a_poll() {
    let app = spawn_app_with(|s| {
        s.node.engine.poll_first = Duration::from_secs(3600);
        s.node.engine.poll_max = Duration::from_secs(3600);
    })
    .await;
    let job = |id: &str, kind: &str, model: &str| {
        json!({"id": id, "type": kind, "params": {"provider": "local", "modelId": model,
            "prompt": id, "duration": 1, "resolution": "144p"}})
    };
    let mut then = job("still", "generateImage", "image-polling");
    then["dependsOn"] = json!(["clip"]);
    let id = app
        .submit(ACME, &json!({"jobs": [job("clip", "generate", "video-polling"), then]}))
        .await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limits_answer_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.node.providers.local_delay = Duration::from_millis(1500);
        s.node.engine.admission.max_in_flight = Some(2);
        s.node.engine.admission.max_per_minute = Some(3);
    })
    .await;
    let body = json!({"jobs": [image_job("a")]});
    let first = app.submit(ACME, &body).await;
    let second = app.submit(ACME, &body).await;
    let refused = app.post(ACME, "/api/execute", &body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
    assert_eq!(refused.body["code"], "rate_limited");
    assert!(
        refused.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Limits are per tenant.
    app.submit(GLOBEX, &body).await;
    // Once one ends there is room in flight, but the minute's budget (3) is spent.
    app.ended(ACME, &first).await;
    let third = app.submit(ACME, &body).await;
    app.ended(ACME, &second).await;
    let refused = app.post(ACME, "/api/execute", &body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.body["error"].as_str().unwrap().contains("last minute"),
        "{}",
        refused.body
    );
    let wait: u64 = refused.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(app.ended(ACME, &third).await["status"], "completed");
    app.stop().await;
}

/// A two-job plan whose first job is a slow provider job: waiting to be cancelled.
async fn slow_pipeline(app: &App) -> String {
    let plan = json!({"jobs": [scene("scene"), {"id": "vertical", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["scene"]}]});
    app.submit(ACME, &plan).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_provider_job_and_the_jobs_after_it() {
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_secs(3)).await;
    let id = slow_pipeline(&app).await;
    app.until(ACME, &id, "scene awaiting its provider", |s| {
        s["jobs"][0]["status"] == "awaiting_provider"
    })
    .await;
    let cancelled = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "cancelled");
    let jobs: Vec<(&str, &str)> = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(jobs, vec![("scene", "cancelled"), ("vertical", "cancelled")]);
    // The provider was told to stop that job.
    let key = reelay_core::domain::JobKey {
        execution_id: id.clone(),
        job_id: "scene".into(),
    };
    let job = app.node.engine().store().job(&key).await.unwrap().unwrap();
    let provider_job = job.provider.unwrap().provider_job_id.unwrap();
    // The execution may end before the provider hears: the handler that cancelled the job
    // asks it after its own write, while another ends the execution.
    let told = app
        .dir
        .path()
        .join("provider/jobs")
        .join(&provider_job)
        .join("cancelled");
    for _ in 0..50 {
        if told.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(told.exists(), "the provider was not told to stop");
    // Again: the same answer.
    let again = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (again.status, again.body["status"].clone()),
        (StatusCode::ACCEPTED, json!("cancelled"))
    );
    // Past the provider's time, nothing came back to life.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = app.ended(ACME, &id).await;
    assert_eq!(later["status"], "cancelled");
    assert_eq!(later["jobs"][0]["result"], Value::Null);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_ended_execution_is_a_conflict() {
    let app = spawn_app().await;
    let done = app.submit(ACME, &json!({"jobs": [image_job("a")]})).await;
    let failed = app
        .submit(ACME, &json!({"jobs": [failing_image_job("a", "bad luck")]}))
        .await;
    for (id, status) in [(done, "completed"), (failed, "failed")] {
        app.ended(ACME, &id).await;
        let answer = app
            .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
        assert_eq!(answer.body["status"], status);
        assert_eq!(answer.body["code"], "already_ended");
        assert_eq!(app.status(ACME, &id).await["status"], status);
    }
    let missing = app.post(ACME, "/api/executions/nope/cancel", &json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Every byte the store wrote to disk, as text (the database and its write-ahead log).
fn stored_bytes(app: &App) -> String {
    let mut all = Vec::new();
    for name in ["reelay.db", "reelay.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.dir.path().join(name)) {
            all.extend(bytes);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_stored_or_answered_in_clear() {
    let app = spawn_app().await;
    let mut job = image_job("a");
    job["params"]["apiKey"] = json!("sk-JOB-KEY-123");
    let mut raw = image_job("b");
    raw["params"]["unified"] = json!(false);
    raw["params"]["model"] =
        json!({"provider": "local", "modelId": "image", "options": {"apiKey": "sk-MODEL-KEY-456"}});
    let body = json!({
        "executionPlan": {"jobs": [job, raw]},
        "options": {
            "providerApiKeys": {"replicate": "r8_REQUEST-KEY-789"},
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": "whsec_SECRETSECRETSECRET"}
        }
    });
    let id = app.submit(ACME, &body).await;
    let status = app.ended(ACME, &id).await;
    let answered = status.to_string();
    let stored = stored_bytes(&app);
    for secret in [
        "sk-JOB-KEY-123",
        "sk-MODEL-KEY-456",
        "r8_REQUEST-KEY-789",
        "SECRETSECRETSECRET",
    ] {
        assert!(!answered.contains(secret), "{secret} in a status answer");
        assert!(!stored.contains(secret), "{secret} stored in clear");
    }
    // The API keys themselves are stored only as hashes.
    assert!(!stored.contains(app.key(ACME)));
    app.stop().await;
}

/// What the SDK shows for an error answer (`${body.error} (${body.code})`), after checking the
/// shape every error has: `error` a line of text, `code`, and `details`, never empty, each
/// with its own `code` and `message`.
fn shown(answer: &support::Answer, status: StatusCode, code: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = &answer.body;
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("`error` is not text: {body}"));
    assert!(!error.is_empty(), "{body}");
    assert_eq!(body["code"], code, "{body}");
    let details = body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no `details`: {body}"));
    assert!(!details.is_empty(), "{body}");
    for detail in details {
        assert!(detail["code"].is_string() && detail["message"].is_string(), "{body}");
    }
    format!("{error} ({code})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_text_the_sdk_can_show_naming_what_was_wrong() {
    let app = spawn_app().await;
    let key = Some(app.key(ACME));

    // A refused plan: the first problem with its job and field, and how many more.
    let mut no_duration = scene("job2");
    no_duration["params"]["duration"] = json!(0);
    let plan = json!({"executionPlan": {"jobs": [
        no_duration,
        {"id": "job3", "type": "explode"},
        {"id": "job1", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["job9"]},
    ]}});
    let answer = app.post(ACME, "/api/execute", &plan).await;
    let text = shown(&answer, StatusCode::BAD_REQUEST, "invalid_plan");
    let details = answer.body["details"].as_array().unwrap();
    let more = details.len() - 1;
    let first = &details[0];
    let lead = format!(
        "job `{}`, field `{}`: ",
        first["jobId"].as_str().unwrap(),
        first["field"].as_str().unwrap()
    );
    assert!(text.starts_with(&lead), "{text}");
    assert!(
        details
            .iter()
            .any(|d| d["jobId"] == "job2" && d["field"] == "params.duration"),
        "{}",
        answer.body
    );
    assert!(
        text.ends_with(&format!("(and {more} more problems) (invalid_plan)")),
        "{text}"
    );
    // One problem: no count.
    let one = app
        .post(ACME, "/api/execute", &json!({"jobs": [{"id": "a", "type": "explode"}]}))
        .await;
    let text = shown(&one, StatusCode::BAD_REQUEST, "invalid_plan");
    assert!(
        text.starts_with("job `a`, field `type`: ") && !text.contains("more problem"),
        "{text}"
    );
    let answer = app
        .call(Method::POST, "/api/execute", key, Some("{not json".into()))
        .await;
    assert!(shown(&answer, StatusCode::BAD_REQUEST, "invalid_plan").contains("JSON"));

    // A query parameter or path segment out of shape names its field.
    let answer = app.get(ACME, "/api/executions?limit=0").await;
    assert!(shown(&answer, StatusCode::BAD_REQUEST, "invalid_request").contains("`limit`"));
    assert_eq!(answer.body["details"][0]["field"], "limit");
    let answer = app.get(ACME, "/api/status/%FF").await;
    shown(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(answer.body["details"][0]["field"], "path");

    // Keys: missing, unknown.
    let answer = app.call(Method::GET, "/api/executions", None, None).await;
    assert!(shown(&answer, StatusCode::UNAUTHORIZED, "unauthorized").contains("Authorization: Bearer"));
    let answer = app
        .call(Method::GET, "/api/executions", Some("rl_live_0000"), None)
        .await;
    assert!(shown(&answer, StatusCode::UNAUTHORIZED, "unauthorized").contains("API key is not valid"));
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");

    // Unknown executions, on every route that takes one, and as a base.
    for path in ["/api/status/no-such-id", "/api/execute/no-such-id/status"] {
        let answer = app.get(ACME, path).await;
        assert!(shown(&answer, StatusCode::NOT_FOUND, "not_found").contains("no execution no-such-id"));
    }
    let answer = app.post(ACME, "/api/executions/no-such-id/cancel", &json!({})).await;
    assert!(shown(&answer, StatusCode::NOT_FOUND, "not_found").contains("no-such-id"));
    let variant = json!({"baseExecutionId": "no-such-base", "jobs": [image_job("a")]});
    let answer = app.post(ACME, "/api/execute", &variant).await;
    assert_eq!(
        shown(&answer, StatusCode::NOT_FOUND, "base_execution_not_found"),
        "field `baseExecutionId`: no base execution no-such-base (base_execution_not_found)"
    );

    // Routes and methods that do not exist.
    let answer = app.get(ACME, "/api/nowhere").await;
    assert!(shown(&answer, StatusCode::NOT_FOUND, "not_found").contains("/api/nowhere"));
    let answer = app.call(Method::DELETE, "/api/execute", key, None).await;
    let text = shown(&answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(text.contains("/api/execute") && text.contains("DELETE"), "{text}");

    // Bodies: too large, not JSON.
    let huge = format!("{{\"jobs\":[],\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let answer = app.call(Method::POST, "/api/execute", key, Some(huge)).await;
    assert!(shown(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").contains("1048576 bytes"));
    let text = axum::http::Request::post("/api/execute")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key(ACME)))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), text).await.unwrap();
    let answer = support::Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(&axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap(),
    };
    assert!(shown(&answer, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").contains("`text/plain`"));

    // Cancelling what already ended names it and how it ended.
    let done = app.submit(ACME, &json!({"jobs": [image_job("a")]})).await;
    app.ended(ACME, &done).await;
    let answer = app
        .post(ACME, &format!("/api/executions/{done}/cancel"), &json!({}))
        .await;
    let text = shown(&answer, StatusCode::CONFLICT, "already_ended");
    assert!(text.contains(&done) && text.contains("(completed)"), "{text}");
    assert_eq!(answer.body["status"], "completed");

    // Provider callbacks: refused, unreadable query, too large.
    let callback = |query: &str| format!("/api/webhooks/job/no-such-record{query}");
    let answer = app
        .call(Method::POST, &callback("?token=t"), None, Some("{}".into()))
        .await;
    assert!(shown(&answer, StatusCode::UNAUTHORIZED, "callback_refused").contains("unknown job"));
    let answer = app
        .call(Method::POST, &callback("?token=a&token=b"), None, Some("{}".into()))
        .await;
    assert!(shown(&answer, StatusCode::BAD_REQUEST, "invalid_request").contains("token"));
    let answer = app
        .call(
            Method::POST,
            &callback("?token=t"),
            None,
            Some("x".repeat(5 * 1024 * 1024)),
        )
        .await;
    assert!(shown(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").contains("4194304 bytes"));
    app.stop().await;

    // Over a tenant's limit: the reason, and Retry-After.
    let app = spawn_app_with(|s| {
        s.node.providers.local_delay = Duration::from_secs(5);
        s.node.engine.admission.max_in_flight = Some(1);
    })
    .await;
    app.submit(ACME, &json!({"jobs": [image_job("a")]})).await;
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [image_job("a")]})).await;
    let text = shown(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(text.contains("limit"), "{text}");
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_execution_ends_the_sdks_wait_as_failed() {
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_secs(3)).await;
    let id = slow_pipeline(&app).await;
    let running = app.status(ACME, &id).await;
    assert_eq!(
        (running["cancelled"].as_bool(), running["error"].as_str()),
        (Some(false), None)
    );
    let cancelled = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.body);

    // The design documents' route and the listing keep `cancelled`...
    let design = app.ended(ACME, &id).await;
    assert_eq!(design["status"], "cancelled", "{design}");
    assert_eq!(design["cancelled"], true);
    let error = design["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("execution was cancelled by a cancel request at "),
        "{error}"
    );
    let listed = app.get(ACME, "/api/executions").await;
    let summary = &listed.body["executions"][0];
    assert_eq!(summary["executionId"], id.as_str());
    assert_eq!(
        (&summary["status"], &summary["error"]),
        (&json!("cancelled"), &json!(error))
    );

    // ...while the SDK's route answers an end its blocking mode knows: `failed`, saying why.
    for path in [
        format!("/api/execute/{id}/status"),
        format!("/api/execute/{id}/status?wait=30"),
    ] {
        let sdk = app.get(ACME, &path).await;
        assert_eq!(sdk.status, StatusCode::OK, "{}", sdk.body);
        assert_eq!(
            (&sdk.body["status"], &sdk.body["cancelled"], &sdk.body["error"]),
            (&json!("failed"), &json!(true), &json!(error)),
            "{path}"
        );
        // Only the status differs from the other route.
        let mut same = sdk.body.clone();
        same["status"] = json!("cancelled");
        same["webhook"] = design["webhook"].clone();
        assert_eq!(same, design);
    }
    app.stop().await;
}
