//! The model registry: what each model is (provider, operation, output, how it completes, its
//! deadline), its own input schema, and how the unified params reach its fields. Each
//! provider module lists its models as `ModelSpec` entries: adding a model is one entry.

use std::time::Duration;

use serde_json::{Map, Value};

use reelay_core::domain::Completion;
use reelay_core::plan::{reference, MediaKind, MediaRef, Operation, ProviderParams};
use reelay_core::ports::ModelInfo;

/// A unified param (the SDK's names) that a model may take under a name of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unified {
    Prompt,
    Duration,
    AspectRatio,
    Resolution,
    Seed,
    /// The `image` input (also `startImage` when the model has no field for it). A list of
    /// images (`image: [url, …]`) arrives among the raw options under the same name.
    Image,
    StartImage,
    EndImage,
    /// The `audio` / `audioUrl` input.
    Audio,
    /// The `video` / `videoUrl` input.
    Video,
    /// `cameraMotion`: `fixed` or `dynamic`.
    CameraMotion,
    /// `outputFormat` of image models (`jpg`, `png`, `webp`).
    OutputFormat,
    /// `outputType` of background removal (`green-screen`, `transparent`, `alpha-mask`,
    /// `foreground-mask`).
    OutputType,
    /// `backgroundColor` of background removal: applied by reelay after the model
    /// (`reelay_core::background`), so removal models drop it.
    BackgroundColor,
}

impl Unified {
    /// The param's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Unified::Prompt => "prompt",
            Unified::Duration => "duration",
            Unified::AspectRatio => "aspectRatio",
            Unified::Resolution => "resolution",
            Unified::Seed => "seed",
            Unified::Image => "image",
            Unified::StartImage => "startImage",
            Unified::EndImage => "endImage",
            Unified::Audio => "audio",
            Unified::Video => "video",
            Unified::CameraMotion => "cameraMotion",
            Unified::OutputFormat => "outputFormat",
            Unified::OutputType => "outputType",
            Unified::BackgroundColor => "backgroundColor",
        }
    }
}

