//! What the text-to-speech providers (ElevenLabs, Hume) share. Both answer the submit with the
//! audio itself, so a job is done when its submit returns: [`TtsProvider`] makes one
//! provider's request and answer (a [`Synthesizer`]) into the engine's `Provider`, with the
//! audio as a `data:` URI output that the engine copies into the blob store like any other.
//!
//! Word timings, when a provider gives them, travel inside the stored audio as a JSON comment,
//! `{"transcript":[{"word","start","end"}]}` (seconds): an ID3v2 `COMM` frame in an MP3, a RIFF
//! `INFO/ICMT` chunk in a WAV. So they stay with the file wherever it is copied, and `ffprobe`
//! (or any tag reader) shows them as the `comment` tag.

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::RequestBuilder;
use serde::Serialize;
use serde_json::{json, Map, Value};

use reelay_core::plan::{ProviderParams, Secret};
use reelay_core::ports::{
    ByteStream, Callback, CallbackError, ModelInfo, Provider, ProviderError, ProviderRequest, ProviderStatus,
    Submission,
};

use crate::http::{classify, HttpClient};
use crate::registry::{self, ModelSpec, Problem};

/// One word of the speech and when it is heard, in seconds from the start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

/// Audio as a provider answered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    Mp3(Vec<u8>),
    Wav(Vec<u8>),
    /// Headerless 16-bit little-endian mono samples at `rate` Hz (stored as a WAV: raw PCM
    /// can be neither probed nor played).
    Pcm {
        samples: Vec<u8>,
        rate: u32,
    },
}

/// A provider's answer: the audio, and its word timings if it gave any.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    pub audio: Audio,
    pub words: Vec<Word>,
}

/// One text-to-speech provider's API.
#[async_trait]
pub trait Synthesizer: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn models(&self) -> &'static [ModelSpec];
    /// The configured key (a request's key wins over it).
    fn key(&self) -> Option<&Secret>;
    /// Problems of a model's input that its schema cannot say (ranges, lengths, shapes).
    fn check(&self, input: &Map<String, Value>) -> Vec<Problem>;
    /// Speaks `input` (checked against `model`'s schema) with `key`.
    async fn synthesize(
        &self,
        model: &ModelSpec,
        input: &Map<String, Value>,
        key: &Secret,
    ) -> Result<Speech, ProviderError>;
}

/// A [`Synthesizer`] as the engine's `Provider`.
pub struct TtsProvider<S> {
    synth: S,
    infos: Vec<ModelInfo>,
    /// Reads the `data:` URI outputs (no network).
    http: HttpClient,
}

impl<S: Synthesizer> TtsProvider<S> {
    pub fn new(synth: S) -> Result<Self, ProviderError> {
        Ok(TtsProvider {
            infos: synth.models().iter().map(ModelSpec::info).collect(),
            synth,
            http: HttpClient::new()?,
        })
    }

    fn model(&self, id: &str) -> Result<&'static ModelSpec, ProviderError> {
        registry::find(self.synth.models(), id)
            .ok_or_else(|| ProviderError::Fatal(format!("{} has no model `{id}`", self.synth.name())))
    }
}

#[async_trait]
impl<S: Synthesizer> Provider for TtsProvider<S> {
    fn name(&self) -> &str {
        self.synth.name()
    }

    fn models(&self) -> &[ModelInfo] {
        &self.infos
    }

