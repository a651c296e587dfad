//! ElevenLabs text-to-speech: `POST {base}/v1/text-to-speech/{voice_id}/with-timestamps`
//! (header `xi-api-key`) answers the audio as base64 with each character's start and end,
//! which become the word timings kept with the audio (see `speech.rs`). Synchronous: a job is
//! done when its submit returns.
//!
//! The SDK sends `modelId` over the registry's id when a client names an ElevenLabs model, so
//! each ElevenLabs model is its own registry entry (`eleven_multilingual_v2`, ...) beside the
//! SDK's `elevenlabs/turbo-v2.5`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, Operation, Secret};
use reelay_core::ports::ProviderError;

use crate::http::HttpClient;
use crate::registry::{Field, FieldType, Lit, Mapping, ModelSpec, Problem, Unified};
use crate::tts::{self, Audio, Speech, Synthesizer, TtsProvider};

/// The provider's name in plans.
pub const NAME: &str = "elevenlabs";

/// The longest text ElevenLabs speaks in one request.
const MAX_TEXT: usize = 40_000;

/// The formats the SDK offers (and a few more MP3 rates); PCM is stored as WAV.
const OUTPUT_FORMATS: &[&str] = &[
    "mp3_22050_32",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
];
const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// The SDK's params (its names); `seed` is a unified param.
const FIELDS: &[Field] = &[
    Field::required("text", FieldType::String),
    Field::required("voiceId", FieldType::String),
    Field::optional("stability", FieldType::Number),
    Field::optional("similarityBoost", FieldType::Number),
    Field::optional("style", FieldType::Number),
    Field::optional("useSpeakerBoost", FieldType::Boolean),
    Field::optional("outputFormat", FieldType::OneOf(OUTPUT_FORMATS)),
    Field::optional("languageCode", FieldType::String),
    Field::optional("previousText", FieldType::String),
    Field::optional("nextText", FieldType::String),
    Field::optional("seed", FieldType::Integer),
];

const MAPPING: &[Mapping] = &[Mapping::field(Unified::Seed, "seed")];

/// A text-to-speech model; `model_id` is ElevenLabs' id when the registry's differs.
const fn tts(id: &'static str, model_id: Option<&'static str>) -> ModelSpec {
    ModelSpec {
        id,
        version: model_id,
        operations: &[Operation::GenerateAudio],
        output: MediaKind::Audio,
        completion: Completion::Polling,
        // Never waited on (the submit answers); a bound all the same.
        deadline: Duration::from_secs(600),
        fields: FIELDS,
        mapping: MAPPING,
        defaults: &[("outputFormat", Lit::Str(DEFAULT_FORMAT))],
        variants: &[],
    }
}

pub const MODELS: &[ModelSpec] = &[
    tts("elevenlabs/turbo-v2.5", Some("eleven_turbo_v2_5")),
    tts("eleven_turbo_v2_5", None),
    tts("eleven_multilingual_v2", None),
    tts("eleven_flash_v2_5", None),
    tts("eleven_v3", None),
    tts("eleven_turbo_v2", None),
    tts("eleven_flash_v2", None),
];

#[derive(Debug, Clone)]
pub struct ElevenLabsSettings {
    /// `https://api.elevenlabs.io`
    pub base_url: String,
    /// The account's key (`ELEVENLABS_API_KEY`); a job's own key wins over it.
    pub key: Option<Secret>,
}

impl ElevenLabsSettings {
    pub fn new(key: Option<Secret>) -> Self {
        ElevenLabsSettings {
            base_url: "https://api.elevenlabs.io".into(),
            key,
        }
    }
}

pub struct ElevenLabs {
    settings: ElevenLabsSettings,
    http: HttpClient,
}

pub type ElevenLabsProvider = TtsProvider<ElevenLabs>;

impl ElevenLabsProvider {
    pub fn from_settings(settings: ElevenLabsSettings) -> Result<Self, ProviderError> {
        TtsProvider::new(ElevenLabs {
            settings,
            http: HttpClient::new()?,
        })
    }
}

/// The answer of `/with-timestamps`.
#[derive(Deserialize)]
struct Answer {
    audio_base64: Option<String>,
    /// Of the text as sent (`normalized_alignment` is of the text as spoken, numbers spelt
    /// out: not the words a caption shows).
    alignment: Option<Alignment>,
}

#[derive(Deserialize)]
struct Alignment {
    characters: Vec<String>,
    character_start_times_seconds: Vec<f64>,
    character_end_times_seconds: Vec<f64>,
}