/// The JSON a model's field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Number,
    Integer,
    /// A whole number from the first to the second, both included.
    IntRange(i64, i64),
    Boolean,
    /// A media URL (a reference to another job's output is one, once resolved).
    Url,
    /// A list of at most this many media URLs (one input is sent as a one-item list).
    UrlList(usize),
    /// One of these strings (a whole number is taken as its text: fal's `"5"`/`"10"` durations).
    OneOf(&'static [&'static str]),
    /// One of these whole numbers (durations such models accept).
    OneOfInt(&'static [i64]),
    /// Anything (objects, arrays): passed through.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

impl Field {
    pub const fn required(name: &'static str, ty: FieldType) -> Field {
        Field {
            name,
            ty,
            required: true,
        }
    }
    pub const fn optional(name: &'static str, ty: FieldType) -> Field {
        Field {
            name,
            ty,
            required: false,
        }
    }
}

/// A constant a mapping or a default writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lit {
    Str(&'static str),
    Bool(bool),
}

impl Lit {
    fn value(self) -> Value {
        match self {
            Lit::Str(s) => Value::from(s),
            Lit::Bool(b) => Value::from(b),
        }
    }
}

/// Where a unified param goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// This field of the model, the value as given.
    Field(&'static str),
    /// This field, with the values listed translated (`jpg` → `jpeg`); others as given.
    Translated(&'static str, &'static [(&'static str, Lit)]),
    /// Nowhere: the SDK's mapping leaves it out for this model, so it is accepted and dropped.
    Dropped,
    /// Nowhere, but only these values are accepted: reelay makes them from the one output
    /// the model gives (nateraw's green screen); others ask for what it cannot give.
    DroppedIf(&'static [&'static str]),
}

/// One unified param's way to a model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub from: Unified,
    pub to: To,
}

impl Mapping {
    pub const fn field(from: Unified, field: &'static str) -> Mapping {
        Mapping {
            from,
            to: To::Field(field),
        }
    }
    pub const fn translated(from: Unified, field: &'static str, values: &'static [(&'static str, Lit)]) -> Mapping {
        Mapping {
            from,
            to: To::Translated(field, values),
        }
    }
    pub const fn dropped(from: Unified) -> Mapping {
        Mapping { from, to: To::Dropped }
    }
    pub const fn dropped_if(from: Unified, values: &'static [&'static str]) -> Mapping {
        Mapping {
            from,
            to: To::DroppedIf(values),
        }
    }

    /// The model's field it fills, if any.
    pub fn target(&self) -> Option<&'static str> {
        match self.to {
            To::Field(f) | To::Translated(f, _) => Some(f),
            To::Dropped | To::DroppedIf(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The id plans use (`bytedance/seedance-1-pro`).
    pub id: &'static str,
    /// The provider's own pin of the model, when calls need one (a Replicate version id).
    pub version: Option<&'static str>,
    pub operations: &'static [Operation],
    pub output: MediaKind,
    pub completion: Completion,
    pub deadline: Duration,
    /// The model's input fields (its schema).
    pub fields: &'static [Field],
    /// Where each unified param goes; one left out goes to the field of its own name, if any.
    pub mapping: &'static [Mapping],
    /// Values fields take when the job gives none (the SDK's mapping, or the model's docs).
    pub defaults: &'static [(&'static str, Lit)],
    /// `(field, endpoint)`: an input with that field goes to that endpoint of the model
    /// instead of `id` (fal's nano-banana edits images at `…/edit`).
    pub variants: &'static [(&'static str, &'static str)],
}

/// One problem, as `(field relative to params, message)`.
pub type Problem = (String, String);

impl ModelSpec {
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            id: self.id.to_string(),
            operations: self.operations.to_vec(),
            output: self.output,
            completion: self.completion.clone(),
            deadline: self.deadline,
        }
    }

    /// The model's input for a job: the unified params under the model's names, then the
    /// raw params (`unified: false`, or extra params) as given; all checked against the
    /// schema. Media references must be resolved to URLs first (`check` accepts them).
    pub fn input(&self, params: &ProviderParams) -> Result<Map<String, Value>, Vec<Problem>> {
        self.build(params, false)
    }

    /// The schema problems of a job's params, before its references are resolved.
    pub fn check(&self, params: &ProviderParams) -> Vec<Problem> {
        self.build(params, true).err().unwrap_or_default()
    }

    /// The endpoint an input goes to: `id`, or the variant its fields ask for.
    pub fn endpoint(&self, input: &Map<String, Value>) -> &'static str {
        self.variants
            .iter()
            .find(|(field, _)| input.contains_key(*field))
            .map_or(self.id, |(_, endpoint)| endpoint)
    }

    fn mapping_of(&self, which: Unified) -> Option<&Mapping> {
        self.mapping.iter().find(|m| m.from == which)
    }

    fn build(&self, params: &ProviderParams, unresolved_ok: bool) -> Result<Map<String, Value>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut input = Map::new();
        let mut options = params.options.clone();
        let media = |r: &MediaRef| match r {
            MediaRef::Url(url) => Value::from(url.clone()),
            MediaRef::Job(id) => Value::from(format!("${id}")),
        };
        let inputs = &params.inputs;
        // In precedence order: a later one overwrites an earlier one mapped to the same field
        // (seedance's `startImage` wins over `image`), except a start image standing in for
        // the image (fabric's `image` wins over `startImage`).
        let typed: [(Unified, Option<Value>); 14] = [
            (Unified::Prompt, params.prompt.clone().map(Value::from)),
            (Unified::Duration, params.duration.map(Value::from)),
            (
                Unified::AspectRatio,
                params.aspect_ratio.map(|r| Value::from(r.to_string())),
            ),
            (Unified::Resolution, params.resolution.clone().map(Value::from)),
            (Unified::Seed, params.seed.map(Value::from)),
            (Unified::Image, inputs.get("image").map(media)),
            (Unified::StartImage, inputs.get("startImage").map(media)),
            (Unified::EndImage, inputs.get("endImage").map(media)),
            (
                Unified::Audio,
                inputs.get("audio").or_else(|| inputs.get("audioUrl")).map(media),
            ),
            (
                Unified::Video,
                inputs.get("video").or_else(|| inputs.get("videoUrl")).map(media),
            ),
            (Unified::CameraMotion, None),
            (Unified::OutputFormat, None),
            (Unified::OutputType, None),
            (Unified::BackgroundColor, None),
        ];
        for (which, value) in typed {
            // Unified params the plan does not type (and image lists) are among the options.
            let Some(value) = value.or_else(|| options.remove(which.name())) else {
                continue;
            };
            let name = which.name();
            let (mapping, stand_in) = match self.mapping_of(which) {
                Some(m) => (Some(*m), false),
                // A start image is the image for models with no separate field for it.
                None if which == Unified::StartImage => (self.mapping_of(Unified::Image).copied(), true),
                // Else the model's field of the same name, if it has one.
                None => (
                    self.fields
                        .iter()
                        .find(|f| f.name == name)
                        .map(|f| Mapping::field(which, f.name)),
                    false,
                ),
            };
            let Some(mapping) = mapping else {
                problems.push((name.to_string(), format!("model `{}` does not take `{name}`", self.id)));
                continue;
            };
            if let To::DroppedIf(accepted) = mapping.to {
                if !(value.is_null() || value.as_str().is_some_and(|s| accepted.contains(&s))) {
                    let only = accepted.join(" or ");
                    problems.push((
                        name.to_string(),
                        format!("model `{}` takes `{name}` {only} only, not {value}", self.id),
                    ));
                    continue;
                }
            }
            let value = match mapping.to {
                To::Translated(_, values) => value
                    .as_str()
                    .and_then(|s| values.iter().find(|(from, _)| *from == s))
                    .map_or(value.clone(), |(_, to)| to.value()),
                _ => value,
            };
            if let Some(field) = mapping.target() {
                if !(stand_in && input.contains_key(field)) {
                    input.insert(field.to_string(), value);
                }
            }
        }
        // Raw params: the model's own names, as given; the camelCase spelling the SDK's docs
        // use (`cameraFixed`) stands for the snake_case field (`camera_fixed`).
        for (key, value) in options {
            let known = |name: &str| self.fields.iter().any(|f| f.name == name);
            let key = match snake_case(&key) {
                Some(snake) if !known(&key) && known(&snake) => snake,
                _ => key,
            };
            input.insert(key, value);
        }
        for (field, value) in self.defaults {
            if !input.contains_key(*field) {
                input.insert(field.to_string(), value.value());
            }
        }
        for (key, value) in input.iter_mut() {
            let Some(field) = self.fields.iter().find(|f| f.name == key) else {
                let names: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
                problems.push((
                    key.clone(),
                    format!(
                        "model `{}` has no input `{key}`; its inputs: {}",
                        self.id,
                        names.join(", ")
                    ),
                ));
                continue;
            };
            if let Err(why) = conform(field.ty, value, unresolved_ok) {
                problems.push((key.clone(), format!("`{key}` of model `{}` {why}", self.id)));
            }
        }
        for field in self.fields.iter().filter(|f| f.required) {
            if !input.contains_key(field.name) {
                problems.push((
                    field.name.to_string(),
                    format!("model `{}` needs `{}`", self.id, field.name),
                ));
            }
        }
        if problems.is_empty() {
            Ok(input)
        } else {
            Err(problems)
        }
    }
}

