//! Plays Lambda around the six handlers, in process: the event source mappings (receive up
//! to ten messages, invoke with an SQS event, delete what the batch answer does not name),
//! the schedule (invoke the poller), and API Gateway (the routers, called directly). A
//! loopback receiver takes the client webhooks.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tower::ServiceExt;

use reelay_core::ports::Queue;
use reelay_lambda::poller::Poller;
use reelay_lambda::sqs::BatchHandler;
use reelay_lambda::{api, AwsNode, AwsSettings};

pub const SERVER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The functions' environment for a test: `local` provider, loopback webhooks, one tick per
/// poller invocation; `extra` adds or overrides.
pub fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("REELAY_TABLE", "unused"),
        ("REELAY_JOB_QUEUE_URL", "unused"),
        ("REELAY_WEBHOOK_QUEUE_URL", "unused"),
        ("REELAY_BUCKET", "unused"),
        ("REELAY_SECRETS_ID", "unused"),
        ("REELAY_WEBHOOK_ALLOW", "127.0.0.0/8"),
        ("REELAY_POLLER_RUN_FOR_SECS", "0"),
        ("REELAY_PROVIDERS", "local"),
        ("REELAY_PROVIDER_DELAY_MS", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Settings from `env`, with work under `scratch` and quick provider polls.
pub fn settings(env: &HashMap<String, String>, scratch: &std::path::Path) -> AwsSettings {
    let mut settings = AwsSettings::from_env(|k| env.get(k).cloned()).unwrap();
    settings.scratch_dir = scratch.to_path_buf();
    settings.node.engine.poll_first = Duration::from_millis(200);
    settings.node.engine.poll_max = Duration::from_millis(500);
    settings
}

/// A Lambda fixture of `lib/lambda/fixtures`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/lib/lambda/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The media runner's handler and the queue it reads.
pub struct MediaRunner {
    pub handler: BatchHandler,
    pub queue: Arc<dyn Queue>,
    /// Messages handed to it so far.
    pub delivered: AtomicUsize,
}

/// The functions' handlers on one node (the media runner's when the node has a media queue;
/// else the job runner runs media jobs too, as with one queue).
pub struct Functions {
    pub api: axum::Router,
    pub job_runner: BatchHandler,
    pub media_runner: Option<MediaRunner>,
    pub webhook_sender: BatchHandler,
    pub poller: Poller,
    pub job_queue: Arc<dyn Queue>,
    pub webhook_queue: Arc<dyn Queue>,
}

impl Functions {
    pub fn new(node: &AwsNode) -> Functions {
        Functions {
            api: api::router(node.api_state()),
            job_runner: BatchHandler::new(node.job_runner(), node.job_queue().clone()),
            media_runner: node.media_queue().ok().map(|queue| MediaRunner {
                handler: BatchHandler::new(node.engine().clone(), queue.clone()),
                queue: queue.clone(),
                delivered: AtomicUsize::new(0),
            }),
            webhook_sender: BatchHandler::new(node.dispatcher().clone(), node.webhook_queue().clone()),
            poller: Poller::new(node.engine().clone(), node.dispatcher().clone(), node.poller_settings()),
            job_queue: node.job_queue().clone(),
            webhook_queue: node.webhook_queue().clone(),
        }
    }

    /// How many messages the media runner was handed (none without one).
    pub fn media_deliveries(&self) -> usize {
        self.media_runner
            .as_ref()
            .map_or(0, |m| m.delivered.load(Ordering::Relaxed))
    }

    /// One scheduled invocation of the poller, with the given payload.
    pub async fn tick(&self, payload: Value) {
        let answer = self
            .poller
            .handle(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        assert_eq!(answer["ticks"], 1, "{answer}");
    }

    pub async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = self.api.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Plays every trigger until `hooks` holds a webhook (an execution's, sent when it
    /// ends); how many poller ticks that took. Reads nothing itself, so every AWS request is
    /// the execution's own.
    pub async fn run_until_webhook(&self, hooks: &Hooks) -> usize {
        let empty = fixture("scheduler-empty.json");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ticks = 0;
        while hooks.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no webhook in time");
            pump(self.job_queue.as_ref(), &self.job_runner).await;
            if let Some(media) = &self.media_runner {
                let handed = pump(media.queue.as_ref(), &media.handler).await;
                media.delivered.fetch_add(handed, Ordering::Relaxed);
            }
            self.tick(empty.clone()).await;
            ticks += 1;
            pump(self.webhook_queue.as_ref(), &self.webhook_sender).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ticks
    }

    /// Plays every trigger until execution `id` has ended and sent its webhook; its final
    /// status answer.
    pub async fn run_to_end(&self, id: &str, key: &str, hooks: &Hooks) -> Value {
        self.run_until_webhook(hooks).await;
        let (_, status) = self.call(Method::GET, &format!("/api/status/{id}"), key, None).await;
        status
    }
}

/// An event source mapping's turn: up to ten messages as one SQS event, then deletes those
/// the batch answer does not name. Returns how many were handed over.
pub async fn pump(queue: &dyn Queue, handler: &BatchHandler) -> usize {
    let deliveries = queue
        .receive(10, Duration::from_secs(60), Duration::from_millis(50))
        .await
        .unwrap();
    if deliveries.is_empty() {
        return 0;
    }
    let records: Vec<Value> = deliveries
        .iter()
        .enumerate()
        .map(|(n, d)| {
            json!({
                "messageId": format!("m{n}"),
                "receiptHandle": d.receipt,
                "body": serde_json::to_string(&d.message).unwrap(),
                "attributes": { "ApproximateReceiveCount": d.receive_count.to_string() },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let answer = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let failed: HashSet<String> = answer
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    for (n, d) in deliveries.iter().enumerate() {
        if !failed.contains(&format!("m{n}")) {
            queue.ack(&d.receipt).await.unwrap();
        }
    }
    deliveries.len()
}

pub type Hooks = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A client-webhook receiver on loopback: its URL, and the headers and bodies it got.
pub async fn receiver() -> (String, Hooks) {
    let got: Hooks = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
            store.lock().unwrap().push((headers, body));
            StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The two-scene example, its client webhook sent to `hook_url` signed with `secret`.
pub fn two_scenes(hook_url: &str, secret: &str) -> Value {
    let mut plan: Value = serde_json::from_str(include_str!("../../examples/two-scenes.json")).unwrap();
    plan["webhook"] = json!({ "url": hook_url, "secret": secret });
    plan
}
