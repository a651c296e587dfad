//! Hume's Octave text-to-speech: `POST {base}/v0/tts` (header `X-Hume-Api-Key`) with one
//! utterance answers `generations[].audio` as base64. Synchronous: a job is done when its
//! submit returns. Octave 2 (`version: "2"`) also gives word timestamps, asked for then and
//! kept with the audio (see `speech.rs`); version 1 gives none.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, Secret};
use reelay_core::ports::ProviderError;

use crate::http::HttpClient;
use crate::registry::{Field, FieldType, Lit, ModelSpec, Problem};
use crate::tts::{self, Audio, Speech, Synthesizer, TtsProvider, Word};

/// The provider's name in plans.
pub const NAME: &str = "hume";

/// The SDK's params (its names).
const FIELDS: &[Field] = &[
    Field::required("text", FieldType::String),
    Field::optional("description", FieldType::String),
    // `{id}` or `{name}`, with an optional `provider`: checked in `check`.
    Field::optional("voice", FieldType::Any),
    Field::optional("speed", FieldType::Number),
    Field::optional("trailingSilence", FieldType::Number),
    Field::optional("format", FieldType::OneOf(&["mp3", "wav", "pcm"])),
    Field::optional("version", FieldType::OneOf(&["1", "2"])),
    Field::optional("numGenerations", FieldType::Integer),
];

pub const MODELS: &[ModelSpec] = &[ModelSpec {
    id: "hume/tts",
    version: None,
    operations: &[Operation::GenerateAudio],
    output: MediaKind::Audio,
    completion: Completion::Polling,
    // Never waited on (the submit answers); a bound all the same.
    deadline: Duration::from_secs(600),
    fields: FIELDS,
    mapping: &[],
    defaults: &[("format", Lit::Str("mp3"))],
    variants: &[],
}];

#[derive(Debug, Clone)]
pub struct HumeSettings {
    /// `https://api.hume.ai`
    pub base_url: String,
    /// The account's key (`HUME_API_KEY`); a job's own key wins over it.
    pub key: Option<Secret>,
}

impl HumeSettings {
    pub fn new(key: Option<Secret>) -> Self {
        HumeSettings {
            base_url: "https://api.hume.ai".into(),
            key,
        }
    }
}

pub struct Hume {
    settings: HumeSettings,
    http: HttpClient,
}

pub type HumeProvider = TtsProvider<Hume>;

impl HumeProvider {
    pub fn from_settings(settings: HumeSettings) -> Result<Self, ProviderError> {
        TtsProvider::new(Hume {
            settings,
            http: HttpClient::new()?,
        })
    }
}

#[derive(Deserialize)]
struct Answer {
    generations: Vec<Generation>,
}

#[derive(Deserialize)]
struct Generation {
    audio: Option<String>,
    #[serde(default)]
    snippets: Vec<Vec<Snippet>>,
}

#[derive(Deserialize)]
struct Snippet {
    #[serde(default)]
    timestamps: Vec<Timestamp>,
}

#[derive(Deserialize)]
struct Timestamp {
    text: String,
    time: Interval,
    #[serde(rename = "type")]
    kind: String,
}

/// Milliseconds from the start of the generation (unconfirmed: Hume's docs do not say whether
/// a snippet's timestamps start at the snippet instead; one utterance is usually one snippet).
#[derive(Deserialize)]
struct Interval {
    begin: u64,
    end: u64,
}

