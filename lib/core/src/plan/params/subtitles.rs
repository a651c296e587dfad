//! `addSubtitles` params: the video, the words (inline, a transcript file, or a job that
//! transcribed or spoke them) and the style, every value checked at submission.

use serde_json::{Map, Value};

use super::reframe::read_input;
use super::{Kinds, ParamReader};
use crate::domain::TimedWord;
use crate::plan::{
    parse_alignment, ActiveWordEffect, AssColour, CaptionPreset, CaptionStyle, JobId, MediaKind, MediaRef,
    SubtitlesParams, TranscriptSource,
};

pub(super) fn read(p: &mut ParamReader, deps: &[JobId], kinds: &Kinds) -> Option<SubtitlesParams> {
    let transcript = read_transcript(p, deps, kinds);
    let style = read_style(p);
    let video = read_input(p, deps, kinds, "addSubtitles");
    Some(SubtitlesParams {
        video: video?,
        transcript: transcript?,
        style: style?,
    })
}

/// `transcript` (or the SDK's manual `captions`), else the job's transcript or speech dependency.
fn read_transcript(p: &mut ParamReader, deps: &[JobId], kinds: &Kinds) -> Option<TranscriptSource> {
    let params = p.params;
    let given = ["transcript", "captions"]
        .into_iter()
        .find_map(|k| params.get(k).filter(|v| !v.is_null()).map(|v| (k, v)));
    match given {
        Some((key, Value::Array(items))) => read_words(p, key, items).map(TranscriptSource::Words),
        Some((key, value)) => {
            let source = p.media_ref(value, key)?;
            if let MediaRef::Job(id) = &source {
                if let Some(Some(kind @ (MediaKind::Video | MediaKind::Image))) = kinds.get(id) {
                    let kind = kind.name();
                    p.invalid(
                        key,
                        format_args!("refers to job `{id}`, which makes {kind}, not a transcript or speech"),
                    );
                    return None;
                }
            }
            Some(TranscriptSource::Media(source))
        }
        None => {
            let of_kind = |want: MediaKind| deps.iter().find(|d| kinds.get(*d) == Some(&Some(want)));
            let dep = of_kind(MediaKind::Transcript).or_else(|| of_kind(MediaKind::Audio));
            if dep.is_none() {
                p.fail(
                    "missing_field",
                    "params.transcript",
                    "`addSubtitles` needs a transcript: words `[{word, start, end}]`, a transcript URL, \
                     or a `transcribe` (or speech) job to depend on",
                );
            }
            dep.map(|d| TranscriptSource::Media(MediaRef::Job(d.clone())))
        }
    }
}

/// Inline words: each `{word, start, end}`, seconds, `0 ≤ start ≤ end`.
fn read_words(p: &mut ParamReader, key: &str, items: &[Value]) -> Option<Vec<TimedWord>> {
    let mut words = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let Some(obj) = item.as_object() else {
            p.invalid(&at, "must be an object `{word, start, end}`");
            continue;
        };
        let word = match obj.get("word").or_else(|| obj.get("text")) {
            Some(Value::String(w)) => Some(w.clone()),
            _ => {
                p.invalid(&format!("{at}.word"), "must be a string");
                None
            }
        };
        let time = |p: &mut ParamReader, k: &str| {
            let t = p.number_in(obj, k, &format!("{at}.{k}"), |v| v >= 0.0, "seconds, at least 0");
            if t.is_none() && !obj.contains_key(k) {
                p.invalid(&format!("{at}.{k}"), "is missing (seconds)");
            }
            t
        };
        let (start, end) = (time(p, "start"), time(p, "end"));
        if let (Some(word), Some(start), Some(end)) = (word, start, end) {
            if start > end {
                p.invalid(
                    &format!("{at}.end"),
                    format_args!("({end}) must not be before `start` ({start})"),
                );
            }
            words.push(TimedWord { word, start, end });
        }
    }
    Some(words)
}

