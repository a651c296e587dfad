//! The Replicate provider against a fake Replicate that speaks its protocol
//! (`tests/fakes/replicate.rs`), through the engine and the API, and the fake itself against
//! the official `replicate` Python client.

#[path = "fakes/replicate.rs"]
mod fake_replicate;
#[path = "support/pixels.rs"]
mod pixels;
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use fake_replicate::{
    FakeReplicate, Knobs, RetryAfter, GREEN_SCREEN_SUBJECT, MATTING_VERSION, SECRETS, WHISPER_VERSION,
};
use pixels::{near, pixel};
use reelay_core::domain::JobKey;
use reelay_core::plan::{Operation, ProviderParams, Secret};
use reelay_core::ports::{Provider, ProviderError, ProviderRequest};
use reelay_local::LocalSettings;
use reelay_node::ProviderSettings;
use reelay_providers::replicate::{ReplicateProvider, ReplicateSettings};
use support::{job, spawn_served_app_with, unsigned, App, ACME};

const CONFIGURED: &str = "r8_configured";
const CLIENT: &str = "r8_client";

fn provider_settings(base_url: &str) -> ReplicateSettings {
    ReplicateSettings {
        base_url: base_url.to_string(),
        ..ReplicateSettings::new(Some(Secret::new(CONFIGURED)))
    }
}

/// A served node with Replicate on `base_url`, quick engine timings, and the webhook path
/// trusted for 30 s (so that a job finished sooner was finished by its webhook).
async fn node(base_url: &str, configure: impl FnOnce(&mut ReplicateSettings, &mut LocalSettings)) -> App {
    let mut settings = provider_settings(base_url);
    let (app, _) = spawn_served_app_with(|s, _| {
        s.node.engine.poll_first = Duration::from_millis(50);
        s.node.engine.poll_max = Duration::from_millis(200);
        s.node.engine.webhook_grace = Duration::from_secs(30);
        s.node.engine.retry_base = Duration::from_millis(100);
        s.workers.tick = Duration::from_millis(50);
        configure(&mut settings, s);
        s.node.providers = ProviderSettings {
            replicate: Some(settings),
            ..ProviderSettings::none()
        };
    })
    .await;
    app
}

/// No callback URL: every job is polled (from the first poll on, for webhook models too).
fn polling_only(s: &mut LocalSettings) {
    s.node.engine.callback_base = None;
    s.node.engine.webhook_grace = s.node.engine.poll_first;
}

async fn setup(
    knobs: Knobs,
    configure: impl FnOnce(&mut ReplicateSettings, &mut LocalSettings),
) -> (App, FakeReplicate) {
    let fake = FakeReplicate::start(knobs).await;
    let app = node(&fake.base_url, configure).await;
    (app, fake)
}

fn clip(id: &str, prompt: &str) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "replicate", "modelId": "bytedance/seedance-1-pro",
        "prompt": prompt, "duration": 5, "aspectRatio": "16:9", "resolution": "480p"}})
}

fn still(id: &str) -> Value {
    json!({"id": id, "type": "generateImage", "params": {"provider": "replicate", "modelId": "google/nano-banana",
        "prompt": "a red fox, watercolour", "aspectRatio": "1:1"}})
}

fn words(id: &str, audio: &str) -> Value {
    json!({"id": id, "type": "transcribe", "params": {"provider": "replicate", "modelId": "openai/whisper",
        "audio": audio, "language": "en"}})
}

/// The status once the execution ended; on a timeout, what the node and the fake show.
async fn ended(app: &App, fake: &FakeReplicate, id: &str) -> Value {
    match tokio::time::timeout(Duration::from_secs(60), app.ended(ACME, id)).await {
        Ok(status) => status,
        Err(_) => panic!(
            "execution {id} did not end: {}\npredictions: {:#?}\ncalls: {:#?}",
            app.status(ACME, id).await,
            fake.predictions(),
            fake.calls()
        ),
    }
}

/// The bytes of a job's stored output, at the URL the status gives.
async fn stored(status: &Value, id: &str) -> Vec<u8> {
    let url = job(status, id)["result"]["url"].as_str().unwrap().to_string();
    match url.strip_prefix("file://") {
        Some(path) => std::fs::read(path).unwrap(),
        None => reqwest::get(&url).await.unwrap().bytes().await.unwrap().to_vec(),
    }
}