#[async_trait]
impl Synthesizer for Hume {
    fn name(&self) -> &'static str {
        NAME
    }

    fn models(&self) -> &'static [ModelSpec] {
        MODELS
    }

    fn key(&self) -> Option<&Secret> {
        self.settings.key.as_ref()
    }

    fn check(&self, input: &Map<String, Value>) -> Vec<Problem> {
        let mut problems = Vec::new();
        tts::check_length(input, "text", usize::MAX, &mut problems);
        tts::check_range(input, "speed", 0.5, 2.0, &mut problems);
        tts::check_range(input, "trailingSilence", 0.0, 5.0, &mut problems);
        tts::check_range(input, "numGenerations", 1.0, 5.0, &mut problems);
        match input.get("voice") {
            None => {
                if input.get("version").and_then(Value::as_str) == Some("2") {
                    problems.push(("voice".into(), "Octave 2 (`version: \"2\"`) needs a `voice`".into()));
                }
            }
            Some(voice) => {
                let named = |k: &str| voice.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
                let provider = voice.get("provider");
                let provider_ok = provider.is_none_or(|p| matches!(p.as_str(), Some("HUME_AI" | "CUSTOM_VOICE")));
                if !voice.is_object() || named("id") == named("name") || !provider_ok {
                    problems.push((
                        "voice".into(),
                        "`voice` must be `{id}` or `{name}`, with an optional `provider` (HUME_AI or CUSTOM_VOICE)"
                            .into(),
                    ));
                }
            }
        }
        problems
    }

    async fn synthesize(
        &self,
        _model: &ModelSpec,
        input: &Map<String, Value>,
        key: &Secret,
    ) -> Result<Speech, ProviderError> {
        let mut utterance = Map::new();
        for (ours, theirs) in [
            ("text", "text"),
            ("description", "description"),
            ("voice", "voice"),
            ("speed", "speed"),
            ("trailingSilence", "trailing_silence"),
        ] {
            if let Some(v) = input.get(ours) {
                utterance.insert(theirs.into(), v.clone());
            }
        }
        // PCM comes without a header, which could be neither probed nor played: ask for WAV,
        // the same samples with one.
        let wav = matches!(input.get("format").and_then(Value::as_str), Some("wav" | "pcm"));
        let mut body = json!({
            "utterances": [utterance],
            "format": {"type": if wav { "wav" } else { "mp3" }},
        });
        if let Some(n) = input.get("numGenerations") {
            body["num_generations"] = n.clone();
        }
        if let Some(version) = input.get("version").and_then(Value::as_str) {
            body["version"] = json!(version);
            // Only Octave 2 has timestamps (version 1 refuses the field).
            if version == "2" {
                body["include_timestamp_types"] = json!(["word"]);
            }
        }
        let url = format!("{}/v0/tts", self.settings.base_url.trim_end_matches('/'));
        let request = self
            .http
            .inner()
            .post(url)
            .headers(tts::key_header("x-hume-api-key", key, NAME)?)
            .json(&body);
        let what = "hume tts";
        let answer: Answer = serde_json::from_value(tts::call(&self.http, request, what).await?).map_err(|e| {
            ProviderError::Retryable {
                message: format!("{what}: unreadable answer: {e}"),
                retry_after: None,
            }
        })?;
        // The first generation is the job's output (a job has one).
        let generation = answer
            .generations
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Fatal(format!("{what} answered no generation")))?;
        let bytes = tts::decode_audio(generation.audio.as_deref(), what)?;
        let words = generation
            .snippets
            .iter()
            .flatten()
            .flat_map(|s| &s.timestamps)
            .filter(|t| t.kind == "word")
            .map(|t| Word {
                word: t.text.clone(),
                start: t.time.begin as f64 / 1000.0,
                end: t.time.end as f64 / 1000.0,
            })
            .collect();
        Ok(Speech {
            audio: if wav { Audio::Wav(bytes) } else { Audio::Mp3(bytes) },
            words,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::ProviderParams;
    use reelay_core::ports::Provider;

    fn fields(options: Value) -> Vec<String> {
        let provider = HumeProvider::from_settings(HumeSettings::new(None)).unwrap();
        let params = ProviderParams {
            prompt: None,
            options: serde_json::from_value(options).unwrap(),
            ..ProviderParams::prompt(NAME, "hume/tts", "")
        };
        provider.check_params(&params).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn the_sdks_params_are_checked_and_each_problem_named() {
        assert!(fields(
            json!({"text": "Hi", "voice": {"name": "Ava Song", "provider": "HUME_AI"},
            "description": "calm", "speed": 1.2, "trailingSilence": 1, "format": "wav", "version": 2,
            "numGenerations": 1})
        )
        .is_empty());
        assert_eq!(
            fields(json!({"text": "Hi", "speed": 3, "trailingSilence": 6, "numGenerations": 9, "version": "2"})),
            ["speed", "trailingSilence", "numGenerations", "voice"]
        );
        assert_eq!(
            fields(json!({"text": "Hi", "voice": {"id": "a", "name": "b"}})),
            ["voice"]
        );
        assert_eq!(
            fields(json!({"text": "Hi", "voice": {"id": "a", "provider": "ELSEWHERE"}})),
            ["voice"]
        );
        assert_eq!(fields(json!({"format": "flac"})), ["format", "text"]);
    }
}