/// `style`: a preset name, or an object of a `preset` and overrides.
fn read_style(p: &mut ParamReader) -> Option<CaptionStyle> {
    let params = p.params;
    let obj = match params.get("style") {
        None | Some(Value::Null) => return Some(CaptionStyle::default()),
        Some(Value::String(name)) => {
            return preset(p, name, "style").map(|preset| CaptionStyle {
                preset,
                ..Default::default()
            })
        }
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            p.invalid("style", "must be a preset name or an object");
            return None;
        }
    };
    let mut s = Style { p, obj };
    let preset = match s.string(&["preset"]) {
        Some(name) => preset(s.p, &name, "style.preset")?,
        None => CaptionPreset::default(),
    };
    let positive = |v: f64| v > 0.0;
    let non_negative = |v: f64| v >= 0.0;
    let style = CaptionStyle {
        preset,
        font_family: s.string(&["fontFamily", "fontName", "font"]),
        font_size: s.number(&["fontSize"], positive, "a size above 0"),
        bold: s.bool(&["bold"]),
        italic: s.bool(&["italic"]),
        uppercase: s.bool(&["uppercase"]),
        primary_color: s.colour(&["primaryColor", "color", "textColor"]),
        outline_color: s.colour(&["outlineColor"]),
        background_color: s.colour(&["backgroundColor", "backColor"]),
        border_style: s.border_style(),
        outline_width: s.number(&["outlineWidth", "outline"], non_negative, "at least 0"),
        shadow: s.number(&["shadow", "shadowDistance"], non_negative, "at least 0"),
        padding: s.number(&["padding"], non_negative, "at least 0"),
        alignment: s.alignment(),
        margin_v: s.number(&["marginV", "marginVertical"], non_negative, "at least 0"),
        margin_l: s.number(&["marginL", "marginLeft"], non_negative, "at least 0"),
        margin_r: s.number(&["marginR", "marginRight"], non_negative, "at least 0"),
        words_per_caption: s.count(&["wordsPerCaption"]),
        max_caption_duration: s.number(&["maxCaptionDuration"], positive, "seconds above 0"),
        max_caption_chars: s.count(&["maxCaptionChars"]),
        max_lines: s.count(&["maxLines"]),
        highlight_active_word: s.bool(&["highlightActiveWord"]),
        active_word_color: s.colour(&["activeWordColor", "highlightColor"]),
        inactive_word_color: s.colour(&["inactiveWordColor"]),
        active_word_scale: s.number(&["activeWordScale"], positive, "a factor above 0"),
        active_word_effect: s.effect(),
    };
    Some(style)
}

fn preset(p: &mut ParamReader, name: &str, at: &str) -> Option<CaptionPreset> {
    let preset = CaptionPreset::parse(name);
    if preset.is_none() {
        p.invalid(
            at,
            format_args!("`{name}` is not a caption preset: use one of {}", CaptionPreset::NAMES),
        );
    }
    preset
}

/// Reads the style object's fields, each by its names (the SDK's first), reporting at `style.<name>`.
struct Style<'r, 'a> {
    p: &'r mut ParamReader<'a>,
    obj: &'a Map<String, Value>,
}

impl<'a> Style<'_, 'a> {
    fn field(&self, names: &[&str]) -> Option<(String, &'a Value)> {
        let obj = self.obj;
        names
            .iter()
            .find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (format!("style.{k}"), v)))
    }

    fn string(&mut self, names: &[&str]) -> Option<String> {
        match self.field(names)? {
            (_, Value::String(s)) => Some(s.clone()),
            (at, _) => {
                self.p.invalid(&at, "must be a string");
                None
            }
        }
    }

    fn bool(&mut self, names: &[&str]) -> Option<bool> {
        match self.field(names)? {
            (_, Value::Bool(b)) => Some(*b),
            (at, _) => {
                self.p.invalid(&at, "must be true or false");
                None
            }
        }
    }

    fn number(&mut self, names: &[&str], ok: fn(f64) -> bool, what: &str) -> Option<f64> {
        let (at, _) = self.field(names)?;
        let key = at.trim_start_matches("style.").to_string();
        self.p.number_in(self.obj, &key, &at, ok, what)
    }

    fn count(&mut self, names: &[&str]) -> Option<u32> {
        let n = self.number(
            names,
            |v| v >= 1.0 && v.fract() == 0.0 && v <= 1e6,
            "a whole number, at least 1",
        )?;
        Some(n as u32)
    }

    fn colour(&mut self, names: &[&str]) -> Option<AssColour> {
        let (at, value) = self.field(names)?;
        let parsed = value.as_str().and_then(AssColour::parse);
        if parsed.is_none() {
            self.p.invalid(
                &at,
                format_args!("must be a colour `#RRGGBB`, `#RGB` or `&HAABBGGRR`, not {value}"),
            );
        }
        parsed
    }

    fn alignment(&mut self) -> Option<u8> {
        let (at, value) = self.field(&["alignment", "position"])?;
        let parsed = match value {
            Value::Number(n) => n.as_u64().filter(|d| (1..=9).contains(d)).map(|d| d as u8),
            Value::String(s) => parse_alignment(s),
            _ => None,
        };
        if parsed.is_none() {
            self.p.invalid(
                &at,
                format_args!("must be a numpad digit 1-9 or a place such as `bottom`, `center`, `top`, not {value}"),
            );
        }
        parsed
    }

    fn border_style(&mut self) -> Option<u8> {
        let (at, value) = self.field(&["borderStyle"])?;
        let parsed = value.as_u64().filter(|b| matches!(b, 1 | 3)).map(|b| b as u8);
        if parsed.is_none() {
            self.p
                .invalid(&at, format_args!("must be 1 (outline) or 3 (box), not {value}"));
        }
        parsed
    }

    fn effect(&mut self) -> Option<ActiveWordEffect> {
        let raw = self.string(&["animationStyle", "activeWordEffect"])?;
        let parsed = ActiveWordEffect::parse(&raw);
        if parsed.is_none() {
            self.p.invalid(
                "style.animationStyle",
                format_args!("`{raw}` is not a highlight: use `color`, `scale` or `glow`"),
            );
        }
        parsed
    }
}
