//! Google Veo through the engine, against the fake of tests/fakes/google.rs: the Gemini API
//! (API key, file URIs behind a redirect) and Vertex AI (service-account tokens, inline and
//! gs:// outputs), polled to the end; failures, rate limits, outages, cancel, expired outputs,
//! keys; and Google's own client (google-genai) driving the fake.

mod support;

#[path = "fakes/google.rs"]
mod fake_google;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use fake_google::{FakeGoogle, Outcome};
use reelay_core::domain::JobKey;
use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::{Operation, ProviderParams, Secret};
use reelay_core::ports::{Provider, ProviderError, ProviderRequest, ProviderStatus};
use reelay_node::ProviderSettings;
use reelay_providers::google::{GoogleApi, GoogleProvider, GoogleSettings, VertexSettings};
use support::{job, spawn_app_with, App, ACME};

const KEY: &str = "AIzaSy-CONFIGURED-KEY-111";
const GEMINI_MODEL: &str = "veo-3.1-generate-preview";
const VERTEX_MODEL: &str = "veo-3.1-generate-001";
const ACCOUNT: &str = "veo-runner@reelay-test.iam.gserviceaccount.com";

fn gemini(fake_base: &str, key: Option<&str>) -> GoogleSettings {
    let mut settings = GoogleSettings::gemini(key.map(Secret::new));
    settings.api = GoogleApi::Gemini {
        base: format!("{fake_base}/v1beta"),
    };
    // The fake serves input images on loopback, which production refuses.
    settings.media_addresses = loopback_allowed();
    settings
}

fn loopback_allowed() -> AddressPolicy {
    AddressPolicy::with_allowed("127.0.0.0/8").unwrap()
}

fn vertex(fake: &FakeGoogle, account: String, storage_uri: Option<&str>) -> GoogleSettings {
    let mut settings = GoogleSettings::vertex("us-central1", Some(Secret::new(account)));
    settings.api = GoogleApi::Vertex(VertexSettings {
        location: "us-central1".into(),
        base: fake.base.clone(),
        token_url: format!("{}/token", fake.base),
        storage_base: fake.base.clone(),
        storage_uri: storage_uri.map(str::to_string),
    });
    settings.media_addresses = loopback_allowed();
    settings
}

/// A node running Google with these settings, polling quickly.
async fn app_with(settings: GoogleSettings) -> App {
    spawn_app_with(move |s| {
        // The node builds the provider with its one outbound policy: the test's.
        s.node.engine.outbound_addresses = settings.media_addresses.clone();
        s.node.providers = ProviderSettings {
            google: Some(settings),
            ..ProviderSettings::none()
        };
        s.node.engine.poll_first = Duration::from_millis(100);
        s.node.engine.poll_max = Duration::from_millis(300);
        s.node.engine.retry_base = Duration::from_millis(200);
    })
    .await
}

fn veo_job(id: &str, model: &str, prompt: &str) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "google-cloud", "modelId": model,
        "prompt": prompt, "duration": 8, "aspectRatio": "16:9", "resolution": "720p"}})
}

