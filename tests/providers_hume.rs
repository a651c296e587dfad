//! Hume text-to-speech through the engine, against the fake of tests/fakes/hume.rs: jobs
//! answered with the submit, their audio stored and probed (Octave 2's word timestamps kept
//! with it); key precedence, rate limits, refusals, params checked at submission; and the
//! official `hume` client driving the fake.

mod support;

#[path = "fakes/hume.rs"]
mod fake_hume;
#[path = "fakes/speech.rs"]
mod speech;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use fake_hume::FakeHume;
use reelay_core::plan::Secret;
use reelay_node::ProviderSettings;
use reelay_providers::hume::HumeSettings;
use support::{spawn_app_with, App, ACME};

const SERVER_KEY: &str = "hume-server-0123456789";
const PLAN_KEY: &str = "hume-plan-0123456789";
const JOB_KEY: &str = "hume-job-0123456789";

async fn app_with(fake: &FakeHume, key: Option<&str>) -> App {
    let settings = HumeSettings {
        base_url: fake.base.clone(),
        ..HumeSettings::new(key.map(Secret::new))
    };
    spawn_app_with(move |s| {
        s.node.providers = ProviderSettings {
            hume: Some(settings),
            ..ProviderSettings::none()
        };
        s.node.engine.retry_base = Duration::from_millis(200);
    })
    .await
}

fn tts_job(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "generateAudio", "params": {"provider": "hume", "modelId": "hume/tts", "text": text}})
}

fn job<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap()
}

