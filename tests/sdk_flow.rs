//! Pipelines the client SDK builds, driven through the SDK's own HTTP flow
//! (`support/sdk.rs`) against a served node whose hosted providers are the fakes: each ends as
//! the SDK would see it, and its final output is fetched over HTTP and probed.

#[path = "fakes/elevenlabs.rs"]
mod fake_elevenlabs;
#[path = "fakes/fal.rs"]
mod fake_fal;
#[path = "fakes/hume.rs"]
mod fake_hume;
#[path = "fakes/replicate.rs"]
mod fake_replicate;
#[path = "support/sdk.rs"]
mod sdk;
mod support;
#[path = "fakes/tts.rs"]
mod tts;

use std::time::Duration;

use serde_json::{json, Value};

use fake_elevenlabs::FakeElevenLabs;
use fake_fal::FakeFal;
use fake_hume::FakeHume;
use fake_replicate::{FakeReplicate, Knobs, WHISPER_VERSION};
use reelay_core::plan::Secret;
use reelay_node::ProviderSettings;
use reelay_providers::elevenlabs::ElevenLabsSettings;
use reelay_providers::fal::FalSettings;
use reelay_providers::hume::HumeSettings;
use reelay_providers::replicate::ReplicateSettings;
use sdk::Sdk;
use support::{job, spawn_served_app_with, App, ACME};

const ELEVENLABS_KEY: &str = "xi-configured";
const HUME_KEY: &str = "hume-configured";

/// A served node with every hosted provider on its fake, and the SDK pointed at it.
struct World {
    app: App,
    sdk: Sdk,
    _fakes: (FakeReplicate, FakeFal, FakeElevenLabs, FakeHume),
}

async fn world() -> World {
    let replicate = FakeReplicate::start(Knobs::default()).await;
    let fal = FakeFal::start().await;
    let elevenlabs = FakeElevenLabs::start().await;
    elevenlabs.add_key(ELEVENLABS_KEY);
    let hume = FakeHume::start().await;
    hume.add_key(HUME_KEY);
    let providers = ProviderSettings {
        replicate: Some(ReplicateSettings {
            base_url: replicate.base_url.clone(),
            ..ReplicateSettings::new(Some(Secret::new("r8_configured")))
        }),
        fal: Some(FalSettings {
            queue_base: fal.url.clone(),
            jwks_url: fal.jwks_url(),
            ..FalSettings::new(Some(Secret::new("cfg-key")))
        }),
        elevenlabs: Some(ElevenLabsSettings {
            base_url: elevenlabs.base.clone(),
            ..ElevenLabsSettings::new(Some(Secret::new(ELEVENLABS_KEY)))
        }),
        hume: Some(HumeSettings {
            base_url: hume.base.clone(),
            ..HumeSettings::new(Some(Secret::new(HUME_KEY)))
        }),
        ..ProviderSettings::none()
    };
    let (app, base) = spawn_served_app_with(|s, _| {
        s.node.providers = providers;
        s.node.engine.poll_first = Duration::from_millis(100);
        s.node.engine.poll_max = Duration::from_millis(300);
        s.workers.tick = Duration::from_millis(50);
    })
    .await;
    let sdk = Sdk::new(&base, app.key(ACME));
    World {
        app,
        sdk,
        _fakes: (replicate, fal, elevenlabs, hume),
    }
}

/// Fetches an output URL as any HTTP client would, and probes what came.
async fn fetch_and_probe(url: &str) -> reelay_media::Probe {
    assert!(url.starts_with("http://"), "an output URL over HTTP, not {url}");
    let answer = reqwest::get(url).await.unwrap();
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output");
    std::fs::write(&path, answer.bytes().await.unwrap()).unwrap();
    reelay_media::probe(&path).await.unwrap()
}