/// The GETs of one prediction the fake answered (polls).
fn reads(fake: &FakeReplicate, id: &str) -> usize {
    let path = format!("/v1/predictions/{id}");
    fake.calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path == path)
        .count()
}

fn assert_one_create_per_job(fake: &FakeReplicate) {
    let inputs: Vec<String> = fake.predictions().iter().map(|p| p.input.to_string()).collect();
    let distinct: HashSet<&String> = inputs.iter().collect();
    assert_eq!(distinct.len(), inputs.len(), "a job was created twice: {inputs:#?}");
    for (token, n) in fake.creates_per_token() {
        assert!(token.is_empty() || n == 1, "token {token} created {n} predictions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_image_and_transcript_complete_by_webhook() {
    let (app, fake) = setup(Knobs::default(), |_, _| {}).await;
    let plan =
        json!({"jobs": [clip("clip", "a fox runs"), still("still"), words("words", "https://example.com/talk.mp3")]});
    let id = app.submit(ACME, &plan).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let predictions = fake.predictions();
    assert_eq!(predictions.len(), 3);
    let by_model = |m: &str| predictions.iter().find(|p| p.model == m).unwrap().clone();
    let (video, image, transcript) = (
        by_model("bytedance/seedance-1-pro"),
        by_model("google/nano-banana"),
        by_model("openai/whisper"),
    );
    // Official models by name, Whisper by version; the registry mapped the unified params.
    assert!(video.official && image.official && !transcript.official);
    assert_eq!(transcript.version, WHISPER_VERSION);
    assert_eq!(
        video.input,
        json!({"prompt": "a fox runs", "duration": 5, "aspect_ratio": "16:9", "resolution": "480p", "camera_fixed": false})
    );
    assert_eq!(
        transcript.input,
        json!({"audio": "https://example.com/talk.mp3", "language": "en", "word_timestamps": true})
    );
    for p in &predictions {
        let webhook = p.webhook.as_deref().expect("every model completes by webhook");
        assert!(
            webhook.contains("/api/webhooks/job/") && p.token().is_some(),
            "{webhook}"
        );
        assert_eq!(p.events.as_deref(), Some(&["completed".to_string()][..]));
        // Finished by its webhook: never polled.
        assert_eq!(reads(&fake, &p.id), 0, "{} was polled", p.model);
    }
    assert!(fake
        .calls()
        .iter()
        .filter(|c| c.method == "POST")
        .all(|c| c.prefer.is_none()));

    // Real media, probed; Whisper's transcript stored in the one shape, its words timed from
    // its segment, and in the result.
    let clip = job(&status, "clip");
    assert_eq!(clip["result"]["width"], 160, "{clip}");
    assert!(clip["result"]["duration"].as_f64().unwrap() > 0.9);
    assert_eq!(job(&status, "still")["result"]["width"], 64);
    let text: Value = serde_json::from_slice(&stored(&status, "words").await).unwrap();
    let words: Vec<&str> = text["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["word"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Hello", "from", "the", "fake."]);
    assert_eq!(
        (text["language"].as_str(), text["text"].as_str()),
        (Some("english"), Some("Hello from the fake."))
    );
    assert_eq!(text["words"][3]["end"], 1.2);
    assert_eq!(job(&status, "words")["result"]["transcript"], text["words"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_named_with_its_version_as_the_sdk_sends_it_runs_at_that_version() {
    let (app, fake) = setup(Knobs::default(), |_, _| {}).await;
    let versioned = format!("openai/whisper:{WHISPER_VERSION}");
    let plan = json!({"jobs": [{"id": "words", "type": "transcribe", "params": {"provider": "replicate",
        "modelId": versioned, "videoUrl": "https://example.com/talk.mp4"}}]});
    let id = app.submit(ACME, &plan).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(job(&status, "words")["status"], "completed", "{status}");
    let create = fake.calls().into_iter().find(|c| c.method == "POST").expect("a create");
    assert_eq!(create.path, "/v1/predictions");
    let [prediction] = &fake.predictions()[..] else {
        panic!("one prediction: {:#?}", fake.predictions())
    };
    assert_eq!(
        (prediction.version.as_str(), prediction.official),
        (WHISPER_VERSION, false)
    );
    assert_eq!(prediction.input["audio"], "https://example.com/talk.mp4");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_callback_url_jobs_complete_by_polling_and_failures_carry_the_models_error() {
    let (app, fake) = setup(Knobs::default(), |_, s| polling_only(s)).await;
    let plan = json!({"jobs": [clip("ok", "a fox"), clip("refused", "a fox FAIL")]});
    let id = app.submit(ACME, &plan).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(job(&status, "ok")["status"], "completed", "{status}");
    assert_eq!(job(&status, "refused")["status"], "failed");
    assert!(
        job(&status, "refused")["error"]
            .as_str()
            .unwrap()
            .contains("The model refused this input"),
        "{status}"
    );
    for p in fake.predictions() {
        assert_eq!(p.webhook, None);
        assert!(reads(&fake, &p.id) >= 1, "{} finished unpolled", p.id);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_wait_answers_in_the_create() {
    // The output takes longer to copy than the first poll is due: the poller must leave the
    // job to the handler that has the answer.
    let knobs = Knobs {
        file_delay: Duration::from_millis(500),
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |r, s| {
        r.prefer_wait = Some(5);
        polling_only(s);
    })
    .await;
    let id = app.submit(ACME, &json!({"jobs": [clip("clip", "quick")]})).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let p = &fake.predictions()[0];
    assert_eq!(reads(&fake, &p.id), 0, "the create's answer was final");
    let create = fake.calls().into_iter().find(|c| c.method == "POST").unwrap();
    assert_eq!(create.prefer.as_deref(), Some("wait=5"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_without_a_model_finishes_the_matting_green_screen_as_asked() {
    let (app, fake) = setup(Knobs::default(), |_, _| {}).await;
    // The SDK's `removeBackground()`: no provider, no model.
    let removal = |id: &str, asked: Value| {
        let mut params = json!({"video": "$clip"});
        params
            .as_object_mut()
            .unwrap()
            .extend(asked.as_object().unwrap().clone());
        json!({"id": id, "type": "removeBackground", "params": params})
    };
    let plan = json!({"jobs": [
        {"id": "clip", "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "a host",
            "duration": 1, "aspectRatio": "16:9", "resolution": "240p"}},
        removal("green", json!({"outputType": "green-screen"})),
        removal("red", json!({"backgroundColor": "#FF0000"})),
        removal("clear", json!({"outputType": "transparent"})),
    ]});
    let id = app.submit(ACME, &plan).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    // Each asked the matting model for its green screen, on our copy of the clip.
    let predictions = fake.predictions();
    assert_eq!(predictions.len(), 3);
    for p in &predictions {
        assert_eq!((p.version.as_str(), p.official), (MATTING_VERSION, false));
        assert_eq!(p.input["output_type"], "green-screen", "{}", p.input);
        assert!(p.input["input_video"].as_str().unwrap().starts_with("http://127.0.0.1"));
    }

    let dir = tempfile::tempdir().unwrap();
    let (x, y, w, h) = GREEN_SCREEN_SUBJECT;
    let (backdrop, subject) = ((6, 6), (x + w / 2, y + h / 2));
    for (job_id, background, content_type, behind) in [
        ("green", "green", "video/mp4", [0, 255, 0, 255]),
        ("red", "#ff0000", "video/mp4", [255, 0, 0, 255]),
        ("clear", "transparent", "video/webm", [0, 0, 0, 0]),
    ] {
        let result = &job(&status, job_id)["result"];
        assert_eq!(
            (result["background"].as_str(), result["contentType"].as_str()),
            (Some(background), Some(content_type)),
            "{result}"
        );
        let extension = content_type.trim_start_matches("video/");
        let file = dir.path().join(format!("{job_id}.{extension}"));
        std::fs::write(&file, stored(&status, job_id).await).unwrap();
        let at = |(x, y)| pixel(&file, x, y);
        if behind[3] == 0 {
            // Keyed out: the key's soft edge may leave a trace of opacity.
            assert!(at(backdrop)[3] < 16, "{job_id}: {:?}", at(backdrop));
            assert_eq!(at(subject)[3], 255, "{job_id}");
        } else {
            assert!(near(at(backdrop), behind), "{job_id}: {:?}", at(backdrop));
            assert!(!near(at(subject), behind), "{job_id}: {:?}", at(subject));
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_screen_only_model_refuses_the_mattes_at_submission() {
    let (app, fake) = setup(Knobs::default(), |_, _| {}).await;
    for matte in ["alpha-mask", "foreground-mask"] {
        let plan = json!({"jobs": [{"id": "cutout", "type": "removeBackground", "params": {"provider": "replicate",
            "modelId": "nateraw/video-background-remover", "video": "https://example.com/host.mp4", "outputType": matte}}]});
        let answer = app.post(ACME, "/api/execute", &plan).await;
        assert_eq!(answer.status, 400, "{matte}: {}", answer.body);
        let detail = &answer.body["details"][0];
        assert_eq!(
            (detail["jobId"].as_str(), detail["field"].as_str()),
            (Some("cutout"), Some("params.outputType")),
            "{}",
            answer.body
        );
    }
    assert!(fake.predictions().is_empty());
    app.stop().await;
}

/// POSTs a webhook to our callback URL; the answer's status code.
async fn post_webhook(url: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_stale_webhooks_are_refused_and_late_duplicates_change_nothing() {
    let knobs = Knobs {
        run_for: Duration::from_secs(120),
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, _| {}).await;
    let id = app
        .submit(ACME, &json!({"jobs": [clip("a", "first"), clip("b", "second")]}))
        .await;
    app.until(ACME, &id, "both at Replicate", |s| {
        s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "awaiting_provider")
    })
    .await;
    while fake.predictions().len() < 2 || fake.predictions().iter().any(|p| p.status == "starting") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pred = |prompt: &str| {
        fake.predictions()
            .into_iter()
            .find(|p| p.input["prompt"] == prompt)
            .unwrap()
    };
    let (a, b) = (pred("first"), pred("second"));
    let url_a = a.webhook.clone().unwrap();
    let before = app.status(ACME, &id).await;

    // Signed with a secret that is not the account's.
    let (headers, body) = fake.signed_webhook(&a.id, Some(SECRETS[3]), None);
    assert_eq!(post_webhook(&url_a, &headers, &body).await, 401, "forged");
    // The account's secret, but more than 300 s old.
    let stale = now_secs() - 301;
    let (headers, body) = fake.signed_webhook(&a.id, None, Some(stale));
    assert_eq!(post_webhook(&url_a, &headers, &body).await, 401, "stale");
    // A genuine message of prediction b replayed at a's callback URL.
    let (headers, body) = fake.signed_webhook(&b.id, None, None);
    assert_eq!(
        post_webhook(&url_a, &headers, &body).await,
        401,
        "replayed at another job"
    );
    // A genuine message whose body was altered to claim success.
    let (headers, body) = fake.signed_webhook(&a.id, None, None);
    let mut forged: Value = serde_json::from_slice(&body).unwrap();
    forged["status"] = json!("succeeded");
    forged["output"] = json!("https://attacker.example/x.mp4");
    assert_eq!(
        post_webhook(&url_a, &headers, forged.to_string().as_bytes()).await,
        401,
        "tampered"
    );
    // No signature at all, and the right signature with the wrong token.
    assert_eq!(post_webhook(&url_a, &headers[..2], &body).await, 401, "unsigned");
    let wrong_token = format!("{}x", url_a);
    assert_eq!(post_webhook(&wrong_token, &headers, &body).await, 401, "bad token");

    let after = app.status(ACME, &id).await;
    assert_eq!(
        unsigned(&before["jobs"]),
        unsigned(&after["jobs"]),
        "a refused webhook changed a job"
    );

    // The real end arrives by webhook.
    fake.finish_now(&a.id);
    fake.finish_now(&b.id);
    let done = ended(&app, &fake, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(reads(&fake, &a.id), 0);

    // The terminal webhook again (Replicate retries and duplicates it): 200, nothing changes.
    let (headers, body) = fake.signed_webhook(&a.id, None, None);
    assert_eq!(post_webhook(&url_a, &headers, &body).await, 200, "duplicate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = app.status(ACME, &id).await;
    assert_eq!(unsigned(&done["jobs"]), unsigned(&again["jobs"]));
    assert_eq!(done["completedAt"], again["completedAt"]);
    app.stop().await;
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_secret_is_fetched_again() {
    let (app, fake) = setup(Knobs::default(), |_, _| {}).await;
    let first = app.submit(ACME, &json!({"jobs": [still("one")]})).await;
    assert_eq!(ended(&app, &fake, &first).await["status"], "completed");
    fake.rotate_secret(CONFIGURED);
    let second = app.submit(ACME, &json!({"jobs": [still("two")]})).await;
    assert_eq!(ended(&app, &fake, &second).await["status"], "completed");
    // Completed by the webhook signed with the new secret: never polled.
    for p in fake.predictions() {
        assert_eq!(reads(&fake, &p.id), 0);
    }
    let fetches = fake
        .calls()
        .iter()
        .filter(|c| c.path == "/v1/webhooks/default/secret")
        .count();
    assert_eq!(fetches, 2, "fetched once, then once more after the rotation");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_down_then_up() {
    // 5xx: the first three calls fail.
    let knobs = Knobs {
        fail_next: 3,
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, _| {}).await;
    let id = app
        .submit(ACME, &json!({"jobs": [clip("clip", "through a 503 burst")]}))
        .await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(fake.calls().iter().filter(|c| c.status == 503).count(), 3);
    assert_eq!(fake.predictions().len(), 1);
    app.stop().await;

    // Connection refused: nobody listens until the fake comes up on that port.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let app = node(&format!("http://{addr}"), |_, _| {}).await;
    let id = app
        .submit(ACME, &json!({"jobs": [clip("clip", "after an outage")]}))
        .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(app.status(ACME, &id).await["status"], "processing");
    let fake = FakeReplicate::start_on(addr, Knobs::default()).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(fake.predictions().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_webhook_is_made_up_for_by_polling() {
    let knobs = Knobs {
        webhooks: false,
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, s| s.node.engine.webhook_grace = Duration::from_millis(300)).await;
    let id = app.submit(ACME, &json!({"jobs": [clip("clip", "lost webhook")]})).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let p = &fake.predictions()[0];
    assert!(p.webhook.is_some() && fake.webhook_attempts().is_empty());
    assert!(reads(&fake, &p.id) >= 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_creates_wait_with_and_without_retry_after_and_never_fail() {
    let knobs = Knobs {
        throttle_next: 2,
        retry_after: RetryAfter::Alternate(1),
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, _| {}).await;
    let id = app
        .submit(ACME, &json!({"jobs": [still("one"), clip("two", "throttled")]}))
        .await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(fake.throttled(), (1, 1), "one 429 with Retry-After, one without");
    assert_eq!(fake.predictions().len(), 2);
    assert_one_create_per_job(&fake);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_execution_cancels_the_prediction() {
    let knobs = Knobs {
        run_for: Duration::from_secs(120),
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, _| {}).await;
    let id = app.submit(ACME, &json!({"jobs": [clip("clip", "never mind")]})).await;
    app.until(ACME, &id, "at Replicate", |s| {
        job(s, "clip")["status"] == "awaiting_provider"
    })
    .await;
    let answer = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let p = fake.predictions()[0].clone();
    for _ in 0..100 {
        if fake.prediction(&p.id).unwrap().status == "canceled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The engine may ask twice (the cancel, then the job's late end); Replicate takes both.
    let cancels = fake.cancels();
    assert!(!cancels.is_empty() && cancels.iter().all(|c| *c == p.id), "{cancels:?}");
    assert_eq!(fake.prediction(&p.id).unwrap().status, "canceled");
    assert_eq!(ended(&app, &fake, &id).await["status"], "cancelled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_output_fails_the_job_with_a_clear_message() {
    let knobs = Knobs {
        file_ttl: Duration::ZERO,
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |_, _| {}).await;
    let id = app.submit(ACME, &json!({"jobs": [clip("clip", "too late")]})).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = job(&status, "clip")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("404") && error.contains("deletes outputs an hour after"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_key_wins_and_no_key_is_shown() {
    let (app, fake) = setup(Knobs::default(), |_, s| polling_only(s)).await;
    let with_key = app
        .submit(
            ACME,
            &json!({"executionPlan": {"jobs": [clip("clip", "paid by the client")]},
                    "options": {"providerApiKeys": {"replicate": CLIENT}}}),
        )
        .await;
    let without = app.submit(ACME, &json!({"jobs": [clip("clip", "paid by us")]})).await;
    for id in [&with_key, &without] {
        let status = ended(&app, &fake, id).await;
        assert_eq!(status["status"], "completed", "{status}");
        let text = status.to_string();
        assert!(!text.contains(CLIENT) && !text.contains(CONFIGURED), "{text}");
    }
    for p in fake.predictions() {
        let expected = if p.input["prompt"] == "paid by the client" {
            CLIENT
        } else {
            CONFIGURED
        };
        assert_eq!(p.account, expected, "created with the wrong key");
        // Its polls used the same key.
        let path = format!("/v1/predictions/{}", p.id);
        for call in fake.calls().iter().filter(|c| c.path == path) {
            assert_eq!(call.authorization.as_deref(), Some(&*format!("Bearer {expected}")));
        }
    }
    app.stop().await;
}

fn request(execution_id: &str, token: &str, prompt: &str, callback: bool) -> ProviderRequest {
    ProviderRequest {
        job: JobKey {
            execution_id: execution_id.into(),
            job_id: "clip".into(),
        },
        operation: Operation::Generate,
        params: ProviderParams::prompt("replicate", "minimax/video-01", prompt),
        token: token.into(),
        api_key: None,
        callback_url: callback.then(|| format!("https://us.example/api/webhooks/job/r?token={token}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_reconciles_a_create_whose_answer_was_lost() {
    let fake = FakeReplicate::start(Knobs {
        page_size: 2,
        webhooks: false,
        ..Knobs::default()
    })
    .await;
    let provider = ReplicateProvider::new(provider_settings(&fake.base_url)).unwrap();
    let execution = uuid_v7();
    // Others' predictions around it, so that finding it takes pages.
    for i in 0..3 {
        provider
            .submit(request(&execution, &format!("other{i}"), &format!("p{i}"), true))
            .await
            .unwrap();
    }
    fake.set(|k| k.lose_create_answers = 1);
    let lost = request(&execution, "lost", "the lost one", true);
    assert!(matches!(
        provider.submit(lost.clone()).await,
        Err(ProviderError::Retryable { .. })
    ));
    for i in 3..5 {
        provider
            .submit(request(&execution, &format!("other{i}"), &format!("p{i}"), true))
            .await
            .unwrap();
    }
    let made = fake
        .predictions()
        .into_iter()
        .find(|p| p.input["prompt"] == "the lost one")
        .unwrap();
    // By the token on its webhook.
    let found = provider.find(&lost).await.unwrap().expect("found by its token");
    assert_eq!(found.provider_job_id, made.id);
    let twin = request(&execution, "twin", "the lost one", true);
    assert!(provider.find(&twin).await.unwrap().is_none(), "another token");
    assert!(provider
        .find(&request(&execution, "never", "never sent", true))
        .await
        .unwrap()
        .is_none());

    // Listings without webhooks: by model and identical input, never another job's.
    fake.set(|k| k.list_shows_webhook = false);
    let fresh = ReplicateProvider::new(provider_settings(&fake.base_url)).unwrap();
    let found = fresh.find(&lost).await.unwrap().expect("found by its input");
    assert_eq!(found.provider_job_id, made.id);
    assert!(fresh.find(&twin).await.unwrap().is_none(), "adopted by the first");
    assert!(fresh
        .find(&request(&execution, "never", "never sent", true))
        .await
        .unwrap()
        .is_none());
    let lists = fake
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && (c.path == "/v1/predictions" || c.path.starts_with("/v1/predictions?")))
        .count();
    assert!(lists >= 3, "paged through the listing: {lists}");

    // Through the engine: the lost answer is reconciled, not created again.
    fake.set(|k| {
        k.lose_create_answers = 1;
        k.list_shows_webhook = true;
    });
    let app = node(&fake.base_url, |_, s| polling_only(s)).await;
    let id = app.submit(ACME, &json!({"jobs": [clip("clip", "answer lost")]})).await;
    let status = ended(&app, &fake, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let made: Vec<_> = fake
        .predictions()
        .into_iter()
        .filter(|p| p.input["prompt"] == "answer lost")
        .collect();
    assert_eq!(made.len(), 1, "created twice");
    assert!(fake.calls().iter().any(|c| c.status == 502));
    app.stop().await;
}

fn uuid_v7() -> String {
    // The engine's execution ids are UUIDv7 (their time bounds `find`'s search).
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    format!("{:08x}-{:04x}-7000-8000-000000000000", ms >> 16, ms & 0xffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_within_600_a_minute_all_complete_each_created_once() {
    // A minute is a second here: 60 creates a second, at the fake and in our budget.
    let budget = (60, Duration::from_secs(1));
    let knobs = Knobs {
        create_limit: budget,
        retry_after: RetryAfter::Always(1),
        starting_for: Duration::from_millis(5),
        run_for: Duration::from_millis(20),
        ..Knobs::default()
    };
    let (app, fake) = setup(knobs, |r, s| {
        r.create_limit = budget;
        s.workers.concurrency = 8;
    })
    .await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for batch in 0..2 {
        let jobs: Vec<Value> = (0..500)
            .map(|i| words(&format!("w{i}"), &format!("https://example.com/{batch}/{i}.mp3")))
            .collect();
        ids.push(app.submit(ACME, &json!({ "jobs": jobs })).await);
    }
    for id in &ids {
        let status = ended(&app, &fake, id).await;
        assert_eq!(status["status"], "completed", "{}", status["error"]);
        assert_eq!(status["completedJobs"], 500);
    }
    let elapsed = started.elapsed();
    let predictions = fake.predictions();
    assert_eq!(predictions.len(), 1000);
    let per_token = fake.creates_per_token();
    assert_eq!(per_token.len(), 1000);
    assert!(per_token.values().all(|n| *n == 1));
    // Our own budget kept the creates under the fake's limit: a 429 only where the two
    // windows' edges differ by a few milliseconds, and then the job waited.
    let (with, without) = fake.throttled();
    eprintln!(
        "1000 jobs in {elapsed:?}; 429s: {with} with Retry-After, {without} without; {} API calls",
        fake.calls().len()
    );
    assert!(with + without < 50, "{with} + {without} creates throttled");
    assert!(
        elapsed >= Duration::from_secs(15),
        "1000 creates at 60/s take over 16 s"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_runs_against_the_fake() {
    let fake = FakeReplicate::start(Knobs {
        create_limit: (6, Duration::from_secs(60)),
        page_size: 2,
        // Long enough for the script to cancel one before it ends.
        run_for: Duration::from_millis(500),
        ..Knobs::default()
    })
    .await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/replicate_client.py");
    let base_url = fake.base_url.clone();
    let out = tokio::process::Command::new(support::python())
        .arg(&script)
        .arg(&base_url)
        .arg(CONFIGURED)
        .env("REPLICATE_POLL_INTERVAL", "0.05")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");

    let calls = fake.calls();
    let saw = |method: &str, prefix: &str| calls.iter().any(|c| c.method == method && c.path.starts_with(prefix));
    assert!(saw("POST", "/v1/models/bytedance/seedance-1-pro/predictions"));
    assert!(saw("POST", "/v1/models/google/nano-banana/predictions"));
    assert!(saw("GET", "/v1/webhooks/default/secret"));
    assert!(saw("GET", "/v1/predictions?cursor="), "paged the listing");
    let version_creates = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/v1/predictions")
        .count();
    assert!(version_creates >= 1);
    assert!(calls
        .iter()
        .any(|c| c.prefer.as_deref() == Some("wait") || c.prefer.as_deref().is_some_and(|p| p.starts_with("wait="))));
    assert_eq!(fake.cancels().len(), 1);
    assert!(calls.iter().any(|c| c.status == 401), "the wrong token was refused");
    assert_eq!(fake.throttled().0 + fake.throttled().1, 1, "one create over the limit");
    assert!(
        fake.webhook_attempts().iter().any(|a| a.answer == Ok(200)),
        "the script's receiver took a webhook"
    );
}
