//! `lib/api/openapi.json` against the API it describes: the served routes and the documented
//! ones are the same; the shipped examples and every request form of api-compat.md pass the
//! request schema and the server (malformed bodies fail both); real answers and webhook bodies
//! match their documented schemas; the document's own examples match its schemas.

#[path = "support/openapi_doc.rs"]
mod openapi_doc;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use openapi_doc::{assert_answer, assert_valid, document, problems, request_schema, resolve, response_schema};
use reelay_api::ApiState;
use reelay_core::plan::Operation;
use support::{failing_image_job, image_job, scene, spawn_app, spawn_app_with, App, ACME};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
/// A receiver that refuses connections: deliveries are made, and stay pending.
const HOOK: &str = "http://127.0.0.1:9/hook";

fn webhook_body_schema<'d>(doc: &'d Value, name: &str) -> &'d Value {
    let schema = &doc["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "webhook {name} documents no JSON body");
    schema
}

/// Every (method, path, operation) of `paths`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), operation));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_routes_and_documented_operations_are_the_same() {
    let doc = document();
    let app = spawn_app().await;
    let (_, served) = reelay_api::routes(ApiState {
        engine: app.node.engine().clone(),
        keys: app.node.store().clone(),
    });
    let served: BTreeSet<(String, String)> = served
        .iter()
        .map(|(m, p)| (m.as_str().to_ascii_lowercase(), p.to_string()))
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.json: {undocumented:?}"
    );
    assert!(stale.is_empty(), "in openapi.json but not served: {stale:?}");

    // What the document says about auth holds: public operations open, the others answer a
    // documented 401 without a key.
    for (method, path, operation) in operations(&doc) {
        let public = operation["security"] == json!([]);
        let concrete = path.replace("{id}", "x");
        let verb = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let answer = app.call(verb, &concrete, None, None).await;
        if public {
            // Open to calls without an API key (the provider callback still checks its token).
            assert_ne!(
                answer.body["code"], "unauthorized",
                "{method} {path} is documented public"
            );
            assert!(
                answer.headers.get(header::WWW_AUTHENTICATE).is_none(),
                "{method} {path}"
            );
        } else {
            assert_answer(&doc, &answer, &method, &path, StatusCode::UNAUTHORIZED);
            let documented = &resolve(&doc, &operation["responses"]["401"])["headers"]["WWW-Authenticate"];
            assert!(
                documented.is_object(),
                "{method} {path}: 401 does not document WWW-Authenticate"
            );
            assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{method} {path}");
        }
    }

    // The route serves this very document.
    let served_doc = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(served_doc.status, StatusCode::OK);
    assert_eq!(served_doc.body, doc, "GET /api/openapi.json serves another document");
    app.stop().await;
}

/// The media type objects of a request body or an answer, named after `what` and the type.
fn contents<'d>(what: String, owner: &'d Value, out: &mut Vec<(String, &'d Value)>) {
    for (mime, content) in owner["content"].as_object().into_iter().flatten() {
        out.push((format!("{what} {mime}"), content));
    }
}

