//! A fake of Lambda's Invoke API on a free loopback port, for aws-sdk-lambda to call
//! unchanged (`POST /2015-03-31/functions/{name}/invocations`, the payload as the body). Each
//! function is a handler from JSON to JSON; a handler's `Err` answers as Lambda does for an
//! unhandled error or a timeout: 200 with `X-Amz-Function-Error: Unhandled` and the runtime's
//! `{"errorType", "errorMessage"}`. An unknown function answers 404
//! `ResourceNotFoundException`, as Lambda does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::{json, Value};

/// Why a handler failed: the runtime's error type and message.
pub struct Failure {
    pub error_type: String,
    pub message: String,
}

pub type Handler = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, Failure>> + Send + Sync>;

/// One call as the fake saw it: the function, its `X-Amz-Invocation-Type`, the payload.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub invocation_type: Option<String>,
    pub payload: Value,
}

#[derive(Clone)]
struct Fake {
    functions: Arc<HashMap<String, Handler>>,
    calls: Arc<Mutex<Vec<Invocation>>>,
}

pub struct FakeLambda {
    /// `http://127.0.0.1:<port>`, the SDK's endpoint URL.
    pub url: String,
    calls: Arc<Mutex<Vec<Invocation>>>,
}

impl FakeLambda {
    pub async fn start(functions: HashMap<String, Handler>) -> FakeLambda {
        let calls: Arc<Mutex<Vec<Invocation>>> = Arc::default();
        let fake = Fake {
            functions: Arc::new(functions),
            calls: calls.clone(),
        };
        let app = axum::Router::new()
            .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeLambda { url, calls }
    }

    pub fn calls(&self) -> Vec<Invocation> {
        self.calls.lock().unwrap().clone()
    }
}

async fn invoke(State(fake): State<Fake>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
    };
    fake.calls.lock().unwrap().push(Invocation {
        function: name.clone(),
        invocation_type: headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        payload: payload.clone(),
    });
    let Some(handler) = fake.functions.get(&name).cloned() else {
        let message = format!("Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}");
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &message);
    };
    let executed = [("x-amz-executed-version", "$LATEST")];
    match handler(payload).await {
        Ok(answer) => (StatusCode::OK, executed, answer.to_string()).into_response(),
        Err(failure) => {
            let body = json!({"errorType": failure.error_type, "errorMessage": failure.message});
            let headers = [
                ("x-amz-executed-version", "$LATEST"),
                ("x-amz-function-error", "Unhandled"),
            ];
            (StatusCode::OK, headers, body.to_string()).into_response()
        }
    }
}

/// A service error as Lambda's REST API sends it.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"Type": "User", "message": message});
    (
        status,
        [("x-amzn-errortype", kind), ("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
