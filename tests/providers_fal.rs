//! The fal provider against a fake of fal's queue API, through the whole node: submissions,
//! signed webhooks and polling, failures, rate limits, cancels, expired results, keys; and the
//! official `fal-client` package against the same fake, so the fake is known to speak fal.

#[path = "fakes/fal.rs"]
mod fake_fal;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use fake_fal::{signed_headers, FakeFal};
use reelay_core::plan::Secret;
use reelay_core::ports::{Provider, ProviderStatus};
use reelay_local::LocalSettings;
use reelay_node::ProviderSettings;
use reelay_providers::fal::{FalProvider, FalSettings};
use support::{spawn_served_app_with, unsigned, App, ACME};

const KLING: &str = "fal-ai/kling-video/v2.1/master/text-to-video";
const FLUX: &str = "fal-ai/flux/schnell";

/// The provider's settings against `fake`, with a configured key the fake knows.
fn fal_settings(fake: &FakeFal) -> FalSettings {
    let mut settings = FalSettings::new(Some(Secret::new("cfg-key")));
    settings.queue_base = fake.url.clone();
    settings.jwks_url = fake.jwks_url();
    settings
}

/// A served node with the fal provider. Webhook models are polled only after 30 s unless a
/// test says otherwise, so a completion before that came by webhook.
async fn node(fal: FalSettings, configure: impl FnOnce(&mut LocalSettings)) -> App {
    let (app, _) = spawn_served_app_with(|s, _| {
        s.node.providers = ProviderSettings {
            fal: Some(fal),
            ..ProviderSettings::none()
        };
        s.workers.tick = Duration::from_millis(100);
        s.node.engine.poll_first = Duration::from_millis(300);
        s.node.engine.poll_max = Duration::from_secs(1);
        s.node.engine.webhook_grace = Duration::from_secs(30);
        s.node.engine.retry_base = Duration::from_millis(300);
        configure(s);
    })
    .await;
    app
}

/// A Kling scene (completes by webhook).
fn scene(id: &str, prompt: &str) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "fal", "modelId": KLING,
        "prompt": prompt, "duration": 5, "aspectRatio": "16:9"}})
}

/// A Flux still (completes by polling).
fn still(id: &str, prompt: &str) -> Value {
    json!({"id": id, "type": "generateImage", "params": {"provider": "fal", "modelId": FLUX, "prompt": prompt}})
}

fn plan(jobs: Vec<Value>) -> Value {
    json!({ "jobs": jobs })
}

fn queue_calls(fake: &FakeFal, method: &str, suffix: &str) -> Vec<fake_fal::Call> {
    fake.calls()
        .into_iter()
        .filter(|c| c.method == method && c.path.ends_with(suffix))
        .collect()
}

