//! Outputs a client can fetch and inputs a provider can read, on the embedded stack: `reelay
//! serve`'s signed output URLs (ranges, ETags, refusals), outputs of earlier jobs handed to a
//! hosted provider (fal's fake) at a public URL or inline, and media inputs by URL.

#[path = "fakes/fal.rs"]
mod fake_fal;
mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use fake_fal::FakeFal;
use reelay_core::plan::Secret;
use reelay_core::secrets::Sealer;
use reelay_core::signed_urls::UrlSigner;
use reelay_local::LocalSettings;
use reelay_node::ProviderSettings;
use reelay_providers::fal::FalSettings;
use support::{image_job, scene, spawn_app_with, spawn_served_app_with, App, ACME};

const KLING_I2V: &str = "fal-ai/kling-video/v2.1/standard/image-to-video";

/// An app served on a loopback port without a public URL: outputs are served at its listen
/// address. `configure` changes the settings.
async fn listening_app(configure: impl FnOnce(&mut LocalSettings)) -> (App, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = spawn_app_with(|s| {
        s.listen_url = Some(base.clone());
        configure(s);
    })
    .await;
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, base)
}

/// Runs a one-scene plan to its end; the status.
async fn one_scene(app: &App) -> Value {
    let id = app.submit(ACME, &json!({"jobs": [scene("job1")]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_served_at_signed_urls_with_ranges_and_etags() {
    let (app, base) = listening_app(|_| {}).await;
    let status = one_scene(&app).await;
    let url = status["result"]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{base}/api/files/executions/")), "{url}");
    assert_eq!(
        status["jobs"][0]["result"]["url"], url,
        "one URL per output in one answer"
    );
    let http = reqwest::Client::new();

    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let etag = whole.headers()["etag"].to_str().unwrap().to_string();
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, status["result"]["sizeBytes"].as_u64().unwrap());
    assert_eq!(&bytes[4..8], b"ftyp", "an MP4");

    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], bytes.len().to_string().as_str());
    assert_eq!(head.headers()["etag"], etag.as_str());

    let part = http.get(&url).header("Range", "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), bytes[100..200]);
    let tail = http.get(&url).header("Range", "bytes=-10").send().await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap(), bytes[bytes.len() - 10..]);
    let outside = http
        .get(&url)
        .header("Range", format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        outside.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );

    let cached = http.get(&url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Another signature, another blob under this signature, no signature: 403 with the API's error body.
    let (path, query) = url.split_once('?').unwrap();
    let tampered = format!("{path}?{}", query.replace("signature=", "signature=A"));
    let other_blob = format!("{}?{query}", path.replace("job1", "job2"));
    for refused in [tampered, other_blob, path.to_string()] {
        let answer = http.get(&refused).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{refused}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "url_refused", "{body}");
        assert!(body["error"].as_str().unwrap().contains("signature"), "{body}");
    }

    // A URL signed with the server's key for a blob that is not there: 404.
    let key = std::fs::read_to_string(app.dir.path().join("server.key")).unwrap();
    let signer = UrlSigner::new(&Sealer::from_base64(&key).unwrap());
    let far = i64::MAX / 1000 - 1;
    let missing = signer.url(&base, "executions/none/job1/output.mp4", far);
    let answer = http.get(&missing).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_eq!(answer.json::<Value>().await.unwrap()["code"], "not_found");
    // Keys that climb out of the blob folder are no blob, signed or not.
    let escape = signer.url(&base, "../server.key", far);
    assert_ne!(http.get(&escape).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_url_is_refused_and_the_status_signs_a_fresh_one() {
    let (app, _) = listening_app(|s| s.node.output_url_expiry = Duration::from_secs(1)).await;
    let status = one_scene(&app).await;
    let url = status["result"]["url"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = reqwest::get(&url).await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "url_refused");
    assert!(body["error"].as_str().unwrap().contains("expired"), "{body}");

    let id = status["executionId"].as_str().unwrap();
    let fresh = app.status(ACME, id).await["result"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, url);
    assert_eq!(reqwest::get(&fresh).await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

/// fal's provider against `fake`, with a key the fake knows.
fn fal_only(fake: &FakeFal) -> ProviderSettings {
    let mut fal = FalSettings::new(Some(Secret::new("cfg-key")));
    fal.queue_base = fake.url.clone();
    fal.jwks_url = fake.jwks_url();
    ProviderSettings {
        fal: Some(fal),
        ..ProviderSettings::none()
    }
}

fn quick(s: &mut LocalSettings) {
    s.workers.tick = Duration::from_millis(100);
    s.node.engine.poll_first = Duration::from_millis(300);
    s.node.engine.poll_max = Duration::from_secs(1);
}

/// A still of the local provider animated by fal's image-to-video model.
fn image_to_video() -> Value {
    json!({"jobs": [
        image_job("still"),
        {"id": "clip", "type": "generate", "dependsOn": ["still"], "params": {"provider": "fal",
            "modelId": KLING_I2V, "prompt": "the still, moving", "image": "$still"}},
    ]})
}

/// The image URL the fake's image-to-video request carried.
fn image_url_sent(fake: &FakeFal) -> String {
    let requests = fake.requests();
    let request = requests
        .iter()
        .find(|r| r.model_id == KLING_I2V)
        .expect("an image-to-video request");
    request.input["image_url"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_provider_fetches_an_earlier_output_at_the_public_url() {
    let fake = FakeFal::start().await;
    let (app, base) = spawn_served_app_with(|s, _| {
        s.node.providers = fal_only(&fake);
        quick(s);
    })
    .await;
    let id = app.submit(ACME, &image_to_video()).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let sent = image_url_sent(&fake);
    assert!(sent.starts_with(&format!("{base}/api/files/")), "{sent}");
    // As fal would: fetched from outside the process.
    let fetched = reqwest::get(&sent).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(&fetched.bytes().await.unwrap()[1..4], b"PNG");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_small_inputs_go_inline_and_large_ones_fail_the_job() {
    let fake = FakeFal::start().await;
    let app = spawn_app_with(|s| {
        s.node.providers = fal_only(&fake);
        quick(s);
    })
    .await;
    let id = app.submit(ACME, &image_to_video()).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let sent = image_url_sent(&fake);
    assert!(
        sent.starts_with("data:image/png;base64,"),
        "{}",
        &sent[..40.min(sent.len())]
    );
    app.stop().await;

    let fake = FakeFal::start().await;
    let app = spawn_app_with(|s| {
        s.node.providers = fal_only(&fake);
        s.node.engine.inline_input_max_bytes = 64;
        quick(s);
    })
    .await;
    let id = app.submit(ACME, &image_to_video()).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let clip = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "clip")
        .unwrap();
    let error = clip["error"].to_string();
    for named in ["clip", "`image`", "still", "--public-url", "REELAY_PUBLIC_URL"] {
        assert!(error.contains(named), "{named} in {error}");
    }
    assert!(fake.requests().is_empty(), "nothing was submitted");
    app.stop().await;
}

/// Serves the files given at `/{name}` (any query) on a loopback port; the base URL.
async fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let mut router = axum::Router::new();
    for (name, bytes) in files {
        router = router.route(
            &format!("/{name}"),
            axum::routing::get(move || async move { bytes.clone() }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_by_url_are_merged_and_inputs_over_the_cap_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
    reelay_media::render_video("a", 1.0, 320, 240, &a).await.unwrap();
    reelay_media::render_video("b", 1.5, 320, 240, &b).await.unwrap();
    let base = serve_files(vec![
        ("a.mp4", std::fs::read(&a).unwrap()),
        ("b.mp4", std::fs::read(&b).unwrap()),
    ])
    .await;
    let merge = json!({"jobs": [{"id": "merged", "type": "merge", "params": {"items": [
        {"url": format!("{base}/a.mp4?sig=secret"), "type": "video"},
        {"url": format!("{base}/b.mp4"), "type": "video"},
    ]}}]});

    // Loopback receivers are allowed as the tests set (REELAY_WEBHOOK_ALLOW=127.0.0.0/8).
    let app = spawn_app_with(|_| {}).await;
    let id = app.submit(ACME, &merge).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let path = status["result"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap()
        .to_string();
    let probe = reelay_media::probe(std::path::Path::new(&path)).await.unwrap();
    assert!((probe.duration - 2.5).abs() < 0.2, "{probe:?}");
    assert_eq!((probe.width, probe.height), (Some(320), Some(240)));
    assert_eq!(probe.size_bytes, status["result"]["sizeBytes"].as_u64().unwrap());
    app.stop().await;

    let app = spawn_app_with(|s| s.node.media_input_max_bytes = 1000).await;
    let id = app.submit(ACME, &merge).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["jobs"][0]["error"].to_string();
    assert!(error.contains("127.0.0.1") && error.contains("1000 bytes"), "{error}");
    assert!(!error.contains("secret"), "{error}");
    app.stop().await;
}
