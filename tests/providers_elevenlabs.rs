//! ElevenLabs text-to-speech through the engine, against the fake of tests/fakes/elevenlabs.rs:
//! jobs answered with the submit, their audio stored and probed, word timings kept with it;
//! key precedence, rate limits, outages, refusals, params checked at submission; and the
//! official `elevenlabs` client driving the fake. What Hume does alike runs from
//! tests/support/tts_providers.rs.

mod support;

#[path = "fakes/elevenlabs.rs"]
mod fake_elevenlabs;
#[path = "fakes/tts.rs"]
mod tts;
#[path = "support/tts_providers.rs"]
mod tts_providers;

use serde_json::{json, Value};

use fake_elevenlabs::{ElevenLabs, FakeElevenLabs, VOICES};
use reelay_core::plan::Secret;
use reelay_node::ProviderSettings;
use reelay_providers::elevenlabs::ElevenLabsSettings;
use support::{job, ACME};
use tts_providers::{app_with, received, rejected_fields, TtsUnderTest};

impl TtsUnderTest for ElevenLabs {
    const NAME: &'static str = "elevenlabs";
    const SERVER_KEY: &'static str = "sk_server_0123456789";
    const PLAN_KEY: &'static str = "sk_plan_0123456789";
    const JOB_KEY: &'static str = "sk_job_0123456789";
    const WRONG_KEY: &'static str = "sk_wrong";
    const REFUSED: &'static str = "401 Invalid API key";

    fn providers(base: &str, key: Option<Secret>) -> ProviderSettings {
        ProviderSettings {
            elevenlabs: Some(ElevenLabsSettings {
                base_url: base.to_string(),
                ..ElevenLabsSettings::new(key)
            }),
            ..ProviderSettings::none()
        }
    }

    fn tts_job(id: &str, text: &str) -> Value {
        json!({"id": id, "type": "generateAudio", "params": {"provider": "elevenlabs",
            "modelId": "elevenlabs/turbo-v2.5", "text": text, "voiceId": VOICES[0]}})
    }