/// Runs `jobs` the SDK's way to a completed result; the result and the SDK's progress reports.
async fn completes(world: &World, jobs: Value) -> (Value, Vec<sdk::Progress>) {
    let (result, reports) = world
        .sdk
        .execute(jobs, json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last = reports.last().unwrap();
    assert_eq!(
        (last.progress, last.completed_jobs),
        (100.0, last.total_jobs),
        "{reports:?}"
    );
    (result, reports)
}

/// The jobs of `examples/<name>`, as the SDK sends them.
fn example(name: &str) -> Value {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    plan["executionPlan"]["jobs"].clone()
}

fn url(result: &Value) -> &str {
    result["url"].as_str().unwrap_or_else(|| panic!("no url in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_to_video_across_two_providers() {
    let world = world().await;
    // generateVideo({model: kling i2v, image: generateImage(nano-banana)}): the nested image
    // job first, as the SDK pushes it.
    let (result, _) = completes(&world, example("image-to-video.json")).await;
    let probed = fetch_and_probe(url(&result)).await;
    assert!(probed.width.is_some() && probed.duration > 0.0, "{probed:?}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_talking_head_from_generated_speech() {
    let world = world().await;
    let (result, _) = completes(&world, example("talking-head.json")).await;
    let probed = fetch_and_probe(url(&result)).await;
    assert!(probed.width.is_some(), "a video: {probed:?}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_of_the_users_clips_by_url() {
    let world = world().await;
    let clips = tempfile::tempdir().unwrap();
    for (name, seconds) in [("a.mp4", 1.0), ("b.mp4", 1.5)] {
        reelay_media::render_video(name, seconds, 320, 240, &clips.path().join(name))
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let files = axum::Router::new().fallback_service(served_files(clips.path()));
    tokio::spawn(async move { axum::serve(listener, files).await.unwrap() });
    // The example's clips, on the test's own host.
    let jobs = example("url-merge.json")
        .to_string()
        .replace("https://media.example.com/intro.mp4", &format!("{host}/a.mp4"))
        .replace("https://media.example.com/outro.mp4", &format!("{host}/b.mp4"));
    let (result, _) = completes(&world, serde_json::from_str(&jobs).unwrap()).await;
    let probed = fetch_and_probe(url(&result)).await;
    // 1 s and 1.5 s with a 0.5 s crossfade.
    assert!((probed.duration - 2.0).abs() < 0.2, "{probed:?}");
    assert_eq!((probed.width, probed.height), (Some(320), Some(240)));
    world.app.stop().await;
}

/// Serves the files of `dir` by name (the user's own clip host).
fn served_files(dir: &std::path::Path) -> axum::routing::MethodRouter {
    let dir = dir.to_path_buf();
    axum::routing::get(move |uri: axum::http::Uri| {
        let path = dir.join(uri.path().trim_start_matches('/'));
        async move { std::fs::read(path).map_err(|_| axum::http::StatusCode::NOT_FOUND) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lip_sync_and_background_removal_without_a_model() {
    let world = world().await;
    // compose(generateVideo(local), lipSync({audioUrl: audio})) and removeBackground(): no
    // provider, no model in either job.
    let jobs = json!([
        {"id": "job2", "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "a host",
            "duration": 1, "resolution": "240p"}},
        {"id": "job3", "type": "generateAudio", "params": {"provider": "local", "modelId": "audio", "text": "hello"}},
        {"id": "job1", "type": "lipSync", "params": {"audioUrl": "_audioJobDependency:job3"}, "dependsOn": ["job2", "job3"]},
        {"id": "job4", "type": "removeBackground", "params": {"outputType": "green-screen"}, "dependsOn": ["job1"]},
    ]);
    let id = world.sdk.submit(jobs, json!({})).await.unwrap();
    let (result, _) = world.sdk.wait(&id).await.unwrap_or_else(|e| panic!("{e}"));
    fetch_and_probe(url(&result)).await;
    let status = world.app.status(ACME, &id).await;
    let (job1, job4) = (job(&status, "job1"), job(&status, "job4"));
    assert_eq!(
        (job1["provider"].as_str(), job1["modelId"].as_str()),
        (Some("fal"), Some("veed/lipsync"))
    );
    assert_eq!(
        (job4["provider"].as_str(), job4["modelId"].as_str()),
        (Some("replicate"), Some("arielreplicate/robust_video_matting"))
    );
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_whisper_transcription() {
    let world = world().await;
    let jobs = json!([
        {"id": "job2", "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "speech",
            "duration": 1, "resolution": "240p"}},
        {"id": "job1", "type": "transcribe", "params": {"provider": "replicate",
            "modelId": format!("openai/whisper:{WHISPER_VERSION}"), "videoUrl": "_videoJobDependency:job2"},
            "dependsOn": ["job2"]},
    ]);
    let (result, _) = completes(&world, jobs).await;
    let transcript: Value = reqwest::get(url(&result)).await.unwrap().json().await.unwrap();
    // Whisper's segments, served at the output URL in the one transcript shape.
    let words: Vec<&str> = transcript["words"]
        .as_array()
        .unwrap_or_else(|| panic!("{transcript}"))
        .iter()
        .map(|w| w["word"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Hello", "from", "the", "fake."], "{transcript}");
    assert_eq!(transcript["language"], "english", "{transcript}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_on_elevenlabs_and_hume() {
    let world = world().await;
    let id = world.sdk.submit(example("speech.json"), json!({})).await.unwrap();
    world.sdk.wait(&id).await.unwrap_or_else(|e| panic!("{e}"));
    let status = world.app.status(ACME, &id).await;
    let jobs = status["jobs"].as_array().unwrap();
    for job in jobs {
        let probed = fetch_and_probe(url(&job["result"])).await;
        assert!(
            probed.has_audio && probed.width.is_none() && probed.duration > 0.2,
            "{job}: {probed:?}"
        );
    }
    let providers: Vec<&str> = jobs.iter().map(|j| j["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["elevenlabs", "hume"]);
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_the_sdks_wait_and_errors_read_as_text() {
    let world = world().await;
    // A chain long enough to be cancelled on its way.
    let jobs = json!([
        {"id": "job2", "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "one",
            "duration": 2, "resolution": "240p"}},
        {"id": "job1", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["job2"]},
    ]);
    let id = world.sdk.submit(jobs, json!({})).await.unwrap();
    let cancel = world
        .app
        .post(ACME, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert!(cancel.status.is_success(), "{}", cancel.body);
    let error = world.sdk.wait(&id).await.unwrap_err();
    assert!(
        error.starts_with("Pipeline execution failed: execution was cancelled"),
        "{error}"
    );

    let stranger = Sdk::new(world.sdk.api_url.trim_end_matches("/api/execute"), "sy_live_not-a-key");
    let error = stranger.submit(json!([]), json!({})).await.unwrap_err();
    assert!(
        !error.contains("[object Object]") && error.ends_with("(unauthorized)"),
        "{error}"
    );

    let bad = json!([{"id": "job1", "type": "generate", "params": {"provider": "replicate",
        "modelId": "bytedance/seedance-1-pro"}}]);
    let error = world.sdk.submit(bad, json!({})).await.unwrap_err();
    assert!(
        error.contains("job1") && error.contains("prompt") && error.ends_with("(invalid_plan)"),
        "{error}"
    );
    world.app.stop().await;
}
