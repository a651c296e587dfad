//! The canonical plan model: every wire form of `api-compat.md` parses into these types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub type JobId = String;

/// What a client asked for: a plan plus the options that travel beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRequest {
    pub plan: Plan,
    pub base_execution_id: Option<String>,
    pub webhook: Option<WebhookTarget>,
    /// Provider keys sent with the request. Never serialised: they must not reach storage in clear.
    pub provider_api_keys: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub jobs: Vec<JobSpec>,
}

impl Plan {
    /// The pipeline's final job: the last in the array (the SDK pushes the outermost operation last).
    pub fn final_job(&self) -> Option<&JobSpec> {
        self.jobs.last()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    pub url: String,
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// A secret value (provider key, webhook secret): redacted in `Debug`, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub id: JobId,
    pub operation: Operation,
    pub params: Params,
    /// Explicit dependencies plus every job referred to inside `params`, in first-seen order.
    pub depends_on: Vec<JobId>,
    #[serde(default)]
    pub send_job_webhook: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Generate,
    GenerateImage,
    GenerateAudio,
    Transcribe,
    Merge,
    Reframe,
    LipSync,
    AddSubtitles,
    RemoveBackground,
    RemoveImageBackground,
    Layer,
}

impl Operation {
    pub const ALL: [Operation; 11] = [
        Operation::Generate,
        Operation::GenerateImage,
        Operation::GenerateAudio,
        Operation::Transcribe,
        Operation::Merge,
        Operation::Reframe,
        Operation::LipSync,
        Operation::AddSubtitles,
        Operation::RemoveBackground,
        Operation::RemoveImageBackground,
        Operation::Layer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Generate => "generate",
            Operation::GenerateImage => "generateImage",
            Operation::GenerateAudio => "generateAudio",
            Operation::Transcribe => "transcribe",
            Operation::Merge => "merge",
            Operation::Reframe => "reframe",
            Operation::LipSync => "lipSync",
            Operation::AddSubtitles => "addSubtitles",
            Operation::RemoveBackground => "removeBackground",
            Operation::RemoveImageBackground => "removeImageBackground",
            Operation::Layer => "layer",
        }
    }

