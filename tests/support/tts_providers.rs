//! What ElevenLabs and Hume text-to-speech do alike through the engine, against their fakes
//! (tests/fakes/tts.rs): key precedence with no key ever shown, a 429 waited out as told, a
//! wrong key failing its job at once, and params refused at submission naming each field. Each
//! provider's test file describes the provider (`TtsUnderTest`) and runs these as its tests.

#![allow(dead_code)] // Each test binary uses part of it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use reelay_core::plan::Secret;
use reelay_node::ProviderSettings;

use crate::support::{job, spawn_app_with, App, ACME};
use crate::tts::{Api, FakeSpeech};

/// A text-to-speech provider as the tests see it, on top of its fake's API.
pub trait TtsUnderTest: Api {
    /// Its name in a plan (`params.provider`, `options.providerApiKeys`) and in its errors.
    const NAME: &'static str;
    const SERVER_KEY: &'static str;
    const PLAN_KEY: &'static str;
    const JOB_KEY: &'static str;
    /// A key its fake does not know.
    const WRONG_KEY: &'static str;
    /// What a job refused for a wrong key fails with.
    const REFUSED: &'static str;

    /// The node's settings for this provider alone, on the fake at `base`.
    fn providers(base: &str, key: Option<Secret>) -> ProviderSettings;
    /// A job speaking `text`.
    fn tts_job(id: &str, text: &str) -> Value;
    /// Where the text sits in a request the fake received.
    fn text(body: &Value) -> &Value;
}

/// A node with `P` on its fake and `key` as the server's key, retrying quickly.
pub async fn app_with<P: TtsUnderTest>(fake: &FakeSpeech<P>, key: Option<&str>) -> App {
    let providers = P::providers(&fake.base, key.map(Secret::new));
    spawn_app_with(move |s| {
        s.node.providers = providers;
        s.node.engine.retry_base = Duration::from_millis(200);
    })
    .await
}

/// What the fake received with this text, as JSON, and the key it came with.
pub fn received<P: TtsUnderTest>(fake: &FakeSpeech<P>, text: &str) -> (Value, String) {
    let seen = fake.seen().into_iter().find(|s| P::text(&s.json()) == text).unwrap();
    (seen.json(), seen.headers[P::KEY_HEADER].clone())
}

/// The fields of a plan refused with 400 for `job`'s params.
pub async fn rejected_fields(app: &App, job: Value) -> Vec<String> {
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [job]})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    answer.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str().map(String::from))
        .collect()
}

pub async fn the_jobs_key_wins_over_the_plans_over_the_servers_and_none_shows<P: TtsUnderTest>() {
    let fake = FakeSpeech::<P>::start().await;
    for key in [P::SERVER_KEY, P::PLAN_KEY, P::JOB_KEY] {
        fake.add_key(key);
    }
    let app = app_with(&fake, Some(P::SERVER_KEY)).await;
    let mut own = P::tts_job("own", "job key");
    own["params"]["apiKey"] = json!(P::JOB_KEY);
    let plan = json!({"executionPlan": {"jobs": [own, P::tts_job("plan", "plan key")]},
        "options": {"providerApiKeys": {(P::NAME): P::PLAN_KEY}}});
    let first = app.submit(ACME, &plan).await;
    let second = app
        .submit(ACME, &json!({"jobs": [P::tts_job("server", "server key")]}))
        .await;
    for id in [&first, &second] {
        let status = app.ended(ACME, id).await;
        assert_eq!(status["status"], "completed", "{status}");
        let shown = status.to_string();
        for key in [P::SERVER_KEY, P::PLAN_KEY, P::JOB_KEY] {
            assert!(!shown.contains(key), "a key shows in the status: {shown}");
        }
    }
    assert_eq!(received(&fake, "job key").1, P::JOB_KEY);
    assert_eq!(received(&fake, "plan key").1, P::PLAN_KEY);
    assert_eq!(received(&fake, "server key").1, P::SERVER_KEY);
    app.stop().await;
}

/// Two 429s with `Retry-After: 1`, then `failing` 500s: the job waits as told, retries, and
/// completes.
pub async fn a_429_waits_as_told_and_completes<P: TtsUnderTest>(failing: u32) {
    let fake = FakeSpeech::<P>::start().await;
    fake.add_key(P::SERVER_KEY);
    fake.set(|k| {
        k.rate_limited = 2;
        k.retry_after = Some(1);
        k.failing = failing;
    });
    let app = app_with(&fake, Some(P::SERVER_KEY)).await;
    let started = Instant::now();
    let id = app
        .submit(ACME, &json!({"jobs": [P::tts_job("busy", "Busy line")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    let statuses: Vec<u16> = fake.seen().iter().map(|s| s.status).collect();
    let mut expected = vec![429, 429];
    expected.extend((0..failing).map(|_| 500));
    expected.push(200);
    assert_eq!(statuses, expected);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 1 was not honoured: {waited:?}"
    );
    app.stop().await;
}

/// A job with a key the fake refuses fails at once with the provider's message, unretried.
pub async fn a_wrong_key_fails_its_job_at_once<P: TtsUnderTest>(app: &App, fake: &FakeSpeech<P>) {
    let mut refused = P::tts_job("refused", "Let me in");
    refused["params"]["apiKey"] = json!(P::WRONG_KEY);
    let id = app.submit(ACME, &json!({"jobs": [refused]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = job(&status, "refused")["error"].as_str().unwrap();
    assert!(error.contains(P::REFUSED), "{error}");
    assert_eq!(fake.seen().len(), 1, "a refusal is not retried");
}

/// Runs `script`, the provider's official client, against its fake (knowing the server key);
/// its summary and what the fake received, every call with the key header.
pub async fn its_own_client_drives_the_fake<P: TtsUnderTest>(script: &str) -> (Value, Vec<crate::tts::Seen>) {
    let fake = FakeSpeech::<P>::start().await;
    fake.add_key(P::SERVER_KEY);
    let summary = crate::support::run_client(script, &[&fake.base, P::SERVER_KEY]).await;
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.headers.contains_key(P::KEY_HEADER)), "{summary}");
    (summary, seen)
}