/// `cameraFixed` → `camera_fixed`; `None` for a name with no capital.
fn snake_case(name: &str) -> Option<String> {
    name.contains(|c: char| c.is_ascii_uppercase()).then(|| {
        name.chars().fold(String::new(), |mut out, c| {
            if c.is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            out
        })
    })
}

/// Checks a value against a field type, converting where the meaning is plain (a duration
/// of 5.0 for an integer field, one URL for a list).
fn conform(ty: FieldType, value: &mut Value, unresolved_ok: bool) -> Result<(), String> {
    // Before references are resolved, a job's output stands for a URL: `$job` from the typed
    // inputs, or the SDK's markers left in raw options (image lists).
    let is_url = |s: &str| {
        s.starts_with("https://")
            || s.starts_with("http://")
            || s.starts_with("data:")
            || (unresolved_ok && reference(s).is_some())
    };
    match ty {
        FieldType::Any => Ok(()),
        FieldType::String => value.is_string().then_some(()).ok_or("must be a string".into()),
        FieldType::Boolean => value.is_boolean().then_some(()).ok_or("must be true or false".into()),
        FieldType::Number => value.is_number().then_some(()).ok_or("must be a number".into()),
        FieldType::Integer => to_integer(value).map(|n| *value = Value::from(n)),
        FieldType::IntRange(min, max) => {
            let n = to_integer(value)?;
            if (min..=max).contains(&n) {
                *value = Value::from(n);
                Ok(())
            } else {
                Err(format!("must be from {min} to {max}, not {n}"))
            }
        }
        FieldType::OneOfInt(allowed) => {
            let n = to_integer(value)?;
            if allowed.contains(&n) {
                *value = Value::from(n);
                Ok(())
            } else {
                Err(format!("must be one of {allowed:?}, not {n}"))
            }
        }
        FieldType::OneOf(allowed) => {
            if let Some(n) = value.is_number().then(|| to_integer(value).ok()).flatten() {
                if allowed.contains(&n.to_string().as_str()) {
                    *value = Value::from(n.to_string());
                }
            }
            match value.as_str() {
                Some(s) if allowed.contains(&s) => Ok(()),
                _ => Err(format!("must be one of {}, not {value}", allowed.join(", "))),
            }
        }
        FieldType::Url => match value.as_str() {
            Some(s) if is_url(s) => Ok(()),
            _ => Err("must be an http(s) URL or an output of another job".into()),
        },
        FieldType::UrlList(max) => {
            if value.is_string() {
                *value = Value::Array(vec![value.take()]);
            }
            match value.as_array() {
                Some(items) if items.len() > max => Err(format!("takes at most {max} URLs, not {}", items.len())),
                Some(items) if items.iter().all(|v| v.as_str().is_some_and(is_url)) => Ok(()),
                _ => Err("must be a list of http(s) URLs".into()),
            }
        }
    }
}

