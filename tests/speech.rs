//! Offline speech on the embedded stack: the `local` provider's voice (espeak-ng) says a known
//! sentence, and its transcriber (pocketsphinx) gives most of the words back, in order, with
//! timings that increase.

mod support;

use serde_json::{json, Value};

use support::{job, spawn_app_with, App, ACME};

const SENTENCE: &str = "the weather is nice today and we are going outside";

async fn app() -> App {
    spawn_app_with(|s| s.node.providers.local_python = support::python().display().to_string()).await
}

/// The bytes behind an output URL: a blob-store file, or an http(s) URL the server signs.
async fn fetch(url: &str) -> Vec<u8> {
    match url.strip_prefix("file://") {
        Some(path) => std::fs::read(path).unwrap(),
        None => reqwest::get(url).await.unwrap().bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_voice_is_understood_by_the_local_transcriber() {
    let app = app().await;
    let plan = json!({"jobs": [
        {"id": "voice", "type": "generateAudio", "params": {"provider": "local", "modelId": "audio", "text": SENTENCE}},
        {"id": "words", "type": "transcribe", "params": {"provider": "local", "modelId": "transcribe", "audio": "$voice"}},
    ]});
    let id = app.submit(ACME, &plan).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    // The voice is real speech, not a tone: an audio stream of about the sentence's length.
    let voice = &job(&status, "voice")["result"];
    let seconds = voice["duration"].as_f64().unwrap_or_else(|| panic!("{voice}"));
    assert!((1.5..8.0).contains(&seconds), "{voice}");

    let url = job(&status, "words")["result"]["url"].as_str().unwrap().to_string();
    let transcript: Value = serde_json::from_slice(&fetch(&url).await).unwrap();
    assert_eq!(transcript["language"], "en", "{transcript}");
    let words = transcript["words"].as_array().unwrap();
    let said: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    let expected: Vec<&str> = SENTENCE.split(' ').collect();
    let heard = expected.iter().filter(|w| said.contains(w)).count();
    assert!(heard * 3 >= expected.len() * 2, "heard {said:?} for {SENTENCE:?}");
    let mut last_end = 0.0;
    for word in words {
        let (start, end) = (word["start"].as_f64().unwrap(), word["end"].as_f64().unwrap());
        assert!(
            start >= last_end - 1e-9 && end > start,
            "timings out of order: {words:?}"
        );
        last_end = end;
    }
    assert!(
        last_end <= seconds + 0.1,
        "words past the audio's end: {last_end} > {seconds}"
    );
    assert!(!transcript["segments"].as_array().unwrap().is_empty(), "{transcript}");
    app.stop().await;
}