    fn check_params(&self, params: &ProviderParams) -> Vec<(String, String)> {
        let Some(model) = registry::find(self.synth.models(), &params.model_id) else {
            return Vec::new();
        };
        // Speech takes no media, so the input can be built before references resolve.
        match model.input(params) {
            Ok(input) => self.synth.check(&input),
            Err(problems) => problems,
        }
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        let model = self.model(&request.params.model_id)?;
        let input = model
            .input(&request.params)
            .map_err(|problems| ProviderError::Fatal(messages(problems)))?;
        let problems = self.synth.check(&input);
        if !problems.is_empty() {
            return Err(ProviderError::Fatal(messages(problems)));
        }
        let key = request.api_key.as_ref().or(self.synth.key()).ok_or_else(|| {
            ProviderError::Fatal(format!(
                "no {} key: configure one on the server or send one with the request",
                self.synth.name()
            ))
        })?;
        let speech = self.synth.synthesize(model, &input, key).await?;
        let (bytes, content_type) = stored_audio(speech)?;
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(Submission {
            // The provider keeps no job to refer to later: the token names it.
            provider_job_id: request.token,
            finished: Some(ProviderStatus::Succeeded {
                output_url: format!("data:{content_type};base64,{data}"),
                content_type: Some(content_type.to_string()),
            }),
        })
    }

    /// Nothing to find: the audio comes with the submit's answer and is kept nowhere to ask
    /// for again. A submit whose answer was lost (a timeout, a reset) is not repeated, since
    /// `reconciles` is false: the job fails with `submission_unknown` rather than pay twice.
    async fn find(&self, _request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        Ok(None)
    }

    async fn status(&self, _provider_job_id: &str, _key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        Err(ProviderError::Fatal(format!(
            "{} answers with the submit: there is nothing to poll",
            self.synth.name()
        )))
    }

    /// A finished job has nothing left to stop.
    async fn cancel(&self, _provider_job_id: &str, _key: Option<&Secret>) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn download(&self, output_url: &str, _key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        if !output_url.starts_with("data:") {
            return Err(ProviderError::Fatal(format!(
                "{} outputs are inline audio, not {output_url}",
                self.synth.name()
            )));
        }
        self.http.download(output_url, HeaderMap::new()).await
    }

    async fn verify_callback(&self, _headers: &[(String, String)], _body: &[u8]) -> Result<Callback, CallbackError> {
        Err(CallbackError::Unauthorized(format!(
            "{} does not call back: it answers with the submit",
            self.synth.name()
        )))
    }
}

fn messages(problems: Vec<Problem>) -> String {
    problems.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ")
}

/// The header that carries `key` (marked sensitive, so that it never shows in debug output).
pub fn key_header(name: &'static str, key: &Secret, provider: &str) -> Result<HeaderMap, ProviderError> {
    let mut value = HeaderValue::from_str(key.expose())
        .map_err(|_| ProviderError::Fatal(format!("the {provider} key is not usable in a header")))?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(name), value);
    Ok(headers)
}