/// What the fake received with this text, and the key it came with.
fn received(fake: &FakeHume, text: &str) -> (Value, String) {
    let seen = fake
        .seen()
        .into_iter()
        .find(|s| s.json()["utterances"][0]["text"] == text)
        .unwrap();
    (seen.json(), seen.headers["x-hume-api-key"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_is_stored_and_octave_2s_timestamps_kept() {
    let fake = FakeHume::start().await;
    fake.add_key(SERVER_KEY);
    let app = app_with(&fake, Some(SERVER_KEY)).await;
    let mut timed = tts_job("timed", "Hello from Hume");
    for (k, v) in [
        ("voice", json!({"name": "Ava Song", "provider": "HUME_AI"})),
        ("description", json!("warm")),
        ("speed", json!(1.2)),
        ("trailingSilence", json!(0.5)),
        ("format", json!("pcm")),
        ("version", json!("2")),
        ("numGenerations", json!(1)),
    ] {
        timed["params"][k] = v;
    }
    let id = app
        .submit(ACME, &json!({"jobs": [timed, tts_job("plain", "Just audio")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let wav = &job(&status, "timed")["result"];
    assert_eq!(wav["contentType"], "audio/wav", "{wav}");
    let probed = speech::probe(wav).await;
    assert_eq!(probed.codec_types, ["audio"]);
    assert!(probed.duration > 0.5, "{probed:?}");
    assert_eq!(probed.words(), ["Hello", "from", "Hume"]);
    let from = &probed.comment.as_ref().unwrap()["transcript"][1];
    assert_eq!(wav["transcript"][1], *from, "the result carries the words: {wav}");
    assert_eq!((from["start"].as_f64(), from["end"].as_f64()), (Some(0.3), Some(0.6)));

    let mp3 = &job(&status, "plain")["result"];
    assert_eq!(mp3["contentType"], "audio/mpeg", "{mp3}");
    let probed = speech::probe(mp3).await;
    assert_eq!(probed.codec_types, ["audio"]);
    assert!(probed.duration > 0.2, "{probed:?}");
    assert!(probed.words().is_empty(), "Octave 1 gives no timestamps");
    assert!(mp3.get("transcript").is_none(), "{mp3}");

    let (body, key) = received(&fake, "Hello from Hume");
    assert_eq!(key, SERVER_KEY);
    assert_eq!(
        body,
        json!({"utterances": [{"text": "Hello from Hume", "description": "warm",
            "voice": {"name": "Ava Song", "provider": "HUME_AI"}, "speed": 1.2, "trailing_silence": 0.5}],
            "format": {"type": "wav"}, "num_generations": 1, "version": "2",
            "include_timestamp_types": ["word"]})
    );
    assert_eq!(
        received(&fake, "Just audio").0,
        json!({"utterances": [{"text": "Just audio"}], "format": {"type": "mp3"}})
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_key_wins_over_the_plans_over_the_servers_and_none_shows() {
    let fake = FakeHume::start().await;
    for key in [SERVER_KEY, PLAN_KEY, JOB_KEY] {
        fake.add_key(key);
    }
    let app = app_with(&fake, Some(SERVER_KEY)).await;
    let mut own = tts_job("own", "job key");
    own["params"]["apiKey"] = json!(JOB_KEY);
    let plan = json!({"executionPlan": {"jobs": [own, tts_job("plan", "plan key")]},
        "options": {"providerApiKeys": {"hume": PLAN_KEY}}});
    let first = app.submit(ACME, &plan).await;
    let second = app
        .submit(ACME, &json!({"jobs": [tts_job("server", "server key")]}))
        .await;
    for id in [&first, &second] {
        let status = app.ended(ACME, id).await;
        assert_eq!(status["status"], "completed", "{status}");
        let shown = status.to_string();
        for key in [SERVER_KEY, PLAN_KEY, JOB_KEY] {
            assert!(!shown.contains(key), "a key shows in the status: {shown}");
        }
    }
    assert_eq!(received(&fake, "job key").1, JOB_KEY);
    assert_eq!(received(&fake, "plan key").1, PLAN_KEY);
    assert_eq!(received(&fake, "server key").1, SERVER_KEY);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_as_told_then_completes() {
    let fake = FakeHume::start().await;
    fake.add_key(SERVER_KEY);
    fake.set(|k| {
        k.rate_limited = 2;
        k.retry_after = Some(1);
    });
    let app = app_with(&fake, Some(SERVER_KEY)).await;
    let started = Instant::now();
    let id = app.submit(ACME, &json!({"jobs": [tts_job("busy", "Busy line")]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let statuses: Vec<u16> = fake.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 1 was not honoured: {waited:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_fails_the_job_at_once_with_humes_message() {
    let fake = FakeHume::start().await;
    fake.add_key(SERVER_KEY);
    let app = app_with(&fake, Some(SERVER_KEY)).await;
    let mut refused = tts_job("refused", "Let me in");
    refused["params"]["apiKey"] = json!("hume-wrong");
    let id = app.submit(ACME, &json!({"jobs": [refused]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = job(&status, "refused")["error"].as_str().unwrap();
    assert!(error.contains("401 Invalid ApiKey"), "{error}");
    assert_eq!(fake.seen().len(), 1, "a refusal is not retried");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_outside_the_schema_answer_400_naming_each_field() {
    let fake = FakeHume::start().await;
    let app = app_with(&fake, Some(SERVER_KEY)).await;
    let mut bad = tts_job("bad", "Hi");
    for (k, v) in [
        ("speed", json!(4)),
        ("trailingSilence", json!(9)),
        ("version", json!("2")),
        ("voice", json!({"id": "a", "name": "b"})),
    ] {
        bad["params"][k] = v;
    }
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [bad]})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let fields: Vec<&str> = answer.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["params.speed", "params.trailingSilence", "params.voice"]);
    let mut no_text = tts_job("bad", "");
    no_text["params"].as_object_mut().unwrap().remove("text");
    no_text["params"]["format"] = json!("ogg");
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [no_text]})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let fields: Vec<&str> = answer.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["params.format", "params.text"]);
    assert!(fake.seen().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn humes_own_client_drives_the_fake() {
    let fake = FakeHume::start().await;
    fake.add_key(SERVER_KEY);
    let summary = speech::run_client("hume_client.py", &[&fake.base, SERVER_KEY]).await;
    assert_eq!(summary["words"], json!(["Hello", "from", "the", "fake"]), "{summary}");
    assert_eq!(summary["unauthorized"]["fault"]["faultstring"], "Invalid ApiKey");
    assert!(fake.seen().iter().all(|s| s.headers.contains_key("x-hume-api-key")));
}
