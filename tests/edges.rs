//! The contract at the edges: every refusal the framework itself makes (unknown routes and
//! methods, bodies too large or unreadable, the wrong media type, paths and queries that cannot
//! be read) answers the error shape with a stable code; each body-taking route has one body
//! limit, reelay's; empty query values are as absent, as the document says; the auth scheme is
//! matched in any case; and the document's own request examples are accepted by a default
//! server.

#[path = "support/openapi_doc.rs"]
mod openapi_doc;
mod support;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use openapi_doc::{assert_valid, document, resolve};
use support::{image_job, scene, spawn_app, spawn_served_app_with, Answer, App, ACME};

const MIB: usize = 1024 * 1024;
const CALLBACK: &str = "/api/webhooks/job/nope?token=t";

/// Sends a request as built, through the router in process.
async fn send(app: &App, request: Request<Body>) -> Answer {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))),
    }
}

fn authed(app: &App, method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key(ACME)))
}

/// A body sent without a length, in 64 KiB chunks.
fn chunked(size: usize) -> Body {
    let chunks = (0..size.div_ceil(64 * 1024)).map(move |i| {
        let len = (size - i * 64 * 1024).min(64 * 1024);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; len]))
    });
    Body::from_stream(futures::stream::iter(chunks))
}

/// The error shape, JSON, with this status and code: `error` a line of text, `details` never
/// empty, each with its `code` and `message`; it also matches the document's `Error`.
fn assert_refused(answer: &Answer, status: StatusCode, code: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    let content_type = answer.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap());
    assert_eq!(content_type, Some("application/json"), "{what}: {}", answer.body);
    let body = &answer.body;
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
    let details = body["details"].as_array().unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(!details.is_empty(), "{what}: {body}");
    assert!(
        details
            .iter()
            .all(|d| d["code"].is_string() && d["message"].is_string()),
        "{what}: {body}"
    );
    // The workflow routes add `success: false`, as their clients read it.
    let schema = if body.get("success").is_some() {
        "WorkflowError"
    } else {
        "Error"
    };
    let doc = document();
    assert_valid(
        &doc,
        &json!({"$ref": format!("#/components/schemas/{schema}")}),
        body,
        what,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_refusals_answer_the_error_shape() {
    let app = spawn_app().await;
    let key = Some(app.key(ACME));

    // Unknown routes, with a key or without.
    for (bearer, path) in [
        (key, "/api/nowhere"),
        (None, "/nowhere/at/all"),
        (key, "/api/execute/x"),
    ] {
        let answer = app.call(Method::GET, path, bearer, None).await;
        assert_refused(&answer, StatusCode::NOT_FOUND, "not_found", path);
    }

    // Methods a route does not take: 405, with `Allow`.
    for (method, path, allow) in [
        (Method::DELETE, "/api/execute", "POST"),
        (Method::PUT, "/api/status/x", "GET,HEAD"),
        (Method::GET, "/api/executions/x/cancel", "POST"),
        (Method::PATCH, "/api/webhooks/job/x", "POST"),
        (Method::POST, "/api/openapi.json", "GET,HEAD"),
    ] {
        let answer = app.call(method.clone(), path, key, None).await;
        let what = format!("{method} {path}");
        assert_refused(&answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &what);
        assert_eq!(answer.headers[header::ALLOW], allow, "{what}");
    }

    // Too large, by declared length or while reading a body sent without one.
    let plan_limit = 1024 * 1024;
    for (path, limit) in [
        ("/api/execute", plan_limit),
        ("/api/workflows/generate-video", plan_limit),
        ("/api/executions/x/cancel", 64 * 1024),
    ] {
        let declared = authed(&app, Method::POST, path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, limit + 1)
            .body(Body::from(vec![b' '; limit + 1]))
            .unwrap();
        let answer = send(&app, declared).await;
        assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", path);
        assert!(
            answer.body["error"].as_str().unwrap().contains(&limit.to_string()),
            "{}",
            answer.body
        );
        // Reading stops at the limit (cancel reads no body: only a declared length counts).
        if !path.ends_with("/cancel") {
            let streamed = authed(&app, Method::POST, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(chunked(limit + 1))
                .unwrap();
            let answer = send(&app, streamed).await;
            assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", path);
        }
    }

    // A provider callback gets the 4 MiB the document promises: 3 MiB is read (and refused for
    // its token, not its size), past 4 MiB is too large, with or without a length.
    for body in [Body::from(vec![b' '; 3 * MIB]), chunked(3 * MIB)] {
        let request = Request::post(CALLBACK).body(body).unwrap();
        let answer = send(&app, request).await;
        assert_refused(
            &answer,
            StatusCode::UNAUTHORIZED,
            "callback_refused",
            "a 3 MiB callback",
        );
    }
    for body in [Body::from(vec![b' '; 4 * MIB + 1]), chunked(4 * MIB + 1)] {
        let request = Request::post(CALLBACK).body(body).unwrap();
        let answer = send(&app, request).await;
        assert_refused(
            &answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "a 4 MiB + 1 callback",
        );
        assert!(
            answer.body["error"].as_str().unwrap().contains("4194304"),
            "{}",
            answer.body
        );
    }

    // Not JSON: the media type, then the body.
    let text = authed(&app, Method::POST, "/api/execute")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_refused(
        &send(&app, text).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "text/plain",
    );
    let answer = app
        .call(Method::POST, "/api/execute", key, Some("{not json".into()))
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_plan", "bad JSON plan");
    assert_eq!(answer.body["details"][0]["code"], "invalid_json");
    let answer = app
        .call(
            Method::POST,
            "/api/workflows/generate-video",
            key,
            Some("{not json".into()),
        )
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request", "bad JSON workflow");
    assert_eq!(answer.body["success"], false);

    // A body that breaks off is unreadable, not large.
    let broken = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"{\"jobs\":")),
        Err(std::io::Error::other("connection reset")),
    ]);
    let request = authed(&app, Method::POST, "/api/execute")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(broken))
        .unwrap();
    let answer = send(&app, request).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request", "a broken body");
    assert_eq!(answer.body["details"][0]["field"], "body");

    // Paths and queries that cannot be read name `path` or `query`.
    for (path, field) in [
        ("/api/status/%FF", "path"),
        ("/api/executions/%FF/cancel", "path"),
        ("/api/files/%FF?expires=1&signature=s", "path"),
        ("/api/executions?limit=1&limit=2", "query"),
        ("/api/status/x?wait=1&wait=2", "query"),
        ("/api/files/k?expires=1&expires=2&signature=s", "query"),
        ("/api/webhooks/job/x?token=a&token=b", "query"),
    ] {
        let method = if path.contains("/cancel") || path.contains("/webhooks/") {
            Method::POST
        } else {
            Method::GET
        };
        let answer = app.call(method, path, key, Some("{}".into())).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request", path);
        assert_eq!(answer.body["details"][0]["field"], field, "{path}");
    }
    app.stop().await;
}