/// Sends a JSON call and reads its JSON answer. A refusal keeps the provider's own message:
/// ElevenLabs' `detail.message`, Hume's `message` or its gateway's `fault.faultstring`, else
/// what `http::error_message` finds (FastAPI's `detail` list).
pub async fn call(http: &HttpClient, request: RequestBuilder, what: &str) -> Result<Value, ProviderError> {
    let answer = http.answer(request, what).await?;
    if !answer.status.is_success() {
        let body = answer.json();
        let message = ["/detail/message", "/message", "/fault/faultstring"]
            .iter()
            .find_map(|p| body.pointer(p).and_then(Value::as_str));
        return Err(match message {
            Some(m) => classify(what, answer.status, answer.retry_after, m),
            None => answer.error(what),
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Retryable {
        message: format!("{what}: unreadable answer: {e}"),
        retry_after: None,
    })
}

/// Base64 audio of an answer.
pub fn decode_audio(data: Option<&str>, what: &str) -> Result<Vec<u8>, ProviderError> {
    let data = data.ok_or_else(|| ProviderError::Fatal(format!("{what} answered no audio")))?;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| ProviderError::Fatal(format!("{what} answered audio that is not base64")))
}

/// Adds a problem unless `input[field]`, if given, is a number from `min` to `max`.
pub fn check_range(input: &Map<String, Value>, field: &str, min: f64, max: f64, problems: &mut Vec<Problem>) {
    if let Some(n) = input.get(field).and_then(Value::as_f64) {
        if !(min..=max).contains(&n) {
            problems.push((field.into(), format!("`{field}` must be from {min} to {max}, not {n}")));
        }
    }
}

/// Adds a problem unless `input[field]`, if given, has 1 to `max` characters.
pub fn check_length(input: &Map<String, Value>, field: &str, max: usize, problems: &mut Vec<Problem>) {
    if let Some(s) = input.get(field).and_then(Value::as_str) {
        let n = s.chars().count();
        if s.trim().is_empty() || n > max {
            problems.push((
                field.into(),
                format!("`{field}` must have 1 to {max} characters, not {n}"),
            ));
        }
    }
}

/// Words of a character alignment (ElevenLabs'): characters between blanks make a word,
/// heard from its first character's start to its last one's end.
pub fn words_of_characters(chars: &[String], starts: &[f64], ends: &[f64]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    for ((c, &start), &end) in chars.iter().zip(starts).zip(ends) {
        if c.trim().is_empty() {
            words.extend(current.take());
            continue;
        }
        match &mut current {
            Some(word) => {
                word.word.push_str(c);
                word.end = end;
            }
            None => {
                current = Some(Word {
                    word: c.clone(),
                    start,
                    end,
                })
            }
        }
    }
    words.extend(current);
    words
}

/// The file stored for `speech` and its content type: PCM gets a WAV header, and word timings
/// go into the file's comment tag.
fn stored_audio(speech: Speech) -> Result<(Vec<u8>, &'static str), ProviderError> {
    let comment = (!speech.words.is_empty()).then(|| json!({ "transcript": speech.words }).to_string());
    Ok(match speech.audio {
        Audio::Mp3(mp3) => match comment {
            Some(comment) => ([id3_comment(&comment), mp3].concat(), "audio/mpeg"),
            None => (mp3, "audio/mpeg"),
        },
        Audio::Wav(wav) => (with_wav_comment(wav, comment.as_deref())?, "audio/wav"),
        Audio::Pcm { samples, rate } => (
            with_wav_comment(wav_of_pcm(&samples, rate), comment.as_deref())?,
            "audio/wav",
        ),
    })
}

/// An ID3v2.4 tag holding one UTF-8 `COMM` frame with no description (read as `comment`),
/// to put in front of an MP3.
fn id3_comment(text: &str) -> Vec<u8> {
    let mut frame_body = vec![3]; // UTF-8
    frame_body.extend_from_slice(b"eng\0");
    frame_body.extend_from_slice(text.as_bytes());
    let mut frame = b"COMM".to_vec();
    frame.extend_from_slice(&syncsafe(frame_body.len()));
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&frame_body);
    let mut tag = b"ID3\x04\x00\x00".to_vec();
    tag.extend_from_slice(&syncsafe(frame.len()));
    tag.extend_from_slice(&frame);
    tag
}

/// ID3's sizes: 7 bits a byte (up to 256 MB).
fn syncsafe(n: usize) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

/// A WAV file of 16-bit mono samples.
fn wav_of_pcm(samples: &[u8], rate: u32) -> Vec<u8> {
    let data_len = samples.len() as u32;
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes a second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes a frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits a sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(samples);
    wav
}