fn to_integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("must be a whole number, not {n}")),
        // Some models document numbers as strings ("5"); accept them.
        Value::String(s) => s.parse().map_err(|_| format!("must be a whole number, not \"{s}\"")),
        other => Err(format!("must be a whole number, not {other}")),
    }
}

/// The model each operation that needs one runs when a job names none, unless the operator
/// chooses another (`REELAY_DEFAULT_MODELS`): `(operation, provider, model id)`.
pub const DEFAULT_MODELS: &[(Operation, &str, &str)] = &[
    // A video and a voice in, the video lip-synced out: what the SDK's chained `lipSync()` is.
    (Operation::LipSync, "fal", "veed/lipsync"),
    // A green screen unless the job's `outputType` says otherwise.
    (
        Operation::RemoveBackground,
        "replicate",
        "arielreplicate/robust_video_matting",
    ),
    (
        Operation::RemoveImageBackground,
        "replicate",
        "codeplugtech/background_remover",
    ),
    (Operation::Transcribe, "replicate", "openai/whisper"),
];

/// Models the SDK lists under a provider that is not the one running them:
/// `(provider named, model id, provider that runs it)`.
pub const ROUTES: &[(&str, &str, &str)] = &[("replicate", "elevenlabs/turbo-v2.5", "elevenlabs")];

/// Finds a model in a provider's list.
pub fn find<'a>(models: &'a [ModelSpec], id: &str) -> Option<&'a ModelSpec> {
    models.iter().find(|m| m.id == id)
}