/// Over a real connection too (hyper, as `reelay serve` runs it): a callback between 2 and
/// 4 MiB is read, not refused by a framework default, and one declared over 4 MiB is refused
/// from its headers alone, in the JSON error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_callback_over_http_is_read_up_to_4_mib() {
    let (app, base) = spawn_served_app_with(|_, _| {}).await;
    let response = reqwest::Client::new()
        .post(format!("{base}{CALLBACK}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(vec![b' '; 3 * MIB])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "callback_refused", "{body}");

    // The server answers before the body is sent, so the body is never sent: a client still
    // writing it would race the server's close of the connection.
    let (status, body) = raw_post_headers(&base, CALLBACK, 4 * MIB + 1).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "body_too_large", "{body}");
    app.stop().await;
}

/// Sends a POST's headers declaring `length` bytes and reads the answer that comes back.
async fn raw_post_headers(base: &str, path: &str, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let key = app.key(ACME);
    for value in [
        format!("Bearer {key}"),
        format!("bearer {key}"),
        format!("BEARER {key}"),
        format!("bEaReR   {key}"),
    ] {
        let request = Request::get("/api/executions")
            .header(header::AUTHORIZATION, &value)
            .body(Body::empty())
            .unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::OK, "{value}: {}", answer.body);
    }
    for value in [
        format!("Basic {key}"),
        format!("Bearer{key}"),
        key.to_string(),
        "Bearer".into(),
    ] {
        let request = Request::get("/api/executions")
            .header(header::AUTHORIZATION, &value)
            .body(Body::empty())
            .unwrap();
        let answer = send(&app, request).await;
        assert_refused(&answer, StatusCode::UNAUTHORIZED, "unauthorized", &value);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_query_values_are_absent_as_documented() {
    let doc = document();
    // The document says so, and lets clients send them.
    let parameters = |path: &str| -> Vec<Value> {
        let operation = &doc["paths"][path]["get"];
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| resolve(&doc, p).clone())
            .collect()
    };
    for (path, name) in [
        ("/api/executions", "status"),
        ("/api/executions", "limit"),
        ("/api/executions", "cursor"),
        ("/api/status/{id}", "wait"),
        ("/api/execute/{id}/status", "wait"),
    ] {
        let parameter = parameters(path)
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} documents no `{name}`"));
        assert_eq!(parameter["allowEmptyValue"], true, "{path} `{name}`");
        let description = parameter["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("empty"),
            "{path} `{name}` does not say what empty does"
        );
    }

    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.submit(ACME, &json!({"jobs": [image_job("a")]})).await);
    }
    let everything = app.get(ACME, "/api/executions").await;
    assert_eq!(everything.status, StatusCode::OK);
    assert_eq!(everything.body["executions"].as_array().unwrap().len(), 3);
    for query in ["cursor=", "status=", "limit=", "status=&limit=&cursor="] {
        let answer = app.get(ACME, &format!("/api/executions?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
        let listed: Vec<_> = answer.body["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["executionId"].clone())
            .collect();
        let all: Vec<_> = everything.body["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["executionId"].clone())
            .collect();
        assert_eq!(listed, all, "{query}");
    }
    for path in ["/api/status/{id}?wait=", "/api/execute/{id}/status?wait="] {
        let answer = app.get(ACME, &path.replace("{id}", &ids[0])).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    // A value that is there must still be right.
    for query in ["limit=0", "status=done", "cursor=%21"] {
        let answer = app.get(ACME, &format!("/api/executions?{query}")).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request", query);
    }
    let answer = app.get(ACME, &format!("/api/status/{}?wait=soon", ids[0])).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request", "wait=soon");
    for id in &ids {
        app.ended(ACME, id).await;
    }
    app.stop().await;
}

/// Every request example in the document, as its operation's path would be called.
fn request_examples(doc: &Value) -> Vec<(String, String, String, Value, StatusCode)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(content) = operation["requestBody"]["content"]["application/json"].as_object() else {
                continue;
            };
            let success = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .find(|s| s.starts_with('2'))
                .map(|s| StatusCode::from_bytes(s.as_bytes()).unwrap())
                .unwrap();
            let named = content.get("examples").and_then(Value::as_object).into_iter().flatten();
            for (name, example) in named {
                out.push((
                    method.clone(),
                    path.clone(),
                    name.clone(),
                    example["value"].clone(),
                    success,
                ));
            }
            if let Some(example) = content.get("example") {
                out.push((method.clone(), path.clone(), "example".into(), example.clone(), success));
            }
        }
    }
    // The request schemas' own examples, as bodies of the operation that takes them.
    for (schema, path) in [
        ("TopLevelPlanRequest", "/api/execute"),
        ("NestedPlanRequest", "/api/execute"),
        ("ExecuteRequest", "/api/execute"),
        ("WorkflowRequest", "/api/workflows/generate-video"),
    ] {
        let examples = doc["components"]["schemas"][schema]["examples"]
            .as_array()
            .into_iter()
            .flatten();
        for (i, example) in examples.enumerate() {
            let name = format!("schema {schema} #{i}");
            out.push(("post".into(), path.into(), name, example.clone(), StatusCode::ACCEPTED));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_request_examples_are_accepted_by_a_default_server() {
    let doc = document();
    let app = spawn_app().await;
    // A variant names an earlier execution of the caller's, which a fresh server has not got:
    // the example's id stands for one, made here.
    let earlier = app.submit(ACME, &json!({"jobs": [scene("earlier")]})).await;
    let examples = request_examples(&doc);
    let mut posted = 0;
    for (method, path, name, mut body, success) in examples {
        assert_eq!(method, "post", "{path}: a request example on {method}");
        for at in [
            "/baseExecutionId",
            "/executionPlan/baseExecutionId",
            "/options/baseExecutionId",
        ] {
            if let Some(id) = body.pointer_mut(at) {
                *id = json!(earlier);
            }
        }
        let answer = app.post(ACME, &path, &body).await;
        assert_eq!(answer.status, success, "{path} example `{name}`: {}", answer.body);
        posted += 1;
        // Nothing needs to run: stop what it started.
        let id = answer.body["executionId"].as_str().or(answer.body["runId"].as_str());
        if let Some(id) = id {
            let cancel = app
                .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
                .await;
            assert!(
                matches!(cancel.status, StatusCode::ACCEPTED | StatusCode::CONFLICT),
                "{path} example `{name}`: cancel answered {}",
                cancel.body
            );
        }
    }
    assert!(posted >= 8, "only {posted} request examples in the document");
    app.stop().await;
}