    /// Accepts `generate`, `pipeline:generate`, and any ASCII case.
    pub fn parse(raw: &str) -> Option<Operation> {
        let name = raw.strip_prefix("pipeline:").unwrap_or(raw);
        Operation::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// What the operation produces.
    pub fn output_kind(self) -> MediaKind {
        match self {
            Operation::GenerateImage | Operation::RemoveImageBackground => MediaKind::Image,
            Operation::GenerateAudio => MediaKind::Audio,
            Operation::Transcribe => MediaKind::Transcript,
            _ => MediaKind::Video,
        }
    }

    /// Operations carried out by an AI provider (as opposed to ffmpeg here).
    pub fn is_provider_operation(self) -> bool {
        !matches!(
            self,
            Operation::Merge | Operation::Reframe | Operation::AddSubtitles | Operation::Layer
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a media input comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum MediaRef {
    Url(String),
    /// The output of another job of the plan.
    Job(JobId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    Video,
    Image,
    Audio,
    Transcript,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Transcript => "transcript",
        }
    }
}

/// Typed parameters, one shape per family of operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "shape")]
pub enum Params {
    Provider(ProviderParams),
    Merge(MergeParams),
    Reframe(ReframeParams),
    /// A job of the base execution (`baseExecutionId`), reused: its output becomes this job's.
    Base(BaseRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseRef {
    pub execution_id: String,
    pub job_id: JobId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderParams {
    pub provider: String,
    pub model_id: String,
    pub prompt: Option<String>,
    pub duration: Option<f64>,
    pub resolution: Option<String>,
    pub aspect_ratio: Option<AspectRatio>,
    pub seed: Option<i64>,
    /// Media inputs by their unified name (`image`, `audio`, `startImage`, `endImage`, `video`, `audioUrl`).
    pub inputs: BTreeMap<String, MediaRef>,
    /// `false` when the client gave the model's own params (`unified: false`).
    pub unified: bool,
    /// Raw model params, passed through (references inside are resolved at run time).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The job's own provider key (`apiKey`). Never serialised: the engine seals it into the job record.
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

impl ProviderParams {
    /// Unified params for `model_id` on `provider` with a prompt and nothing else: the base that
    /// tests and callers fill in with struct-update syntax.
    pub fn prompt(provider: &str, model_id: &str, prompt: &str) -> Self {
        ProviderParams {
            provider: provider.to_string(),
            model_id: model_id.to_string(),
            prompt: Some(prompt.to_string()),
            duration: None,
            resolution: None,
            aspect_ratio: None,
            seed: None,
            inputs: Default::default(),
            unified: true,
            options: Default::default(),
            api_key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeParams {
    pub items: Vec<MergeItem>,
    pub transition: Option<Transition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeItem {
    pub source: MediaRef,
    /// `None`: taken from the source (a job's output kind, or video for a URL).
    pub kind: Option<MediaKind>,
    pub duration: Option<f64>,
    pub offset: Option<f64>,
    pub volume: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// `fade` (through black), `crossfade`, `wipeleft`, `wiperight`, `slideleft`, `slideright`.
    pub kind: String,
    pub duration: f64,
}

pub const TRANSITIONS: [&str; 7] = [
    "fade",
    "crossfade",
    "dissolve",
    "wipeleft",
    "wiperight",
    "slideleft",
    "slideright",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReframeParams {
    pub input: MediaRef,
    pub aspect_ratio: AspectRatio,
    pub mode: ReframeMode,
    /// Short side of the output frame in pixels (1080 unless `resolution` says otherwise).
    pub short_side: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReframeMode {
    Crop,
    Pad,
}

/// A frame ratio such as `9:16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AspectRatio {
    pub w: u32,
    pub h: u32,
}

impl AspectRatio {
    pub fn parse(raw: &str) -> Option<AspectRatio> {
        let (w, h) = raw.trim().split_once(':')?;
        let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
        ((1..=10_000).contains(&w) && (1..=10_000).contains(&h)).then_some(AspectRatio { w, h })
    }

    pub fn reduced(self) -> AspectRatio {
        let g = gcd(self.w, self.h);
        AspectRatio {
            w: self.w / g,
            h: self.h / g,
        }
    }

    /// The frame with this ratio whose short side is `short_side`, both sides even (x264 needs it).
    pub fn frame(self, short_side: u32) -> (u32, u32) {
        let even = |v: f64| ((v / 2.0).round() as u32).max(1) * 2;
        let s = f64::from(short_side);
        let (w, h) = (f64::from(self.w), f64::from(self.h));
        if w <= h {
            (even(s), even(s * h / w))
        } else {
            (even(s * w / h), even(s))
        }
    }

    /// The ratio of a frame size, e.g. 1080x1920 → 9:16. Frames rounded to even pixels are
    /// a hair off their ratio (426x240 is 71:40): within 1 % of a common ratio, that one.
    pub fn of_frame(width: u32, height: u32) -> Option<AspectRatio> {
        if width == 0 || height == 0 {
            return None;
        }
        const COMMON: [(u32, u32); 11] = [
            (16, 9),
            (9, 16),
            (1, 1),
            (4, 5),
            (5, 4),
            (4, 3),
            (3, 4),
            (3, 2),
            (2, 3),
            (21, 9),
            (9, 21),
        ];
        let actual = f64::from(width) / f64::from(height);
        let near = COMMON
            .iter()
            .find(|(w, h)| (actual / (f64::from(*w) / f64::from(*h)) - 1.0).abs() < 0.01);
        Some(match near {
            Some(&(w, h)) => AspectRatio { w, h },
            None => AspectRatio { w: width, h: height }.reduced(),
        })
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.w, self.h)
    }
}

impl TryFrom<String> for AspectRatio {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AspectRatio::parse(&value).ok_or_else(|| format!("not an aspect ratio: {value}"))
    }
}

impl From<AspectRatio> for String {
    fn from(value: AspectRatio) -> String {
        value.to_string()
    }
}

/// `"720p"` → 720; `"1080p"` → 1080; `"4k"` → 2160.
pub fn parse_resolution(raw: &str) -> Option<u32> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower == "4k" {
        return Some(2160);
    }
    let n: u32 = lower.strip_suffix('p')?.parse().ok()?;
    (64..=4320).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_ratio_parses_and_frames() {
        assert_eq!(AspectRatio::parse("9:16"), Some(AspectRatio { w: 9, h: 16 }));
        for bad in ["0:1", "a:b", "16/9", "", "9:", "1:10001"] {
            assert_eq!(AspectRatio::parse(bad), None, "{bad}");
        }
        assert_eq!(AspectRatio { w: 9, h: 16 }.frame(1080), (1080, 1920));
        assert_eq!(AspectRatio { w: 16, h: 9 }.frame(720), (1280, 720));
        assert_eq!(AspectRatio { w: 4, h: 5 }.frame(1080), (1080, 1350));
        assert_eq!(AspectRatio { w: 1, h: 1 }.frame(1080), (1080, 1080));
        assert_eq!(AspectRatio::of_frame(1080, 1920), Some(AspectRatio { w: 9, h: 16 }));
        assert_eq!(AspectRatio::of_frame(426, 240), Some(AspectRatio { w: 16, h: 9 }));
        assert_eq!(AspectRatio::of_frame(1000, 700), Some(AspectRatio { w: 10, h: 7 }));
        assert_eq!(AspectRatio::of_frame(0, 7), None);
    }

    #[test]
    fn operations_parse_with_prefix_and_case() {
        assert_eq!(Operation::parse("pipeline:merge"), Some(Operation::Merge));
        assert_eq!(Operation::parse("generateimage"), Some(Operation::GenerateImage));
        assert_eq!(Operation::parse("explode"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.name()), Some(op));
        }
    }

    #[test]
    fn resolutions() {
        assert_eq!(parse_resolution("720p"), Some(720));
        assert_eq!(parse_resolution("4K"), Some(2160));
        assert_eq!(parse_resolution("huge"), None);
        assert_eq!(parse_resolution("1p"), None);
    }
}
