//! The API on a spawned embedded node, with one API key per tenant (zero-to-production's
//! spawn-app harness). Calls go through the router in process.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use reelay_api::{router, ApiState};
use reelay_core::ports::KeyStore;
use reelay_core::tenants::new_key;
use reelay_local::{LocalNode, LocalSettings};

pub const ACME: &str = "acme";
pub const GLOBEX: &str = "globex";

pub struct App {
    pub router: axum::Router,
    pub node: LocalNode,
    keys: HashMap<&'static str, String>,
    pub dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn spawn_app() -> App {
    spawn_app_with(|_| {}).await
}

/// A node on a fresh data folder (quick local provider, loopback webhook receivers
/// allowed), changed by `configure`, with a key for `ACME` and one for `GLOBEX`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut LocalSettings)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = LocalSettings::new(dir.path(), Default::default());
    settings.node.providers.local_delay = Duration::from_millis(10);
    settings.node.engine.outbound_addresses =
        reelay_core::outbound::AddressPolicy::with_allowed("127.0.0.0/8").unwrap();
    configure(&mut settings);
    let mut node = LocalNode::open(settings).unwrap();
    let mut keys = HashMap::new();
    for tenant in [ACME, GLOBEX] {
        let (key, record) = new_key(tenant, "test", 1);
        node.store().create_key(&record).await.unwrap();
        keys.insert(tenant, key);
    }
    node.start();
    let router = router(ApiState {
        engine: node.engine().clone(),
        keys: node.store().clone(),
    });
    App {
        router,
        node,
        keys,
        dir,
    }
}

/// An app whose router also serves on a loopback port (so providers can call back and fetch
/// outputs), with `callback_base` (the public URL) set to it. `configure` gets the settings
/// and the base URL.
pub async fn spawn_served_app_with(configure: impl FnOnce(&mut LocalSettings, &str)) -> (App, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = spawn_app_with(|s| {
        s.node.engine.callback_base = Some(base.clone());
        s.listen_url = Some(base.clone());
        configure(s, &base);
    })
    .await;
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, base)
}

impl App {
    pub fn key(&self, tenant: &str) -> &str {
        &self.keys[tenant]
    }

    /// One call with any bearer value (or none) and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<String>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(bearer) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, tenant: &str, path: &str) -> Answer {
        self.call(Method::GET, path, Some(self.key(tenant)), None).await
    }

    pub async fn post(&self, tenant: &str, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(self.key(tenant)), Some(body.to_string()))
            .await
    }

    /// Submits a plan that must be accepted; its execution id.
    pub async fn submit(&self, tenant: &str, body: &Value) -> String {
        let answer = self.post(tenant, "/api/execute", body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        answer.body["executionId"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, tenant: &str, id: &str) -> Value {
        let answer = self.get(tenant, &format!("/api/execute/{id}/status")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    /// The status once the execution has ended (waiting with `?wait=`).
    pub async fn ended(&self, tenant: &str, id: &str) -> Value {
        for _ in 0..6 {
            let answer = self.get(tenant, &format!("/api/status/{id}?wait=20")).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let status = answer.body["status"].as_str().unwrap_or_default().to_string();
            if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
                return answer.body;
            }
        }
        panic!("execution {id} did not end");
    }

    /// Polls the status until `check` holds (for states between start and end).
    pub async fn until(&self, tenant: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = self.status(tenant, id).await;
            if check(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("execution {id} never reached: {what}; last status {last}");
    }

    pub async fn stop(self) {
        self.node.stop().await;
    }
}

/// The job `id` of an execution's status.
pub fn job<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id} in {status}"))
}

/// A quick image job of the local provider (`fail` makes it fail with that reason).
pub fn image_job(id: &str) -> Value {
    json!({"id": id, "type": "generateImage", "params": {"provider": "local", "modelId": "image", "prompt": "p", "aspectRatio": "1:1", "resolution": "240p"}})
}

pub fn failing_image_job(id: &str, reason: &str) -> Value {
    let mut job = image_job(id);
    job["params"]["fail"] = json!(reason);
    job
}

/// A one-second 240p video scene of the local provider.
pub fn scene(id: &str) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": id, "duration": 1, "aspectRatio": "16:9", "resolution": "240p"}})
}

/// The interpreter of the venv `make deps` builds (the PyPI packages the tests run against
/// our output: standardwebhooks and the providers' official clients).
pub fn python() -> std::path::PathBuf {
    if let Ok(python) = std::env::var("REELAY_TEST_PYTHON") {
        return python.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(venv.exists(), "{} is missing: run `make deps`", venv.display());
    venv
}

/// `value` with the query of every output URL in it cut off: status answers sign their URLs
/// anew at each read, so two reads of an unchanged execution differ only there.
pub fn unsigned(value: &Value) -> Value {
    match value {
        Value::String(url) if url.contains("/api/files/") => Value::from(url.split('?').next().unwrap_or(url)),
        Value::Array(items) => items.iter().map(unsigned).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), unsigned(v))).collect(),
        other => other.clone(),
    }
}

/// Runs `tests/clients/<script>` with the venv's Python and `args`; its JSON summary.
pub async fn run_client(script: &str, args: &[&str]) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = tokio::process::Command::new(python())
        .arg(path)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