/// Checks a provider's table: every mapping, default and variant names a field of the model,
/// and no two models share an id.
#[cfg(test)]
pub(crate) fn assert_well_formed(models: &[ModelSpec]) {
    for spec in models {
        let named = spec
            .mapping
            .iter()
            .filter_map(Mapping::target)
            .chain(spec.defaults.iter().map(|(f, _)| *f))
            .chain(spec.variants.iter().map(|(f, _)| *f));
        for field in named {
            assert!(spec.fields.iter().any(|f| f.name == field), "{}: {field}", spec.id);
        }
        assert_eq!(models.iter().filter(|m| m.id == spec.id).count(), 1, "{}", spec.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::AspectRatio;

    const TEST_MODEL: ModelSpec = ModelSpec {
        id: "acme/video",
        version: None,
        operations: &[Operation::Generate],
        output: MediaKind::Video,
        completion: Completion::Webhook,
        deadline: Duration::from_secs(3600),
        fields: &[
            Field::required("prompt", FieldType::String),
            Field::optional("first_frame", FieldType::Url),
            Field::optional("seconds", FieldType::OneOfInt(&[5, 10])),
            Field::optional("ratio", FieldType::OneOf(&["16:9", "9:16"])),
            Field::optional("refs", FieldType::UrlList(2)),
            Field::optional("fps", FieldType::IntRange(1, 60)),
            Field::optional("still", FieldType::Boolean),
            Field::optional("format", FieldType::OneOf(&["jpeg", "png"])),
            Field::optional("look_ahead", FieldType::Boolean),
        ],
        mapping: &[
            Mapping::field(Unified::Prompt, "prompt"),
            Mapping::field(Unified::Image, "first_frame"),
            Mapping::field(Unified::Duration, "seconds"),
            Mapping::field(Unified::AspectRatio, "ratio"),
            Mapping::translated(
                Unified::CameraMotion,
                "still",
                &[("fixed", Lit::Bool(true)), ("dynamic", Lit::Bool(false))],
            ),
            Mapping::translated(Unified::OutputFormat, "format", &[("jpg", Lit::Str("jpeg"))]),
            Mapping::dropped(Unified::Resolution),
        ],
        defaults: &[("still", Lit::Bool(false))],
        variants: &[("refs", "acme/video/with-refs")],
    };

    fn params() -> ProviderParams {
        ProviderParams {
            duration: Some(5.0),
            aspect_ratio: Some(AspectRatio { w: 9, h: 16 }),
            ..ProviderParams::prompt("acme", "acme/video", "a fox")
        }
    }

    #[test]
    fn unified_params_reach_the_models_own_fields() {
        let mut p = params();
        p.inputs
            .insert("startImage".into(), MediaRef::Url("https://x/y.png".into()));
        p.options.insert("refs".into(), Value::from("https://x/r.png"));
        let input = TEST_MODEL.input(&p).unwrap();
        assert_eq!(
            Value::Object(input),
            serde_json::json!({"prompt": "a fox", "seconds": 5, "ratio": "9:16",
                "first_frame": "https://x/y.png", "refs": ["https://x/r.png"], "still": false})
        );
    }

    #[test]
    fn values_translate_drop_default_and_alias() {
        let mut p = params();
        p.resolution = Some("1080p".into());
        p.options.insert("cameraMotion".into(), Value::from("fixed"));
        p.options.insert("outputFormat".into(), Value::from("jpg"));
        p.options.insert("lookAhead".into(), Value::from(true));
        let input = TEST_MODEL.input(&p).unwrap();
        assert_eq!(
            Value::Object(input.clone()),
            serde_json::json!({"prompt": "a fox", "seconds": 5, "ratio": "9:16", "still": true,
                "format": "jpeg", "look_ahead": true})
        );
        assert_eq!(TEST_MODEL.endpoint(&input), "acme/video");
        // Absent, the default; a value with no translation passes as given.
        p.options.remove("cameraMotion");
        p.options.insert("outputFormat".into(), Value::from("png"));
        let input = TEST_MODEL.input(&p).unwrap();
        assert_eq!(
            (&input["still"], &input["format"]),
            (&Value::from(false), &Value::from("png"))
        );
        // A list of images among the options; one field's presence picks the variant.
        p.options.insert(
            "refs".into(),
            serde_json::json!(["https://x/1.png", "_imageJobDependency:still"]),
        );
        assert_eq!(TEST_MODEL.check(&p), vec![]);
        p.options
            .insert("refs".into(), serde_json::json!(["https://x/1.png", "https://x/2.png"]));
        assert_eq!(
            TEST_MODEL.endpoint(&TEST_MODEL.input(&p).unwrap()),
            "acme/video/with-refs"
        );
        p.options.insert("refs".into(), Value::from(vec!["https://x/1.png"; 3]));
        assert!(TEST_MODEL.check(&p)[0].1.contains("at most 2"));
    }

    #[test]
    fn a_start_image_stands_in_for_the_image_without_overriding_it() {
        let mut p = params();
        p.inputs
            .insert("startImage".into(), MediaRef::Url("https://x/start.png".into()));
        assert_eq!(TEST_MODEL.input(&p).unwrap()["first_frame"], "https://x/start.png");
        p.inputs
            .insert("image".into(), MediaRef::Url("https://x/image.png".into()));
        assert_eq!(TEST_MODEL.input(&p).unwrap()["first_frame"], "https://x/image.png");
    }

    #[test]
    fn every_problem_is_named() {
        let mut p = params();
        p.prompt = None;
        p.duration = Some(7.0);
        p.seed = Some(1);
        p.options.insert("fps".into(), Value::from(61));
        p.options.insert("colour".into(), Value::from("red"));
        let problems = TEST_MODEL.check(&p);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        for expected in ["seed", "seconds", "fps", "colour", "prompt"] {
            assert!(fields.contains(&expected), "{expected} not reported: {problems:?}");
        }
        assert!(problems
            .iter()
            .any(|(_, m)| m.contains("its inputs: prompt, first_frame")));
    }

    #[test]
    fn unresolved_references_pass_the_check_but_not_the_input() {
        let mut p = params();
        p.inputs.insert("image".into(), MediaRef::Job("still".into()));
        assert_eq!(TEST_MODEL.check(&p), vec![]);
        assert!(TEST_MODEL.input(&p).is_err());
    }
}