    fn text(body: &Value) -> &Value {
        &body["text"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_is_stored_with_its_word_timings() {
    let fake = FakeElevenLabs::start().await;
    fake.add_key(ElevenLabs::SERVER_KEY);
    let app = app_with(&fake, Some(ElevenLabs::SERVER_KEY)).await;
    let mut mp3 = ElevenLabs::tts_job("mp3", "Hello there, world.");
    for (k, v) in [
        ("stability", json!(0.4)),
        ("similarityBoost", json!(0.8)),
        ("style", json!(0)),
        ("useSpeakerBoost", json!(true)),
        ("languageCode", json!("en")),
        ("previousText", json!("Before.")),
    ] {
        mp3["params"][k] = v;
    }
    // The docs' form: the SDK's options put ElevenLabs' model id over the registry's.
    let mut pcm = ElevenLabs::tts_job("pcm", "Quiet please");
    pcm["params"]["modelId"] = json!("eleven_multilingual_v2");
    pcm["params"]["outputFormat"] = json!("pcm_16000");
    let id = app.submit(ACME, &json!({"jobs": [mp3, pcm]})).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let mp3 = &job(&status, "mp3")["result"];
    assert_eq!(mp3["contentType"], "audio/mpeg", "{mp3}");
    let probed = tts::probe(mp3).await;
    assert_eq!(probed.codec_types, ["audio"]);
    assert!(probed.duration > 0.5, "{probed:?}");
    assert_eq!(probed.words(), ["Hello", "there,", "world."]);
    let there = &probed.comment.as_ref().unwrap()["transcript"][1];
    let at = |i: usize| i as f64 * fake_elevenlabs::CHAR_SECONDS;
    assert!((there["start"].as_f64().unwrap() - at(6)).abs() < 1e-6, "{there}");
    assert!((there["end"].as_f64().unwrap() - at(12)).abs() < 1e-6, "{there}");
    // The result carries the same words, so captions need no transcription.
    let words: Vec<&str> = mp3["transcript"]
        .as_array()
        .unwrap_or_else(|| panic!("{mp3}"))
        .iter()
        .map(|w| w["word"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Hello", "there,", "world."]);
    assert_eq!(mp3["transcript"][1], *there, "{mp3}");

    let wav = &job(&status, "pcm")["result"];
    assert_eq!(wav["contentType"], "audio/wav", "{wav}");
    let probed = tts::probe(wav).await;
    assert_eq!(
        (probed.codec_types.as_slice(), probed.sample_rate),
        (&["audio".to_string()][..], Some(16000))
    );
    assert!(probed.duration > 0.5, "{probed:?}");
    assert_eq!(probed.words(), ["Quiet", "please"]);

    let (body, key) = received(&fake, "Hello there, world.");
    assert_eq!(key, ElevenLabs::SERVER_KEY);
    assert_eq!(
        body,
        json!({"text": "Hello there, world.", "model_id": "eleven_turbo_v2_5", "language_code": "en",
            "previous_text": "Before.", "voice_settings": {"stability": 0.4, "similarity_boost": 0.8,
            "style": 0, "use_speaker_boost": true}})
    );
    assert_eq!(received(&fake, "Quiet please").0["model_id"], "eleven_multilingual_v2");
    let paths: Vec<String> = fake.seen().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&format!(
        "/v1/text-to-speech/{}/with-timestamps?output_format=mp3_44100_128",
        VOICES[0]
    )));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_key_wins_over_the_plans_over_the_servers_and_none_shows() {
    tts_providers::the_jobs_key_wins_over_the_plans_over_the_servers_and_none_shows::<ElevenLabs>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_as_told_and_a_500_is_retried() {
    tts_providers::a_429_waits_as_told_and_completes::<ElevenLabs>(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_the_job_at_once_with_elevenlabs_message() {
    let fake = FakeElevenLabs::start().await;
    let app = app_with(&fake, None).await;
    tts_providers::a_wrong_key_fails_its_job_at_once(&app, &fake).await;
    // No key anywhere: the job fails before any call.
    let id = app
        .submit(ACME, &json!({"jobs": [ElevenLabs::tts_job("keyless", "Hi")]}))
        .await;
    let status = app.ended(ACME, &id).await;
    let error = job(&status, "keyless")["error"].as_str().unwrap();
    assert!(error.contains("no elevenlabs key"), "{error}");
    assert_eq!(fake.seen().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_outside_the_schema_answer_400_naming_each_field() {
    let fake = FakeElevenLabs::start().await;
    let app = app_with(&fake, Some(ElevenLabs::SERVER_KEY)).await;
    let bad = || {
        let mut job = ElevenLabs::tts_job("bad", &"x".repeat(40_001));
        job["params"]["voiceId"] = json!("../../v1/user");
        job["params"]["stability"] = json!(1.5);
        job
    };
    let mut job = bad();
    job["params"]["similarityBoost"] = json!("high");
    job["params"]["outputFormat"] = json!("flac");
    let fields = rejected_fields(&app, job).await;
    for field in ["similarityBoost", "outputFormat"] {
        assert!(fields.contains(&format!("params.{field}")), "{fields:?}");
    }
    // The schema holds; then the ranges and shapes.
    let fields = rejected_fields(&app, bad()).await;
    assert_eq!(fields, ["params.text", "params.stability", "params.voiceId"]);
    let mut unknown = ElevenLabs::tts_job("unknown", "Hi");
    unknown["params"]["modelId"] = json!("eleven_nope");
    let answer = app.post(ACME, "/api/execute", &json!({"jobs": [unknown]})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.to_string().contains("eleven_multilingual_v2"),
        "{}",
        answer.body
    );
    assert!(fake.seen().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevenlabs_own_client_drives_the_fake() {
    let (summary, seen) = tts_providers::its_own_client_drives_the_fake::<ElevenLabs>("elevenlabs_client.py").await;
    assert_eq!(summary["characters"], 9, "{summary}");
    assert_eq!(summary["unauthorized"]["detail"]["message"], "Invalid API key");
    let first = seen[0].json();
    assert_eq!(first["voice_settings"]["similarity_boost"], 0.75);
    assert_eq!(first["previous_text"], "Before.");
}