#[test]
fn the_documents_examples_match_its_schemas() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    // Request and answer examples, by where they sit.
    let mut media: Vec<(String, &Value)> = Vec::new();
    let webhooks: Vec<(String, String, &Value)> = doc["webhooks"]
        .as_object()
        .expect("`webhooks` is an object")
        .iter()
        .map(|(name, item)| ("post".to_string(), format!("webhook {name}"), &item["post"]))
        .collect();
    for (method, path, operation) in operations(&doc).into_iter().chain(webhooks) {
        contents(
            format!("{method} {path} request"),
            &operation["requestBody"],
            &mut media,
        );
        for (status, response) in operation["responses"].as_object().expect("responses") {
            contents(format!("{method} {path} {status}"), resolve(&doc, response), &mut media);
        }
    }
    let mut checked = 0;
    for (what, content) in media {
        let schema = &content["schema"];
        let named = content["examples"].as_object().into_iter().flatten();
        let examples = named
            .map(|(name, e)| (format!("example `{name}`"), &e["value"]))
            .chain(content.get("example").map(|e| ("example".to_string(), e)));
        for (name, example) in examples {
            assert_valid(&doc, schema, example, &format!("{what}: {name}"));
            checked += 1;
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("components.schemas") {
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        for example in schema["examples"].as_array().into_iter().flatten() {
            assert_valid(&doc, &reference, example, &format!("schema {name}: an example"));
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} examples found");

    // Operation names come from the code: every one, with and without `pipeline:`, and no other.
    let names = |pointer: &str| -> BTreeSet<String> {
        doc.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let code: BTreeSet<String> = Operation::ALL.iter().map(|op| op.name().to_string()).collect();
    // A status answer also names a workflow run's steps, which plans cannot.
    let steps = [
        Operation::GenerateSceneCode,
        Operation::ValidateSceneCode,
        Operation::RenderScene,
        Operation::UploadScene,
    ];
    let viewed: BTreeSet<String> = code
        .iter()
        .cloned()
        .chain(steps.map(|op| op.name().to_string()))
        .collect();
    let prefixed: BTreeSet<String> = code.iter().map(|n| format!("pipeline:{n}")).collect();
    assert_eq!(
        names("/components/schemas/OperationName/enum"),
        &code | &prefixed,
        "OperationName"
    );
    assert_eq!(
        names("/components/schemas/JobView/properties/operation/enum"),
        viewed,
        "JobView.operation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_forms_pass_the_schema_and_the_server_alike() {
    let doc = document();
    let schema = request_schema(&doc);
    // Provider jobs never finish here: every accepted execution is cancelled (no rendering).
    let app = spawn_app_with(|s| s.node.providers.local_delay = Duration::from_secs(3600)).await;
    let base = app.submit(ACME, &json!({"jobs": [scene("base")]})).await;

    let mut examples = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            examples.push((
                format!("examples/{}", path.file_name().unwrap().to_string_lossy()),
                body,
            ));
        }
    }
    assert!(!examples.is_empty(), "no examples/*.json");

    let generate = |id: &str| {
        let mut job = scene(id);
        job["type"] = json!("pipeline:generate");
        job["output"] = json!(format!("${id}"));
        job
    };
    let mut sdk_job = generate("job2");
    sdk_job["operation"] = sdk_job.as_object_mut().unwrap().remove("type").unwrap();
    sdk_job["params"]["sendJobWebhook"] = json!(true);
    sdk_job["params"]["apiKey"] = json!("r8_JOBKEY");
    let mut raw_model = image_job("still");
    raw_model["params"]["unified"] = json!(false);
    raw_model["params"]["model"] = json!({"provider": "local", "modelId": "image", "options": {"guidance_scale": 3.5}});
    let compat = [
        (
            "form 1, webhook {url, secret}, `$id` references",
            json!({
                "jobs": [image_job("a"), generate("b"), {"id": "c", "type": "merge", "params": {
                    "items": [{"url": "$a", "type": "image", "duration": 1.5}, "$b"],
                    "addTransitions": true, "transitionDuration": 0.3}}],
                "webhook": {"url": HOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
            }),
        ),
        (
            "form 2, webhook URL with webhookSecret, providerApiKeys, options.baseExecutionId, SDK markers",
            json!({
                "executionPlan": {"jobs": [sdk_job, {
                    "id": "job1", "operation": "pipeline:reframe",
                    "params": {"aspectRatio": "9:16", "video": "_videoJobDependency:job2"},
                    "dependencies": ["job2"], "output": "$job1"}]},
                "options": {
                    "webhook": HOOK, "webhookSecret": "s3cret", "baseExecutionId": base,
                    "providerApiKeys": {"replicate": "r8_KEY", "fal": "fal_KEY", "google-cloud": "gc_KEY", "elevenlabs": "el_KEY", "hume": "hume_KEY"}
                }
            }),
        ),
        (
            "form 2, executionPlan.baseExecutionId, a reframe of the base's video",
            json!({"executionPlan": {"baseExecutionId": base, "jobs": [
                {"id": "square", "type": "reframe", "params": {"aspectRatio": "1:1", "mode": "pad"}}]}, "options": {}}),
        ),
        (
            "form 2, top-level baseExecutionId and webhook, a dependency on a base job",
            json!({"executionPlan": {"jobs": [{"id": "tall", "type": "pipeline:reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["base"]}]},
                   "baseExecutionId": base, "webhook": {"url": HOOK}}),
        ),
        (
            "compose(sceneA, sceneB, merge()), a raw model, generic and image markers",
            json!({"executionPlan": {"jobs": [generate("job2"), generate("job3"), raw_model,
                {"id": "job4", "type": "pipeline:merge", "params": {"items": []}},
                {"id": "job5", "type": "merge", "params": {"items": [{"url": "_jobDependency:job4"}, {"media": "_imageJobDependency:still", "type": "image"}]}}]}}),
        ),
    ];
    for (what, body) in examples
        .iter()
        .map(|(w, b)| (w.as_str(), b))
        .chain(compat.iter().map(|(w, b)| (*w, b)))
    {
        assert_valid(&doc, schema, body, &format!("request body `{what}`"));
        let answer = app.post(ACME, "/api/execute", body).await;
        assert_answer(&doc, &answer, "post", "/api/execute", StatusCode::ACCEPTED);
        let id = answer.body["executionId"].as_str().unwrap();
        let cancel = app
            .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
            .await;
        // Local jobs here never finish, so a cancel lands; only an execution that has already
        // ended may refuse it: one on a hosted provider fails for want of a key (no provider is
        // reachable from a test).
        let expected = if cancel.status == StatusCode::CONFLICT {
            let status = app.status(ACME, id).await;
            assert!(
                matches!(status["status"].as_str(), Some("failed" | "completed")),
                "{what}: cancel refused while {status}"
            );
            StatusCode::CONFLICT
        } else {
            StatusCode::ACCEPTED
        };
        assert_answer(&doc, &cancel, "post", "/api/executions/{id}/cancel", expected);
    }
    let cancel = app
        .post(ACME, &format!("/api/executions/{base}/cancel"), &json!({}))
        .await;
    assert_answer(
        &doc,
        &cancel,
        "post",
        "/api/executions/{id}/cancel",
        StatusCode::ACCEPTED,
    );
    // A cancelled execution, on both status paths: `failed` on the SDK's, `cancelled` on the other.
    app.ended(ACME, &base).await;
    for (path, status) in [
        ("/api/execute/{id}/status", "failed"),
        ("/api/status/{id}", "cancelled"),
    ] {
        let answer = app.get(ACME, &path.replace("{id}", &base)).await;
        assert_answer(&doc, &answer, "get", path, StatusCode::OK);
        assert_eq!(
            (&answer.body["status"], &answer.body["cancelled"]),
            (&json!(status), &json!(true)),
            "{path}"
        );
    }

    let mut no_id = image_job("a");
    no_id.as_object_mut().unwrap().remove("id");
    let mut no_type = image_job("a");
    no_type.as_object_mut().unwrap().remove("type");
    let mut zero_duration = image_job("a");
    zero_duration["params"]["duration"] = json!(0);
    let mut deps_not_array = image_job("a");
    deps_not_array["dependsOn"] = json!("b");
    let invalid = [
        ("`jobs` not an array", json!({"jobs": "x"})),
        ("no jobs", json!({"jobs": []})),
        ("neither form", json!({"plan": {"jobs": [image_job("a")]}})),
        ("`executionPlan` not an object", json!({"executionPlan": "x"})),
        ("a job without `id`", json!({"jobs": [no_id]})),
        ("a job without `type` or `operation`", json!({"jobs": [no_type]})),
        (
            "an unknown operation",
            json!({"jobs": [{"id": "a", "type": "explode"}]}),
        ),
        ("`dependsOn` not an array", json!({"jobs": [deps_not_array]})),
        ("duration 0", json!({"jobs": [zero_duration]})),
        (
            "a webhook without url",
            json!({"jobs": [image_job("a")], "webhook": {"secret": "s"}}),
        ),
        (
            "a webhook that is not http(s)",
            json!({"jobs": [image_job("a")], "webhook": "ftp://example.com/hook"}),
        ),
        (
            "a provider key that is not a string",
            json!({"executionPlan": {"jobs": [image_job("a")]}, "options": {"providerApiKeys": {"fal": 42}}}),
        ),
    ];
    for (what, body) in &invalid {
        assert!(
            !problems(&doc, schema, body).is_empty(),
            "the request schema accepts a malformed body ({what}): {body}"
        );
        let answer = app.post(ACME, "/api/execute", body).await;
        assert_answer(&doc, &answer, "post", "/api/execute", StatusCode::BAD_REQUEST);
    }
    app.stop().await;
}

/// Submits `body` and reads the status of its ended execution on both paths.
async fn ended(doc: &Value, app: &App, body: &Value) -> (String, Value) {
    let accepted = app.post(ACME, "/api/execute", body).await;
    assert_answer(doc, &accepted, "post", "/api/execute", StatusCode::ACCEPTED);
    let id = accepted.body["executionId"].as_str().unwrap().to_string();
    // Right away: most fields are still null or empty.
    let early = app.get(ACME, &format!("/api/execute/{id}/status")).await;
    assert_answer(doc, &early, "get", "/api/execute/{id}/status", StatusCode::OK);
    let last = app.ended(ACME, &id).await;
    let what = "the 200 answer of get /api/status/{id} (ended)";
    assert_valid(
        doc,
        response_schema(doc, "get", "/api/status/{id}", StatusCode::OK),
        &last,
        what,
    );
    let sdk = app.get(ACME, &format!("/api/execute/{id}/status")).await;
    assert_answer(doc, &sdk, "get", "/api/execute/{id}/status", StatusCode::OK);
    (id, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_webhook_bodies_match_their_documented_schemas() {
    let doc = document();
    let app = spawn_app().await;

    // A completed execution with a webhook and a job webhook, and a failed one.
    let mut notified = image_job("a");
    notified["params"]["sendJobWebhook"] = json!(true);
    let plan = json!({"jobs": [notified, image_job("b")], "webhook": {"url": HOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}});
    let (done, status) = ended(&doc, &app, &plan).await;
    assert_eq!(status["status"], "completed", "{status}");
    // The end message is made just after the end is announced: wait for it to show.
    let status = app
        .until(ACME, &done, "its webhook delivery", |s| s["webhook"].is_object())
        .await;
    assert!(status["jobs"][0]["webhook"].is_object(), "{status}");
    let schema = response_schema(&doc, "get", "/api/execute/{id}/status", StatusCode::OK);
    assert_valid(
        &doc,
        schema,
        &status,
        "the 200 answer of get /api/execute/{id}/status (webhook made)",
    );
    let failing = json!({"jobs": [failing_image_job("a", "bad luck"), image_job("b")], "webhook": HOOK});
    let (failed, status) = ended(&doc, &app, &failing).await;
    assert_eq!(status["status"], "failed", "{status}");
    app.until(ACME, &failed, "its webhook delivery", |s| s["webhook"].is_object())
        .await;

    // The webhook messages as stored for delivery: their bodies and headers.
    let mut kinds = BTreeSet::new();
    for id in [&done, &failed] {
        for delivery in app.node.engine().store().deliveries(id).await.unwrap() {
            let body: Value = serde_json::from_str(&delivery.body).unwrap();
            let name = if delivery.job_id.is_some() {
                "jobEnded"
            } else {
                "executionEnded"
            };
            assert_valid(
                &doc,
                webhook_body_schema(&doc, name),
                &body,
                &format!("webhook {name} of {id}"),
            );
            kinds.insert(name);
        }
    }
    assert_eq!(kinds, BTreeSet::from(["executionEnded", "jobEnded"]));
    let sent: BTreeSet<String> = reelay_core::webhooks::signature::headers(Some("whsec_x"), "msg_1", 1, b"{}")
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "content-type")
        .collect();
    for name in ["executionEnded", "jobEnded"] {
        let documented: BTreeSet<String> = doc["webhooks"][name]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        assert_eq!(documented, sent, "the headers of webhook {name}");
    }

    // Listing, one page at a time.
    let first = app.get(ACME, "/api/executions?limit=1").await;
    assert_answer(&doc, &first, "get", "/api/executions", StatusCode::OK);
    let cursor = first.body["nextCursor"].as_str().expect("a second page");
    let second = app
        .get(
            ACME,
            &format!("/api/executions?status=completed&limit=100&cursor={cursor}"),
        )
        .await;
    assert_answer(&doc, &second, "get", "/api/executions", StatusCode::OK);

    // Errors.
    let bad_plan =
        json!({"jobs": [{"id": "a", "type": "explode"}, {"id": "a", "type": "merge", "dependsOn": ["zzz"]}]});
    let answer = app.post(ACME, "/api/execute", &bad_plan).await;
    assert_answer(&doc, &answer, "post", "/api/execute", StatusCode::BAD_REQUEST);
    let not_json = app
        .call(
            Method::POST,
            "/api/execute",
            Some(app.key(ACME)),
            Some("{not json".into()),
        )
        .await;
    assert_answer(&doc, &not_json, "post", "/api/execute", StatusCode::BAD_REQUEST);
    let missing_base = json!({"jobs": [image_job("a")], "baseExecutionId": "nope"});
    let answer = app.post(ACME, "/api/execute", &missing_base).await;
    assert_answer(&doc, &answer, "post", "/api/execute", StatusCode::NOT_FOUND);
    let huge = format!("{{\"jobs\":[],\"pad\":\"{}\"}}", "x".repeat(1024 * 1024));
    let answer = app
        .call(Method::POST, "/api/execute", Some(app.key(ACME)), Some(huge))
        .await;
    assert_answer(&doc, &answer, "post", "/api/execute", StatusCode::PAYLOAD_TOO_LARGE);
    let text = axum::http::Request::post("/api/execute")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key(ACME)))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = app.router.clone().oneshot(text).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let schema = response_schema(&doc, "post", "/api/execute", status);
    assert_valid(&doc, schema, &body, "the 415 answer of post /api/execute");

    let answer = app
        .call(Method::GET, "/api/executions", Some("rl_live_0000"), None)
        .await;
    assert_answer(&doc, &answer, "get", "/api/executions", StatusCode::UNAUTHORIZED);
    for query in ["limit=0", "limit=many", "status=done", "cursor=%21"] {
        let answer = app.get(ACME, &format!("/api/executions?{query}")).await;
        assert_answer(&doc, &answer, "get", "/api/executions", StatusCode::BAD_REQUEST);
    }
    for path in ["/api/status/{id}", "/api/execute/{id}/status"] {
        let answer = app.get(ACME, &format!("{}?wait=31", path.replace("{id}", &done))).await;
        assert_answer(&doc, &answer, "get", path, StatusCode::BAD_REQUEST);
        let answer = app.get(ACME, &path.replace("{id}", "nope")).await;
        assert_answer(&doc, &answer, "get", path, StatusCode::NOT_FOUND);
    }
    let cancel = "/api/executions/{id}/cancel";
    let answer = app.post(ACME, &cancel.replace("{id}", "nope"), &json!({})).await;
    assert_answer(&doc, &answer, "post", cancel, StatusCode::NOT_FOUND);
    for id in [&done, &failed] {
        let answer = app.post(ACME, &cancel.replace("{id}", id), &json!({})).await;
        assert_answer(&doc, &answer, "post", cancel, StatusCode::CONFLICT);
    }
    let answer = app.post(ACME, &cancel.replace("{id}", "%FF"), &json!({})).await;
    assert_answer(&doc, &answer, "post", cancel, StatusCode::BAD_REQUEST);

    // Provider callbacks refused, unreadable or too large.
    let callback = "/api/webhooks/job/{record}";
    for (query, body, expected) in [
        ("?token=t", "{}".to_string(), StatusCode::UNAUTHORIZED),
        ("?token=a&token=b", "{}".to_string(), StatusCode::BAD_REQUEST),
        ("?token=t", "x".repeat(5 * 1024 * 1024), StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let path = format!("{}{query}", callback.replace("{record}", "nope"));
        let answer = app.call(Method::POST, &path, None, Some(body)).await;
        assert_answer(&doc, &answer, "post", callback, expected);
    }

    // Unknown routes and methods have no operation to document them: they are `Error`s.
    let error = json!({"$ref": "#/components/schemas/Error"});
    let key = Some(app.key(ACME));
    for (method, path, expected) in [
        (Method::GET, "/api/nowhere", StatusCode::NOT_FOUND),
        (Method::DELETE, "/api/execute", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/api/webhooks/job/nope", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let answer = app.call(method.clone(), path, key, None).await;
        assert_eq!(answer.status, expected, "{method} {path}: {}", answer.body);
        assert_valid(
            &doc,
            &error,
            &answer.body,
            &format!("the {expected} answer of {method} {path}"),
        );
    }
    app.stop().await;
}
