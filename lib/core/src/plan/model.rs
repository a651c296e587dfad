//! The canonical plan model: every wire form of `api-compat.md` parses into these types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::captions::CaptionStyle;
use super::frame::AspectRatio;
use super::layer::LayerParams;
use crate::domain::TimedWord;

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
    /// How an edit's output is encoded (`quality` on a merge, reframe, captions or layer).
    #[serde(default)]
    pub quality: Quality,
}

/// How an edit's output is encoded: the trade of time for fidelity a plan may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Fast and small, for previews.
    Draft,
    #[default]
    Standard,
    /// Slower, and near transparent to the eye.
    High,
}

impl Quality {
    pub const ALL: [Quality; 3] = [Quality::Draft, Quality::Standard, Quality::High];

    pub fn name(self) -> &'static str {
        match self {
            Quality::Draft => "draft",
            Quality::Standard => "standard",
            Quality::High => "high",
        }
    }

    pub fn parse(name: &str) -> Option<Quality> {
        Quality::ALL.into_iter().find(|q| q.name() == name)
    }
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
    /// The steps of a code-to-video workflow's scene (`crate::scenes`); plans cannot name them.
    GenerateSceneCode,
    ValidateSceneCode,
    RenderScene,
    UploadScene,
}

impl Operation {
    /// The operations a plan may name.
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
            Operation::GenerateSceneCode => "generateSceneCode",
            Operation::ValidateSceneCode => "validateSceneCode",
            Operation::RenderScene => "renderScene",
            Operation::UploadScene => "uploadScene",
        }
    }

    /// A plan's operation: accepts `generate`, `pipeline:generate`, and any ASCII case.
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
            Operation::GenerateSceneCode | Operation::ValidateSceneCode => MediaKind::Code,
            _ => MediaKind::Video,
        }
    }

    /// Operations carried out by an AI provider (as opposed to ffmpeg here).
    pub fn is_provider_operation(self) -> bool {
        !matches!(
            self,
            Operation::Merge
                | Operation::Reframe
                | Operation::AddSubtitles
                | Operation::Layer
                | Operation::ValidateSceneCode
                | Operation::RenderScene
                | Operation::UploadScene
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
    /// Source code (a Manim scene).
    Code,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Transcript => "transcript",
            MediaKind::Code => "code",
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
    Layer(LayerParams),
    Subtitles(SubtitlesParams),
    /// A job of the base execution (`baseExecutionId`), reused: its output becomes this job's.
    Base(BaseRef),
    /// A code-to-video scene's step after its code is written (validate, render, upload).
    Scene(SceneParams),
}

/// A scene step's params: which job's output it reads, and the scene it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SceneParams {
    /// The parent whose output this step reads: the code, or the render.
    pub input: JobId,
    /// The `Scene` subclass the code must define and the render renders.
    pub class_name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
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
    pub kind: TransitionKind,
    pub duration: f64,
}

/// How one visual item of a merge gives way to the next. On the wire: its `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    /// Through black.
    Fade,
    /// One picture dissolving into the next.
    Crossfade,
    /// `crossfade` by its other name: a variant of its own so that a plan reads back as sent.
    Dissolve,
    WipeLeft,
    WipeRight,
    SlideLeft,
    SlideRight,
}

impl TransitionKind {
    pub const ALL: [TransitionKind; 7] = [
        TransitionKind::Fade,
        TransitionKind::Crossfade,
        TransitionKind::Dissolve,
        TransitionKind::WipeLeft,
        TransitionKind::WipeRight,
        TransitionKind::SlideLeft,
        TransitionKind::SlideRight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TransitionKind::Fade => "fade",
            TransitionKind::Crossfade => "crossfade",
            TransitionKind::Dissolve => "dissolve",
            TransitionKind::WipeLeft => "wipeleft",
            TransitionKind::WipeRight => "wiperight",
            TransitionKind::SlideLeft => "slideleft",
            TransitionKind::SlideRight => "slideright",
        }
    }

    /// Accepts any ASCII case.
    pub fn parse(raw: &str) -> Option<TransitionKind> {
        TransitionKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(raw))
    }
}

/// `addSubtitles`: captions timed by a transcript, burned into a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubtitlesParams {
    pub video: MediaRef,
    pub transcript: TranscriptSource,
    pub style: CaptionStyle,
}

/// Where a caption job's words come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum TranscriptSource {
    /// Given in the plan, `[{word, start, end}]` in seconds.
    Words(Vec<TimedWord>),
    /// A transcript file (JSON, SRT, WebVTT) at a URL, or a job's output: a transcript, or
    /// speech that carries its word timings.
    Media(MediaRef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReframeParams {
    pub input: MediaRef,
    pub aspect_ratio: AspectRatio,
    pub mode: ReframeMode,
    /// Short side of the output frame in pixels (1080 unless `resolution` says otherwise).
    pub short_side: u32,
}

/// How to fit a picture into a frame of another shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReframeMode {
    /// Scale to cover the frame, then cut the overflow equally on both sides.
    Crop,
    /// Scale to fit inside the frame, then centre it on black bars.
    Pad,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn transition_kinds_parse_in_any_case_and_serialise_as_their_names() {
        assert_eq!(TransitionKind::parse("CrossFade"), Some(TransitionKind::Crossfade));
        assert_eq!(TransitionKind::parse("WIPELEFT"), Some(TransitionKind::WipeLeft));
        assert_eq!(TransitionKind::parse("dissolve"), Some(TransitionKind::Dissolve));
        assert_eq!(TransitionKind::parse("zoom"), None);
        assert_eq!(TransitionKind::parse(""), None);
        for kind in TransitionKind::ALL {
            assert_eq!(TransitionKind::parse(kind.name()), Some(kind));
            let wire = serde_json::to_value(kind).expect("a kind serialises");
            assert_eq!(wire, serde_json::json!(kind.name()));
            assert_eq!(serde_json::from_value::<TransitionKind>(wire).ok(), Some(kind));
        }
    }
}