/// `wav` with a `LIST/INFO/ICMT` chunk holding `comment`, put before the samples (readers that
/// stream stop at `data`).
fn with_wav_comment(wav: Vec<u8>, comment: Option<&str>) -> Result<Vec<u8>, ProviderError> {
    let Some(comment) = comment else {
        return Ok(wav);
    };
    let not_wav = || ProviderError::Fatal("the provider's audio is not a WAV file".into());
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err(not_wav());
    }
    let mut at = 12;
    while &wav.get(at..at + 4).ok_or_else(not_wav)? != b"data" {
        let size = wav.get(at + 4..at + 8).ok_or_else(not_wav)?;
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        at += 8 + size + size % 2;
    }
    let mut text = comment.as_bytes().to_vec();
    text.push(0);
    if text.len() % 2 == 1 {
        text.push(0);
    }
    let mut list = b"LIST".to_vec();
    list.extend_from_slice(&(12 + text.len() as u32).to_le_bytes());
    list.extend_from_slice(b"INFOICMT");
    list.extend_from_slice(&(text.len() as u32).to_le_bytes());
    list.extend_from_slice(&text);
    let mut out = Vec::with_capacity(wav.len() + list.len());
    out.extend_from_slice(&wav[..at]);
    out.extend_from_slice(&list);
    out.extend_from_slice(&wav[at..]);
    // A streamed WAV may say "unknown" (0xFFFFFFFF) here: leave that as it is.
    let riff = u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]);
    if riff != u32::MAX {
        out[4..8].copy_from_slice(&(riff + list.len() as u32).to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_group_into_words() {
        let chars: Vec<String> = "Hi, you  there".chars().map(String::from).collect();
        let starts: Vec<f64> = (0..chars.len()).map(|i| i as f64 * 0.1).collect();
        let ends: Vec<f64> = starts.iter().map(|s| s + 0.1).collect();
        let words = words_of_characters(&chars, &starts, &ends);
        let got: Vec<(&str, f64, f64)> = words.iter().map(|w| (w.word.as_str(), w.start, w.end)).collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(got.iter().map(|w| w.0).collect::<Vec<_>>(), ["Hi,", "you", "there"]);
        assert!(close(got[1].1, 0.4) && close(got[1].2, 0.7), "{got:?}");
        assert!(close(got[2].1, 0.9) && close(got[2].2, 1.4), "{got:?}");
        assert!(words_of_characters(&[], &[], &[]).is_empty());
    }

    #[test]
    fn pcm_becomes_a_wav_with_its_words_before_the_samples() {
        let speech = Speech {
            audio: Audio::Pcm {
                samples: vec![0; 8],
                rate: 16000,
            },
            words: vec![Word {
                word: "hi".into(),
                start: 0.0,
                end: 0.2,
            }],
        };
        let (wav, content_type) = stored_audio(speech).unwrap();
        assert_eq!(content_type, "audio/wav");
        let riff = u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize;
        assert_eq!(riff, wav.len() - 8);
        let text = String::from_utf8_lossy(&wav);
        let (list, data) = (text.find("LISTINFO").is_none(), text.find("data").unwrap());
        assert!(list, "LIST's size sits between LIST and INFO");
        assert!(text.find("INFOICMT").unwrap() < data);
        assert!(
            text.contains(r#"{"transcript":[{"end":0.2,"start":0.0,"word":"hi"}]}"#),
            "{text:?}"
        );
        assert!(with_wav_comment(b"not a wav".to_vec(), Some("x")).is_err());
    }

    #[test]
    fn an_mp3s_words_ride_in_an_id3_comment() {
        let tag = id3_comment("hello");
        assert_eq!(&tag[..6], b"ID3\x04\x00\x00");
        assert_eq!(tag[9] as usize, tag.len() - 10);
        assert_eq!(&tag[10..14], b"COMM");
        assert!(tag.ends_with(b"\x03eng\0hello"));
        assert_eq!(syncsafe(200), [0, 0, 1, 72]);
    }

    #[test]
    fn ranges_and_lengths_are_checked() {
        let input: Map<String, Value> =
            serde_json::from_value(json!({"stability": 1.5, "style": 0.0, "text": " "})).unwrap();
        let mut problems = Vec::new();
        check_range(&input, "stability", 0.0, 1.0, &mut problems);
        check_range(&input, "style", 0.0, 1.0, &mut problems);
        check_range(&input, "speed", 0.5, 2.0, &mut problems);
        check_length(&input, "text", 10, &mut problems);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["stability", "text"]);
    }
}