/// The bytes of a completed execution's output.
fn output_bytes(status: &Value) -> Vec<u8> {
    let url = status["result"]["url"].as_str().unwrap();
    std::fs::read(url.strip_prefix("file://").unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_images_at_internal_addresses_are_refused() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    let image = fake.asset("still.png", fake_google::png().await);
    let mut settings = gemini(&fake.base, Some(KEY));
    // Production's policy: a client's URL must not reach our own network.
    settings.media_addresses = AddressPolicy::strict();
    let app = app_with(settings).await;
    for url in [
        image.clone(),
        "http://169.254.169.254/latest/meta-data/x.png".to_string(),
    ] {
        let mut job = veo_job("veo", GEMINI_MODEL, "a fox");
        job["params"]["image"] = json!(url);
        let id = app.submit(ACME, &json!({"jobs": [job]})).await;
        let status = app.ended(ACME, &id).await;
        assert_eq!(status["status"], "failed", "{status}");
        let error = status["error"].as_str().unwrap();
        assert!(error.contains("refused"), "{url}: {error}");
    }
    assert!(
        fake.calls("GET", "/assets/").is_empty(),
        "the guard let a fetch through"
    );
    assert!(fake.calls("POST", ":predictLongRunning").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_job_is_submitted_polled_and_its_file_copied_in() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    let png = fake_google::png().await;
    let image = fake.asset("still.png", png.clone());
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let mut job = veo_job("veo", GEMINI_MODEL, "a fox in the snow");
    job["params"]["image"] = json!(image);
    job["params"]["negativePrompt"] = json!("blurry");
    job["params"]["personGeneration"] = json!("allow_adult");
    let id = app.submit(ACME, &json!({"jobs": [job]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(
        (status["result"]["width"].as_u64(), status["result"]["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(output_bytes(&status), fake_google::video().await.to_vec());

    let creates = fake.calls("POST", ":predictLongRunning");
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].path,
        format!("/v1beta/models/{GEMINI_MODEL}:predictLongRunning")
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    assert_eq!(
        creates[0].json(),
        json!({"instances": [{"prompt": "a fox in the snow", "image": {"bytesBase64Encoded": b64, "mimeType": "image/png"}}],
            "parameters": {"aspectRatio": "16:9", "durationSeconds": 8, "resolution": "720p",
                "negativePrompt": "blurry", "personGeneration": "allow_adult", "sampleCount": 1}})
    );
    let name = fake.operations()[0].name.clone();
    let polls = fake.calls("GET", &format!("/v1beta/{name}"));
    assert!(!polls.is_empty());
    // The key goes to the API, and to the file's download, which redirects to bytes without it.
    let files = fake.calls("GET", "/v1beta/files/");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].status, 302);
    for call in creates.iter().chain(&polls).chain(&files) {
        assert_eq!(call.header("x-goog-api-key"), Some(KEY), "{}", call.path);
    }
    let blobs = fake.calls("GET", "/blobs/");
    assert_eq!((blobs.len(), blobs[0].status), (1, 200));
    assert_eq!(
        blobs[0].header("x-goog-api-key"),
        None,
        "the key must not follow the redirect"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_job_runs_on_a_service_account_token_and_its_inline_video_is_copied_in() {
    let fake = FakeGoogle::start().await;
    let account = fake.service_account(ACCOUNT);
    let app = app_with(vertex(&fake, account, None)).await;
    let mut job = veo_job("veo", VERTEX_MODEL, "a heron");
    job["params"]["seed"] = json!(42);
    job["params"]["generateAudio"] = json!(false);
    let id = app.submit(ACME, &json!({"jobs": [job]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(output_bytes(&status), fake_google::video().await.to_vec());

    let creates = fake.calls("POST", ":predictLongRunning");
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].path,
        format!(
            "/v1/projects/{}/locations/us-central1/publishers/google/models/{VERTEX_MODEL}:predictLongRunning",
            fake_google::PROJECT
        )
    );
    let parameters = &creates[0].json()["parameters"];
    assert_eq!(
        (parameters["seed"].clone(), parameters["generateAudio"].clone()),
        (json!(42), json!(false))
    );
    assert_eq!(
        parameters.get("storageUri"),
        None,
        "no storage URI: the video comes back inline"
    );
    let name = fake.operations()[0].name.clone();
    let fetches = fake.calls("POST", ":fetchPredictOperation");
    assert!(!fetches.is_empty());
    for fetch in &fetches {
        assert_eq!(fetch.json(), json!({"operationName": name}));
    }
    for call in creates.iter().chain(&fetches) {
        assert!(
            call.header("authorization").unwrap().starts_with("Bearer ya29.fake-"),
            "{}",
            call.path
        );
    }
    assert_eq!(fake.tokens_issued(), 1, "one token serves the submit and every poll");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_gcs_output_is_read_through_the_storage_api_with_the_token() {
    let fake = FakeGoogle::start().await;
    let account = fake.service_account(ACCOUNT);
    let app = app_with(vertex(&fake, account, Some("gs://reelay-out/veo/"))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", VERTEX_MODEL, "a heron")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(output_bytes(&status), fake_google::video().await.to_vec());
    let create = &fake.calls("POST", ":predictLongRunning")[0];
    assert_eq!(create.json()["parameters"]["storageUri"], "gs://reelay-out/veo/");
    let op_id = fake.operations()[0].name.rsplit('/').next().unwrap().to_string();
    let reads = fake.calls("GET", "/storage/v1/b/reelay-out/o/");
    assert_eq!(reads.len(), 1);
    assert_eq!(
        reads[0].path,
        format!("/storage/v1/b/reelay-out/o/veo%2F{op_id}%2Fsample_0.mp4?alt=media")
    );
    assert!(reads[0]
        .header("authorization")
        .unwrap()
        .starts_with("Bearer ya29.fake-"));
    assert_eq!(reads[0].status, 200);
    app.stop().await;
}

fn request(model: &str, token: &str, key: Option<&str>) -> ProviderRequest {
    ProviderRequest {
        job: JobKey {
            execution_id: "exec".into(),
            job_id: "veo".into(),
        },
        operation: Operation::Generate,
        params: ProviderParams {
            duration: Some(4.0),
            ..ProviderParams::prompt("google-cloud", model, "a heron")
        },
        token: token.into(),
        api_key: key.map(Secret::new),
        callback_url: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_renewed_before_expiry_and_replaced_when_revoked() {
    let fake = FakeGoogle::start().await;
    // Five minutes and a second: renewed one second after it is issued.
    fake.set(|k| {
        k.token_lifetime = 301;
        k.run_time = Duration::from_secs(30);
    });
    let provider = GoogleProvider::new(vertex(&fake, fake.service_account(ACCOUNT), None)).unwrap();
    let name = provider
        .submit(request(VERTEX_MODEL, "t1", None))
        .await
        .unwrap()
        .provider_job_id;
    assert_eq!(provider.status(&name, None).await.unwrap(), ProviderStatus::Pending);
    assert_eq!(fake.tokens_issued(), 1, "cached while fresh");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(provider.status(&name, None).await.unwrap(), ProviderStatus::Pending);
    assert_eq!(fake.tokens_issued(), 2, "renewed before it expires");

    fake.revoke_tokens();
    assert_eq!(provider.status(&name, None).await.unwrap(), ProviderStatus::Pending);
    assert_eq!(
        fake.tokens_issued(),
        3,
        "a revoked token is replaced and the call made again"
    );
    let statuses: Vec<u16> = fake
        .calls("POST", ":fetchPredictOperation")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [200, 200, 401, 200]);

    // A key whose signature the token endpoint cannot verify is refused for good.
    let mut forged: Value =
        serde_json::from_str(&fake.service_account("other@reelay-test.iam.gserviceaccount.com")).unwrap();
    forged["client_email"] = json!(ACCOUNT);
    let refused = provider
        .submit(request(VERTEX_MODEL, "t2", Some(&forged.to_string())))
        .await;
    assert!(
        matches!(&refused, Err(ProviderError::Fatal(m)) if m.contains("Invalid JWT Signature")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_knows_only_what_this_process_submitted() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    let settings = gemini(&fake.base, Some(KEY));
    let provider = GoogleProvider::new(settings.clone()).unwrap();
    let submitted = provider.submit(request(GEMINI_MODEL, "token-1", None)).await.unwrap();
    let found = provider.find(&request(GEMINI_MODEL, "token-1", None)).await.unwrap();
    assert_eq!(found.map(|f| f.provider_job_id), Some(submitted.provider_job_id));
    assert!(provider
        .find(&request(GEMINI_MODEL, "token-2", None))
        .await
        .unwrap()
        .is_none());
    // After a restart nothing can be found: Google has no lookup by our token.
    let restarted = GoogleProvider::new(settings).unwrap();
    assert!(restarted
        .find(&request(GEMINI_MODEL, "token-1", None))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_filtered_and_failed_operations_fail_their_jobs_with_the_reason() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| {
        k.outcomes = vec![
            (
                "forbidden".into(),
                Outcome::Filtered("The prompt could not be submitted: it may violate our policies.".into()),
            ),
            ("broken".into(), Outcome::Error(13, "Video generation failed.".into())),
        ]
    });
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let plan = json!({"jobs": [
        veo_job("filtered", GEMINI_MODEL, "a forbidden scene"),
        veo_job("failed", GEMINI_MODEL, "a broken scene"),
        veo_job("fine", GEMINI_MODEL, "a fine scene"),
    ]});
    let id = app.submit(ACME, &plan).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(job(&status, "fine")["status"], "completed");
    assert_eq!(job(&status, "filtered")["status"], "failed");
    assert_eq!(
        job(&status, "filtered")["error"],
        "Veo's safety filters blocked the video: The prompt could not be submitted: it may violate our policies."
    );
    assert_eq!(
        job(&status, "failed")["error"],
        "Veo failed: Video generation failed. (code 13)"
    );
    assert_eq!(fake.operations().len(), 3, "failures are not retried");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_as_google_says_without_failing_the_job() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| {
        k.rate_limited = 2;
        k.retry_after = Some(1);
    });
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", GEMINI_MODEL, "a fox")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let creates = fake.calls("POST", ":predictLongRunning");
    let statuses: Vec<u16> = creates.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    for pair in creates.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(1000),
            "Retry-After: 1 was not honoured: {waited:?}"
        );
    }
    assert_eq!(fake.operations().len(), 1);

    // Without Retry-After, Google's RetryInfo says how long.
    fake.set(|k| {
        k.rate_limited = 1;
        k.retry_after = None;
        k.retry_delay = Some(7);
    });
    let provider = GoogleProvider::new(gemini(&fake.base, Some(KEY))).unwrap();
    let limited = provider.submit(request(GEMINI_MODEL, "t", None)).await;
    assert!(
        matches!(limited, Err(ProviderError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7)),
        "{limited:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_down_then_up_and_failing_polls_for_a_while_still_complete_once() {
    let addr = fake_google::free_addr();
    let app = app_with(gemini(&format!("http://{addr}"), Some(KEY))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", GEMINI_MODEL, "a fox")]}))
        .await;
    // Connections are refused: the submit is retried with backoff.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_ne!(app.status(ACME, &id).await["jobs"][0]["status"], "failed");
    let fake = FakeGoogle::start_on(addr).await;
    fake.add_api_key(KEY);
    fake.set(|k| k.run_time = Duration::from_secs(1));
    app.until(ACME, &id, "the operation started", |_| !fake.operations().is_empty())
        .await;
    // Then polls meet 503s for a while.
    fake.set(|k| k.unavailable = 3);
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(fake.operations().len(), 1, "submitted once");
    let name = fake.operations()[0].name.clone();
    let poll_statuses: Vec<u16> = fake
        .calls("GET", &format!("/v1beta/{name}"))
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        poll_statuses.iter().filter(|s| **s == 503).count(),
        3,
        "{poll_statuses:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_execution_cancels_the_operation_at_google() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| k.run_time = Duration::from_secs(60));
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", GEMINI_MODEL, "a long take")]}))
        .await;
    app.until(ACME, &id, "awaiting Google", |s| {
        s["jobs"][0]["status"] == "awaiting_provider"
    })
    .await;
    let cancelled = app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    assert_eq!(app.ended(ACME, &id).await["status"], "cancelled");
    let name = fake.operations()[0].name.clone();
    // The handler whose write cancelled the job asks Google after that write, so the ask may
    // follow the execution's end by a moment.
    for _ in 0..100 {
        if !fake.calls("POST", ":cancel").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancels = fake.calls("POST", ":cancel");
    assert_eq!(cancels.len(), 1, "one cancel per provider job");
    for cancel in &cancels {
        assert_eq!(cancel.path, format!("/v1beta/{name}:cancel"));
        assert_eq!((cancel.status, cancel.header("x-goog-api-key")), (200, Some(KEY)));
    }
    assert!(fake.operations()[0].cancelled);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_output_fails_the_job_with_a_clear_message() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| k.output_ttl = Duration::ZERO);
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", GEMINI_MODEL, "a fox")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(
        status["jobs"][0]["error"],
        "cannot fetch the Veo output: output download: 404 Requested entity was not found."
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_key_wins_and_no_key_is_ever_shown() {
    const REQUEST_KEY: &str = "AIzaSy-REQUEST-KEY-222";
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.add_api_key(REQUEST_KEY);
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let body = json!({
        "executionPlan": {"jobs": [veo_job("veo", GEMINI_MODEL, "a fox")]},
        "options": {"providerApiKeys": {"google-cloud": REQUEST_KEY}},
    });
    let id = app.submit(ACME, &body).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let keyed: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| !s.path.starts_with("/blobs/"))
        .collect();
    assert!(keyed.len() >= 3, "create, polls and the file download");
    for call in &keyed {
        assert_eq!(call.header("x-goog-api-key"), Some(REQUEST_KEY), "{}", call.path);
    }
    let answered = format!("{status}{}", app.status(ACME, &id).await);
    assert!(!answered.contains(REQUEST_KEY) && !answered.contains(KEY), "{answered}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_for_google_jobs_are_refused_and_change_nothing() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| k.run_time = Duration::from_secs(2));
    let app = app_with(gemini(&fake.base, Some(KEY))).await;
    let id = app
        .submit(ACME, &json!({"jobs": [veo_job("veo", GEMINI_MODEL, "a fox")]}))
        .await;
    app.until(ACME, &id, "awaiting Google", |s| {
        s["jobs"][0]["status"] == "awaiting_provider"
    })
    .await;
    let key = JobKey {
        execution_id: id.clone(),
        job_id: "veo".into(),
    };
    let stored = app.node.engine().store().job(&key).await.unwrap().unwrap();
    let call = stored.provider.unwrap();
    let forged = json!({"name": call.provider_job_id, "done": true,
        "response": {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://evil.example/x.mp4"}}]}}});
    for token in [call.token.as_str(), "wrong-token"] {
        let answer = app
            .call(
                axum::http::Method::POST,
                &format!("/api/webhooks/job/{}?token={token}", key.record_id()),
                None,
                Some(forged.to_string()),
            )
            .await;
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    assert_eq!(app.status(ACME, &id).await["jobs"][0]["status"], "awaiting_provider");
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(output_bytes(&status), fake_google::video().await.to_vec());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_outside_the_models_schema_answer_400() {
    let app = app_with(gemini("http://127.0.0.1:9", Some(KEY))).await;
    let mut job = veo_job("veo", GEMINI_MODEL, "a fox");
    job["params"]["duration"] = json!(5);
    job["params"]["seed"] = json!(7);
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [job]})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let fields: Vec<&str> = answer.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"params.durationSeconds") && fields.contains(&"params.seed"),
        "{fields:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_own_client_drives_the_fake() {
    let fake = FakeGoogle::start().await;
    fake.add_api_key(KEY);
    fake.set(|k| {
        k.outcomes = vec![(
            "forbidden".into(),
            Outcome::Filtered("The prompt could not be submitted.".into()),
        )];
        k.run_times = vec![("slow".into(), Duration::from_secs(60))];
    });
    let dir = tempfile::tempdir().unwrap();
    let account = dir.path().join("account.json");
    std::fs::write(&account, fake.service_account(ACCOUNT)).unwrap();
    let png = dir.path().join("still.png");
    std::fs::write(&png, fake_google::png().await).unwrap();
    let (account, png) = (account.to_str().unwrap(), png.to_str().unwrap());
    let summary = support::run_client("google_client.py", &[fake.base.as_str(), KEY, account, png]).await;
    assert_eq!(summary, serde_json::json!({"ok": true}));
    // What the client did, as the fake saw it.
    let creates = fake.calls("POST", ":predictLongRunning");
    let ok: Vec<&str> = creates
        .iter()
        .filter(|c| c.status == 200)
        .map(|c| c.path.as_str())
        .collect();
    let gemini_path = format!("/v1beta/models/{GEMINI_MODEL}:predictLongRunning");
    let vertex_path = format!(
        "/v1/projects/{}/locations/us-central1/publishers/google/models/{VERTEX_MODEL}:predictLongRunning",
        fake_google::PROJECT
    );
    assert_eq!(
        ok,
        [&gemini_path, &gemini_path, &gemini_path, &vertex_path, &vertex_path]
    );
    assert_eq!(creates.iter().filter(|c| c.status == 400).count(), 1, "the 4:3 request");
    let first = creates[0].json();
    assert_eq!(first["instances"][0]["image"]["mimeType"], "image/png");
    assert_eq!(first["parameters"]["personGeneration"], "allow_adult");
    assert!(!fake.calls("GET", "/v1beta/models/").is_empty(), "Gemini polls");
    assert_eq!(fake.calls("GET", "/v1beta/files/")[0].status, 302);
    assert_eq!(fake.calls("GET", "/blobs/")[0].status, 200);
    assert_eq!(fake.calls("POST", ":cancel").len(), 1);
    assert!(!fake.calls("POST", ":fetchPredictOperation").is_empty(), "Vertex polls");
    assert!(
        fake.tokens_issued() >= 1,
        "google-auth's JWT passed the signature check"
    );
    assert_eq!(fake.calls("GET", "/storage/v1/b/reelay-out/o/")[0].status, 200);
}
