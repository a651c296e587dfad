//! Hume text-to-speech through the engine, against the fake of tests/fakes/hume.rs: jobs
//! answered with the submit, their audio stored and probed (Octave 2's word timestamps kept
//! with it); key precedence, rate limits, refusals, params checked at submission; and the
//! official `hume` client driving the fake. What ElevenLabs does alike runs from
//! tests/support/tts_providers.rs.

mod support;

#[path = "fakes/hume.rs"]
mod fake_hume;
#[path = "fakes/tts.rs"]
mod tts;
#[path = "support/tts_providers.rs"]
mod tts_providers;

use serde_json::{json, Value};

use fake_hume::{FakeHume, Hume};
use reelay_core::plan::Secret;
use reelay_node::ProviderSettings;
use reelay_providers::hume::HumeSettings;
use support::{job, ACME};
use tts_providers::{app_with, received, rejected_fields, TtsUnderTest};

impl TtsUnderTest for Hume {
    const NAME: &'static str = "hume";
    const SERVER_KEY: &'static str = "hume-server-0123456789";
    const PLAN_KEY: &'static str = "hume-plan-0123456789";
    const JOB_KEY: &'static str = "hume-job-0123456789";
    const WRONG_KEY: &'static str = "hume-wrong";
    const REFUSED: &'static str = "401 Invalid ApiKey";

    fn providers(base: &str, key: Option<Secret>) -> ProviderSettings {
        ProviderSettings {
            hume: Some(HumeSettings {
                base_url: base.to_string(),
                ..HumeSettings::new(key)
            }),
            ..ProviderSettings::none()
        }
    }

    fn tts_job(id: &str, text: &str) -> Value {
        json!({"id": id, "type": "generateAudio", "params": {"provider": "hume", "modelId": "hume/tts", "text": text}})
    }

    fn text(body: &Value) -> &Value {
        &body["utterances"][0]["text"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_is_stored_and_octave_2s_timestamps_kept() {
    let fake = FakeHume::start().await;
    fake.add_key(Hume::SERVER_KEY);
    let app = app_with(&fake, Some(Hume::SERVER_KEY)).await;
    let mut timed = Hume::tts_job("timed", "Hello from Hume");
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
        .submit(ACME, &json!({"jobs": [timed, Hume::tts_job("plain", "Just audio")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let wav = &job(&status, "timed")["result"];
    assert_eq!(wav["contentType"], "audio/wav", "{wav}");
    let probed = tts::probe(wav).await;
    assert_eq!(probed.codec_types, ["audio"]);
    assert!(probed.duration > 0.5, "{probed:?}");
    assert_eq!(probed.words(), ["Hello", "from", "Hume"]);
    let from = &probed.comment.as_ref().unwrap()["transcript"][1];
    assert_eq!(wav["transcript"][1], *from, "the result carries the words: {wav}");
    assert_eq!((from["start"].as_f64(), from["end"].as_f64()), (Some(0.3), Some(0.6)));

    let mp3 = &job(&status, "plain")["result"];
    assert_eq!(mp3["contentType"], "audio/mpeg", "{mp3}");
    let probed = tts::probe(mp3).await;
    assert_eq!(probed.codec_types, ["audio"]);
    assert!(probed.duration > 0.2, "{probed:?}");
    assert!(probed.words().is_empty(), "Octave 1 gives no timestamps");
    assert!(mp3.get("transcript").is_none(), "{mp3}");

    let (body, key) = received(&fake, "Hello from Hume");
    assert_eq!(key, Hume::SERVER_KEY);
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
    tts_providers::the_jobs_key_wins_over_the_plans_over_the_servers_and_none_shows::<Hume>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_as_told_then_completes() {
    tts_providers::a_429_waits_as_told_and_completes::<Hume>(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_fails_the_job_at_once_with_humes_message() {
    let fake = FakeHume::start().await;
    fake.add_key(Hume::SERVER_KEY);
    let app = app_with(&fake, Some(Hume::SERVER_KEY)).await;
    tts_providers::a_wrong_key_fails_its_job_at_once(&app, &fake).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_outside_the_schema_answer_400_naming_each_field() {
    let fake = FakeHume::start().await;
    let app = app_with(&fake, Some(Hume::SERVER_KEY)).await;
    let mut bad = Hume::tts_job("bad", "Hi");
    for (k, v) in [
        ("speed", json!(4)),
        ("trailingSilence", json!(9)),
        ("version", json!("2")),
        ("voice", json!({"id": "a", "name": "b"})),
    ] {
        bad["params"][k] = v;
    }
    let fields = rejected_fields(&app, bad).await;
    assert_eq!(fields, ["params.speed", "params.trailingSilence", "params.voice"]);
    let mut no_text = Hume::tts_job("bad", "");
    no_text["params"].as_object_mut().unwrap().remove("text");
    no_text["params"]["format"] = json!("ogg");
    let fields = rejected_fields(&app, no_text).await;
    assert_eq!(fields, ["params.format", "params.text"]);
    assert!(fake.seen().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn humes_own_client_drives_the_fake() {
    let (summary, _) = tts_providers::its_own_client_drives_the_fake::<Hume>("hume_client.py").await;
    assert_eq!(summary["words"], json!(["Hello", "from", "the", "fake"]), "{summary}");
    assert_eq!(summary["unauthorized"]["fault"]["faultstring"], "Invalid ApiKey");
}
