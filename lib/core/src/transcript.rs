//! The one transcript shape every `transcribe` job stores, and the normaliser that reads the
//! shapes models answer in: the canonical one (`local`), Whisper's `segments[]` (with or
//! without `words[]`) and its `transcription` as text, SRT or WebVTT, fast-whisper's
//! `chunks[]`, a bare list of words, and SRT/WebVTT text. Where a model gives only segments,
//! each segment's time is spread over its words by their length.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::TimedWord;

/// A transcript: every word with its times (seconds), the segments (phrases) they form, and
/// the spoken language when the model said it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transcript {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub text: String,
    pub words: Vec<TimedWord>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TranscriptError {
    #[error("not a transcript: {0}")]
    Unrecognised(String),
    #[error("bad cue timing `{0}`")]
    BadTiming(String),
}

/// Reads a transcript from a stored or fetched body: JSON of any shape above, else SRT or
/// WebVTT text.
pub fn normalise(raw: &str) -> Result<Transcript, TranscriptError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => from_value(&value),
        Err(_) => from_subtitles(raw),
    }
}

/// Reads a transcript from a model's JSON answer.
pub fn from_value(value: &Value) -> Result<Transcript, TranscriptError> {
    let language = ["language", "detected_language"]
        .iter()
        .find_map(|k| value.get(k).and_then(Value::as_str))
        .filter(|l| !l.is_empty() && *l != "None")
        .map(str::to_string);
    let mut transcript = match value {
        Value::String(text) => from_subtitles(text)?,
        // A list of text chunks (how Replicate streams text outputs), or a bare list of words.
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let text: String = items.iter().filter_map(Value::as_str).collect();
            from_subtitles(&text)?
        }
        Value::Array(items) => from_words(timed_words(items)),
        Value::Object(map) => {
            if let Some(chunks) = map.get("chunks").and_then(Value::as_array) {
                from_chunks(chunks)
            } else if let Some(words) = ["words", "transcript"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_array))
            {
                // `transcript`: how the speech providers tag their audio with word timings.
                let mut t = from_words(timed_words(words));
                if let Some(segments) = map.get("segments").and_then(Value::as_array) {
                    t.segments = segments.iter().filter_map(segment).collect();
                }
                t
            } else if let Some(segments) = map.get("segments").and_then(Value::as_array) {
                from_whisper_segments(segments)
            } else if let Some(text) = map.get("transcription").and_then(Value::as_str) {
                from_subtitles(text)?
            } else {
                return Err(TranscriptError::Unrecognised(
                    "an object with neither `words`, `segments`, `chunks` nor `transcription`".into(),
                ));
            }
        }
        other => return Err(TranscriptError::Unrecognised(format!("a JSON {}", kind_of(other)))),
    };
    // The model's own full text, where it gave one as plain text.
    if let Some(text) = value.get("text").and_then(Value::as_str) {
        transcript.text = text.trim().to_string();
    }
    transcript.language = language.or(transcript.language);
    Ok(transcript)
}

/// Reads SRT or WebVTT: each cue becomes a segment, its words timed by length.
pub fn from_subtitles(text: &str) -> Result<Transcript, TranscriptError> {
    let mut segments = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some((from, to)) = line.split_once("-->") else {
            continue;
        };
        // WebVTT cue settings (`align:start`) follow the end time.
        let to = to.split_whitespace().next().unwrap_or_default();
        let (start, end) = (cue_time(from)?, cue_time(to)?);
        let mut cue = Vec::new();
        while let Some(text) = lines.next_if(|l| !l.is_empty()) {
            cue.push(strip_tags(text));
        }
        segments.push(Segment {
            start,
            end,
            text: cue.join(" ").trim().to_string(),
        });
    }
    if segments.is_empty() && !text.trim().is_empty() {
        return Err(TranscriptError::Unrecognised(
            "text with no timed cues (neither SRT nor WebVTT)".into(),
        ));
    }
    Ok(from_segments(segments))
}

/// `00:01:02,500` (SRT), `00:01:02.500` or `01:02.500` (WebVTT) in seconds.
fn cue_time(raw: &str) -> Result<f64, TranscriptError> {
    let bad = || TranscriptError::BadTiming(raw.trim().to_string());
    let raw = raw.trim().replace(',', ".");
    let mut seconds = 0.0;
    let parts: Vec<&str> = raw.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    for part in parts {
        let n: f64 = part.parse().map_err(|_| bad())?;
        seconds = seconds * 60.0 + n;
    }
    Ok(seconds)
}