#[async_trait]
impl Synthesizer for ElevenLabs {
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
        tts::check_length(input, "text", MAX_TEXT, &mut problems);
        for field in ["stability", "similarityBoost", "style"] {
            tts::check_range(input, field, 0.0, 1.0, &mut problems);
        }
        // It goes into the URL's path.
        if let Some(voice) = input.get("voiceId").and_then(Value::as_str) {
            if voice.is_empty() || !voice.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push((
                    "voiceId".into(),
                    format!("`voiceId` must be an ElevenLabs voice id (letters and digits), not `{voice}`"),
                ));
            }
        }
        problems
    }

    async fn synthesize(
        &self,
        model: &ModelSpec,
        input: &Map<String, Value>,
        key: &Secret,
    ) -> Result<Speech, ProviderError> {
        let text = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
        let format = input
            .get("outputFormat")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_FORMAT);
        let mut body = Map::new();
        body.insert("text".into(), text("text").into());
        body.insert("model_id".into(), model.version.unwrap_or(model.id).into());
        let mut voice_settings = Map::new();
        for (ours, theirs) in [
            ("stability", "stability"),
            ("similarityBoost", "similarity_boost"),
            ("style", "style"),
            ("useSpeakerBoost", "use_speaker_boost"),
        ] {
            if let Some(v) = input.get(ours) {
                voice_settings.insert(theirs.into(), v.clone());
            }
        }
        // Only when given: the voice's own settings apply otherwise.
        if !voice_settings.is_empty() {
            body.insert("voice_settings".into(), voice_settings.into());
        }
        for (ours, theirs) in [
            ("languageCode", "language_code"),
            ("previousText", "previous_text"),
            ("nextText", "next_text"),
            ("seed", "seed"),
        ] {
            if let Some(v) = input.get(ours) {
                body.insert(theirs.into(), v.clone());
            }
        }
        let url = format!(
            "{}/v1/text-to-speech/{}/with-timestamps",
            self.settings.base_url.trim_end_matches('/'),
            text("voiceId")
        );
        let request = self
            .http
            .inner()
            .post(url)
            .query(&[("output_format", format)])
            .headers(tts::key_header("xi-api-key", key, NAME)?)
            .json(&body);
        let what = "elevenlabs text-to-speech";
        let answer: Answer = serde_json::from_value(tts::call(&self.http, request, what).await?).map_err(|e| {
            ProviderError::Retryable {
                message: format!("{what}: unreadable answer: {e}"),
                retry_after: None,
            }
        })?;
        let bytes = tts::decode_audio(answer.audio_base64.as_deref(), what)?;
        let audio = match format.strip_prefix("pcm_").map(str::parse) {
            Some(Ok(rate)) => Audio::Pcm { samples: bytes, rate },
            _ => Audio::Mp3(bytes),
        };
        let words = answer.alignment.map_or_else(Vec::new, |a| {
            tts::words_of_characters(
                &a.characters,
                &a.character_start_times_seconds,
                &a.character_end_times_seconds,
            )
        });
        Ok(Speech { audio, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::ProviderParams;
    use reelay_core::ports::Provider;
    use serde_json::json;

    fn params(model: &str, options: Value) -> ProviderParams {
        ProviderParams {
            prompt: None,
            options: serde_json::from_value(options).unwrap(),
            ..ProviderParams::prompt(NAME, model, "")
        }
    }

    #[test]
    fn the_sdks_params_are_checked_and_each_problem_named() {
        let provider = ElevenLabsProvider::from_settings(ElevenLabsSettings::new(None)).unwrap();
        let ok = params(
            "elevenlabs/turbo-v2.5",
            json!({"text": "Hello there", "voiceId": "21m00Tcm4TlvDq8ikWAM", "stability": 0.5,
                "similarityBoost": 0.75, "style": 0, "useSpeakerBoost": true, "outputFormat": "pcm_16000",
                "languageCode": "en", "previousText": "a", "nextText": "b"}),
        );
        assert_eq!(provider.check_params(&ok), vec![]);
        let bad = params(
            "eleven_multilingual_v2",
            json!({"text": "x".repeat(MAX_TEXT + 1), "voiceId": "../admin", "stability": 2, "style": -0.1}),
        );
        let fields: Vec<String> = provider.check_params(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["text", "stability", "style", "voiceId"]);
        let missing = params("eleven_flash_v2_5", json!({"outputFormat": "wav", "speed": 1}));
        let fields: Vec<String> = provider.check_params(&missing).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["outputFormat", "speed", "text", "voiceId"]);
    }
}