async fn post_webhook(url: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    let mut post = reqwest::Client::new().post(url).body(body.to_vec());
    for (name, value) in headers {
        post = post.header(name, value);
    }
    post.send().await.unwrap().status().as_u16()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_completes_by_signed_webhook() {
    let fake = FakeFal::start().await;
    let app = node(fal_settings(&fake), |_| {}).await;
    let id = app.submit(ACME, &plan(vec![scene("scene", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let result = &ended["jobs"][0]["result"];
    assert_eq!(result["contentType"], "video/mp4");
    assert_eq!(result["width"], 320, "the copied output was probed: {result}");
    assert!(result["duration"].as_f64().unwrap() > 0.9, "{result}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    // The model's own input, built from the unified params.
    assert_eq!(
        requests[0].input,
        json!({"prompt": "a fox", "duration": "5", "aspect_ratio": "16:9"})
    );
    let webhook = requests[0].webhook.as_deref().unwrap();
    assert!(
        webhook.contains("/api/webhooks/job/") && webhook.contains("token="),
        "{webhook}"
    );
    let submits = queue_calls(&fake, "POST", KLING);
    assert_eq!(submits.len(), 1);
    assert!(submits[0].query.starts_with("fal_webhook=http"), "{:?}", submits[0]);
    let deliveries = fake.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].answer, Some(200));
    assert!(
        queue_calls(&fake, "GET", "/status").is_empty(),
        "completed by the webhook, without polling"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_completes_by_polling_under_its_app() {
    let fake = FakeFal::start().await;
    let app = node(fal_settings(&fake), |_| {}).await;
    let id = app.submit(ACME, &plan(vec![still("still", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["jobs"][0]["result"]["contentType"], "image/png");
    assert_eq!(ended["jobs"][0]["result"]["width"], 64);

    let request = &fake.requests()[0];
    assert_eq!(request.webhook, None, "a polling model asks for no webhook");
    // Status and result live under `{owner}/{app}`, without the model's endpoint path.
    let app_path = format!("/fal-ai/flux/requests/{}", request.id);
    let polls = queue_calls(&fake, "GET", &format!("{app_path}/status"));
    assert!(!polls.is_empty());
    assert_eq!(polls.last().unwrap().status, 200);
    let results = queue_calls(&fake, "GET", &app_path);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_error_fails_the_job_with_its_detail() {
    let fake = FakeFal::start().await;
    let app = node(fal_settings(&fake), |_| {}).await;
    // By webhook (status ERROR with the model's 422 as payload), and by polling (the result's 422).
    let by_webhook = app
        .submit(ACME, &plan(vec![scene("scene", "fail: the prompt breaks the rules")]))
        .await;
    let by_poll = app
        .submit(ACME, &plan(vec![still("still", "fail: no such style")]))
        .await;
    for (id, why) in [(by_webhook, "the prompt breaks the rules"), (by_poll, "no such style")] {
        let ended = app.ended(ACME, &id).await;
        assert_eq!(ended["status"], "failed", "{ended}");
        let error = ended["jobs"][0]["error"].as_str().unwrap();
        assert!(error.contains(&format!("body.prompt: {why}")), "{error}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_stale_webhooks_change_nothing() {
    let fake = FakeFal::start().await;
    // Long enough to forge a few webhooks while the job waits.
    fake.set(|k| k.run_time = Duration::from_secs(3));
    let app = node(fal_settings(&fake), |_| {}).await;
    let id = app.submit(ACME, &plan(vec![scene("scene", "a fox")])).await;
    fake.until("the submit", |f| !f.requests().is_empty()).await;
    let request = fake.requests()[0].clone();
    let url = request.webhook.clone().unwrap();
    let ok_body = |request_id: &str, video: &str| {
        serde_json::to_vec(&json!({"request_id": request_id, "gateway_request_id": request_id,
            "status": "OK", "payload": {"video": {"url": video}}, "error": null, "payload_error": null}))
        .unwrap()
    };
    let evil = ok_body(&request.id, "http://127.0.0.1:9/evil.mp4");
    let now = unix_now();

    let forger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let refused = [
        (
            "signed by another key",
            signed_headers(&forger, &request.id, now, &evil),
            evil.clone(),
        ),
        ("stale", fake.sign(&request.id, now - 400, &evil), evil.clone()),
        (
            "from the future",
            fake.sign(&request.id, now + 400, &evil),
            evil.clone(),
        ),
        (
            "a body other than the signed one",
            fake.sign(&request.id, now, &ok_body(&request.id, "http://x/y.mp4")),
            evil.clone(),
        ),
        (
            "another request's, replayed here",
            fake.sign("0000-other", now, &ok_body("0000-other", "http://x/y.mp4")),
            ok_body("0000-other", "http://x/y.mp4"),
        ),
        ("unsigned", vec![], evil.clone()),
    ];
    for (what, headers, body) in &refused {
        assert_eq!(post_webhook(&url, headers, body).await, 401, "{what}");
    }
    let bad_token = url.replace("token=", "token=x");
    assert_eq!(
        post_webhook(&bad_token, &fake.sign(&request.id, now, &evil), &evil).await,
        401
    );
    let during = app.status(ACME, &id).await;
    assert_eq!(during["jobs"][0]["status"], "awaiting_provider", "{during}");

    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let delivered = fake.deliveries()[0].clone();
    assert_eq!(delivered.answer, Some(200));

    // Duplicates after the end are acknowledged and change nothing: the same delivery, the
    // same body signed again, and a signed ERROR for the same request.
    let error_body = serde_json::to_vec(&json!({"request_id": request.id, "status": "ERROR",
        "payload": {"detail": "late"}, "error": "late", "payload_error": null}))
    .unwrap();
    for (headers, body) in [
        (delivered.headers.clone(), delivered.body.clone()),
        (
            fake.sign(&request.id, unix_now(), &delivered.body),
            delivered.body.clone(),
        ),
        (fake.sign(&request.id, unix_now(), &error_body), error_body),
    ] {
        assert_eq!(post_webhook(&url, &headers, &body).await, 200);
    }
    let after = app.status(ACME, &id).await;
    assert_eq!(unsigned(&after["jobs"]), unsigned(&ended["jobs"]));
    assert_eq!(unsigned(&after["result"]), unsigned(&ended["result"]));
    // One key fetch: a refresh after the forged call is not repeated for the next ones.
    assert_eq!(fake.jwks_fetches(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signing_keys_are_fetched_again_without_hammering() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.webhook_retry_delay = Duration::from_millis(400));
    let mut settings = fal_settings(&fake);
    settings.jwks_min_refresh = Duration::from_secs(2);
    let app = node(settings, |_| {}).await;
    let first = app.submit(ACME, &plan(vec![scene("scene", "one")])).await;
    assert_eq!(app.ended(ACME, &first).await["status"], "completed");
    assert_eq!(fake.jwks_fetches(), 1);

    // Signed with a key we have not fetched: refused (401) until a refresh is allowed again,
    // while fal retries the delivery; then fetched once, and accepted.
    fake.rotate_key();
    let second = app.submit(ACME, &plan(vec![scene("scene", "two")])).await;
    assert_eq!(app.ended(ACME, &second).await["status"], "completed");
    let answers: Vec<Option<u16>> = fake.deliveries()[1..].iter().map(|d| d.answer).collect();
    assert!(answers.len() >= 2 && answers[0] == Some(401), "{answers:?}");
    assert_eq!(answers.last(), Some(&Some(200)), "{answers:?}");
    assert_eq!(fake.jwks_fetches(), 2, "one refresh for all the refused attempts");
    assert!(queue_calls(&fake, "GET", "/status").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_webhook_is_completed_by_polling() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.drop_webhooks = true);
    let app = node(fal_settings(&fake), |s| {
        s.node.engine.webhook_grace = Duration::from_secs(1)
    })
    .await;
    let id = app.submit(ACME, &plan(vec![scene("scene", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert!(fake.deliveries().is_empty());
    assert!(!queue_calls(&fake, "GET", "/status").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fal_answering_503_for_a_while_delays_the_job_only() {
    let fake = FakeFal::start().await;
    fake.set(|k| {
        k.submit_503s = 2;
        k.read_503s = 2;
    });
    let app = node(fal_settings(&fake), |_| {}).await;
    let id = app.submit(ACME, &plan(vec![still("still", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let submits: Vec<u16> = queue_calls(&fake, "POST", FLUX).iter().map(|c| c.status).collect();
    assert_eq!(submits, [503, 503, 200]);
    assert_eq!(fake.requests().len(), 1);
    let reads = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.status == 503)
        .count();
    assert_eq!(reads, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fal_unreachable_for_a_while_then_up() {
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = parked.local_addr().unwrap();
    drop(parked);
    let mut settings = FalSettings::new(Some(Secret::new("cfg-key")));
    settings.queue_base = format!("http://{addr}");
    settings.jwks_url = format!("http://{addr}/.well-known/jwks.json");
    let app = node(settings, |_| {}).await;
    // Its first submits find nobody listening; the retries go on until fal is up.
    let id = app.submit(ACME, &plan(vec![still("still", "a fox")])).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fake = FakeFal::start_on(addr).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(fake.requests().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_as_retry_after_says_without_using_attempts() {
    let fake = FakeFal::start().await;
    fake.set(|k| {
        k.submit_429s = 2;
        k.retry_after_secs = 1;
    });
    // One attempt only: were the 429s counted as failures, the job would fail.
    let app = node(fal_settings(&fake), |s| s.node.engine.max_attempts = 1).await;
    let id = app.submit(ACME, &plan(vec![still("still", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let submits = queue_calls(&fake, "POST", FLUX);
    let codes: Vec<u16> = submits.iter().map(|c| c.status).collect();
    assert_eq!(codes, [429, 429, 200]);
    for pair in submits.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_fal_and_its_late_webhook_is_ignored() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.run_time = Duration::from_secs(30));
    let app = node(fal_settings(&fake), |_| {}).await;
    let id = app.submit(ACME, &plan(vec![scene("scene", "a fox")])).await;
    app.until(ACME, &id, "awaiting fal", |s| {
        s["jobs"][0]["status"] == "awaiting_provider"
    })
    .await;
    let answer = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    fake.until("the cancel", |f| f.requests().first().is_some_and(|r| r.cancelled))
        .await;
    let request = fake.requests()[0].clone();
    let cancels = queue_calls(
        &fake,
        "PUT",
        &format!("/fal-ai/kling-video/requests/{}/cancel", request.id),
    );
    // One cancel lands; a repeat (the engine cancels where it may still run, possibly at the
    // same moment, so the fake may log it first) hears ALREADY_COMPLETED, a 400.
    let codes: Vec<u16> = cancels.iter().map(|c| c.status).collect();
    assert_eq!(codes.iter().filter(|c| **c == 202).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 202 || *c == 400), "{codes:?}");
    // fal then reports the request as ended in error; the job stays cancelled.
    fake.until("the late webhook", |f| !f.deliveries().is_empty()).await;
    assert_eq!(fake.deliveries()[0].answer, Some(200));
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert_eq!(ended["jobs"][0]["status"], "cancelled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_read_after_fal_dropped_it_fails_the_job_clearly() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.result_ttl = Duration::from_millis(50));
    // The first poll comes well after the result is gone.
    let app = node(fal_settings(&fake), |s| {
        s.node.engine.poll_first = Duration::from_millis(1500)
    })
    .await;
    let id = app.submit(ACME, &plan(vec![still("still", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let error = ended["jobs"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("has expired") && error.contains("not read in time"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_key_wins_and_no_key_is_shown() {
    let fake = FakeFal::start().await;
    let app = node(fal_settings(&fake), |_| {}).await;
    let with_key = app
        .submit(
            ACME,
            &json!({"executionPlan": {"jobs": [still("still", "paid by the client")]},
                "options": {"providerApiKeys": {"fal": "client-key"}}}),
        )
        .await;
    let without = app.submit(ACME, &plan(vec![still("still", "paid by us")])).await;
    let mut answers = Vec::new();
    for id in [&with_key, &without] {
        let ended = app.ended(ACME, id).await;
        assert_eq!(ended["status"], "completed", "{ended}");
        answers.push(ended.to_string());
    }
    answers.push(app.get(ACME, "/api/executions").await.body.to_string());
    for answer in &answers {
        assert!(
            !answer.contains("client-key") && !answer.contains("cfg-key"),
            "{answer}"
        );
    }
    for (prompt, key) in [("paid by the client", "Key client-key"), ("paid by us", "Key cfg-key")] {
        let request = fake
            .requests()
            .into_iter()
            .find(|r| r.input["prompt"] == prompt)
            .unwrap();
        assert_eq!(request.auth, key);
        // Every read went with the same key (fal's requests belong to an account), and no key
        // went with the output file.
        let (files, reads): (Vec<_>, Vec<_>) = fake
            .calls()
            .into_iter()
            .filter(|c| c.path.contains(&request.id))
            .partition(|c| c.path.starts_with("/files/"));
        assert!(reads.len() >= 2, "{reads:?}");
        assert!(reads.iter().all(|c| c.auth.as_deref() == Some(key)), "{reads:?}");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].auth, None);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_answer_was_lost_is_adopted_from_its_webhook() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.lost_submit_answers = 1);
    // The retry would come after 5 s; fal's webhook comes first and names the request.
    let app = node(fal_settings(&fake), |s| {
        s.node.engine.retry_base = Duration::from_secs(5)
    })
    .await;
    let started = std::time::Instant::now();
    let id = app.submit(ACME, &plan(vec![scene("scene", "a fox")])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.requests().len(), 1, "submitted once, paid once");
    app.stop().await;
}

/// A webhook as received: headers (lower-case names), body.
type Hook = (Vec<(String, String)>, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_fal_client_drives_the_fake() {
    let fake = FakeFal::start().await;
    fake.set(|k| k.run_time = Duration::from_millis(600));
    // Where the fake sends the script's webhook.
    let received: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                sink.lock().unwrap().push((headers, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let summary = support::run_client("fal_client.py", &[fake.url.as_str(), "client-key", hook.as_str()]).await;
    let request_id = summary["request_id"].as_str().unwrap();

    // What the library sent: the submit with its webhook, status with logs, the result by
    // both URL shapes, a cancel; all with its key.
    let submits = queue_calls(&fake, "POST", KLING);
    assert_eq!(submits.len(), 3);
    assert!(submits[0].query.starts_with("fal_webhook="), "{:?}", submits[0]);
    let base = format!("/fal-ai/kling-video/requests/{request_id}");
    assert!(queue_calls(&fake, "GET", &format!("{base}/status"))
        .iter()
        .any(|c| c.query.contains("logs=true") || c.query.contains("logs=1")));
    assert_eq!(queue_calls(&fake, "GET", &base).len(), 2);
    let cancelled = summary["cancelled"].as_str().unwrap();
    assert_eq!(
        queue_calls(
            &fake,
            "PUT",
            &format!("/fal-ai/kling-video/requests/{cancelled}/cancel")
        )
        .len(),
        1
    );
    assert!(fake
        .calls()
        .iter()
        .filter(|c| !c.path.starts_with("/files/"))
        .all(|c| c.auth.as_deref() == Some("Key client-key")));

    // The fake's webhook for that submit passes reelay's verifier.
    let mut verifier = FalSettings::new(None);
    verifier.jwks_url = fake.jwks_url();
    let verifier = FalProvider::new(verifier).unwrap();
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = received.lock().unwrap().first().cloned().expect("no webhook arrived");
    let callback = verifier.verify_callback(&headers, &body).await.unwrap();
    assert_eq!(callback.provider_job_id, request_id);
    match callback.status {
        ProviderStatus::Succeeded {
            output_url,
            content_type,
        } => {
            assert!(output_url.ends_with("/output.mp4"), "{output_url}");
            assert_eq!(content_type.as_deref(), Some("video/mp4"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_runs_as_generate_in_both_of_the_sdks_forms() {
    let fake = FakeFal::start().await;
    let app = node(fal_settings(&fake), |_| {}).await;
    // Unified (the options have a prompt): fabric drops it, and makes 1080p 720p.
    let unified = json!({"id": "unified", "type": "generate", "params": {"provider": "fal",
        "modelId": "veed/fabric-1.0", "unified": true, "prompt": "say it", "resolution": "1080p",
        "image": "https://example.com/face.png", "audio": "https://example.com/voice.mp3"}});
    // Raw (no prompt): the options verbatim beside the `model` object.
    let raw = json!({"id": "raw", "type": "generate", "params": {"unified": false,
        "model": {"provider": "fal", "modelId": "veed/fabric-1.0/fast", "options": {}},
        "image": "https://example.com/face.png", "audio": "https://example.com/voice.mp3"}});
    let id = app.submit(ACME, &plan(vec![unified, raw])).await;
    let ended = app.ended(ACME, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for model in ["veed/fabric-1.0", "veed/fabric-1.0/fast"] {
        let request = requests.iter().find(|r| r.model_id == model).expect(model);
        assert_eq!(
            request.input,
            json!({"image_url": "https://example.com/face.png", "audio_url": "https://example.com/voice.mp3",
                   "resolution": "720p"})
        );
        // Read back under its app, which leaves out `/fast`.
        assert_eq!(request.app, "veed/fabric-1.0");
    }
    app.stop().await;
}