/// Drops WebVTT's inline tags (`<c.yellow>`, `<00:00:01.000>`, `<v Roger>`).
fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whisper's segments: their own `words[]` where it timed words, else derived.
fn from_whisper_segments(items: &[Value]) -> Transcript {
    let segments: Vec<Segment> = items.iter().filter_map(segment).collect();
    let words: Vec<TimedWord> = items
        .iter()
        .filter_map(|s| s.get("words").and_then(Value::as_array))
        .flat_map(|w| timed_words(w))
        .collect();
    if words.is_empty() {
        return from_segments(segments);
    }
    Transcript {
        text: join(segments.iter().map(|s| s.text.as_str())),
        words,
        segments,
        language: None,
    }
}

/// fast-whisper's chunks: words (`timestamp: "word"`) or phrases (`"chunk"`).
fn from_chunks(chunks: &[Value]) -> Transcript {
    let timed: Vec<Segment> = chunks
        .iter()
        .filter_map(|c| {
            let stamp = c.get("timestamp")?.as_array()?;
            let start = stamp.first()?.as_f64()?;
            // The last chunk may have no end.
            let end = stamp.get(1).and_then(Value::as_f64).unwrap_or(start);
            let text = c.get("text")?.as_str()?.trim().to_string();
            Some(Segment { start, end, text })
        })
        .collect();
    if timed.iter().all(|c| c.text.split_whitespace().count() <= 1) {
        from_words(
            timed
                .into_iter()
                .filter(|c| !c.text.is_empty())
                .map(|c| TimedWord {
                    word: c.text,
                    start: c.start,
                    end: c.end,
                })
                .collect(),
        )
    } else {
        from_segments(timed)
    }
}

fn segment(value: &Value) -> Option<Segment> {
    Some(Segment {
        start: value.get("start")?.as_f64()?,
        end: value.get("end")?.as_f64()?,
        text: value.get("text")?.as_str()?.trim().to_string(),
    })
}

fn timed_words(items: &[Value]) -> Vec<TimedWord> {
    items
        .iter()
        .filter_map(|w| {
            let word = w.get("word").or_else(|| w.get("text"))?.as_str()?.trim();
            Some(TimedWord {
                word: word.to_string(),
                start: w.get("start")?.as_f64()?,
                end: w.get("end")?.as_f64()?,
            })
        })
        .filter(|w| !w.word.is_empty())
        .collect()
}

/// Words alone: segments are their sentences (a new one after `.`, `?` or `!`, or a pause
/// of a second).
fn from_words(words: Vec<TimedWord>) -> Transcript {
    let mut segments: Vec<Segment> = Vec::new();
    let mut open = false;
    for w in &words {
        match segments.last_mut() {
            Some(s) if open && w.start - s.end < 1.0 => {
                s.end = w.end;
                s.text = format!("{} {}", s.text, w.word);
            }
            _ => segments.push(Segment {
                start: w.start,
                end: w.end,
                text: w.word.clone(),
            }),
        }
        open = !w.word.ends_with(['.', '?', '!']);
    }
    Transcript {
        text: join(words.iter().map(|w| w.word.as_str())),
        words,
        segments,
        language: None,
    }
}

/// Segments alone: each segment's time spread over its words, weighted by their length.
fn from_segments(segments: Vec<Segment>) -> Transcript {
    let mut words = Vec::new();
    for s in &segments {
        let parts: Vec<&str> = s.text.split_whitespace().collect();
        let total: usize = parts.iter().map(|w| w.chars().count()).sum();
        let span = (s.end - s.start).max(0.0);
        let mut at = s.start;
        for part in parts {
            let share = span * part.chars().count() as f64 / total.max(1) as f64;
            words.push(TimedWord {
                word: part.to_string(),
                start: at,
                end: at + share,
            });
            at += share;
        }
    }
    Transcript {
        text: join(segments.iter().map(|s| s.text.as_str())),
        words,
        segments,
        language: None,
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[path = "transcript_tests.rs"]
mod tests;
