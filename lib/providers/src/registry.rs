//! The model registry: what each model is (provider, operation, output, how it completes, its
//! deadline), its own input schema, and how the unified params reach its fields. Each
//! provider module lists its models as `ModelSpec` entries: adding a model is one entry.

use std::time::Duration;

use serde_json::{Map, Value};

use reelay_core::domain::Completion;
use reelay_core::plan::{MediaKind, MediaRef, Operation, ProviderParams};
use reelay_core::ports::ModelInfo;

/// A unified param (the SDK's names) that a model may take under a name of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unified {
    Prompt,
    Duration,
    AspectRatio,
    Resolution,
    Seed,
    /// The `image` input (also `startImage` when the model has no field for it).
    Image,
    StartImage,
    EndImage,
    /// The `audio` / `audioUrl` input.
    Audio,
    /// The `video` / `videoUrl` input.
    Video,
}

/// The JSON a model's field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
    /// A media URL (a reference to another job's output is one, once resolved).
    Url,
    /// A list of media URLs (one input is sent as a one-item list).
    UrlList,
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
    /// Where each unified param goes.
    pub mapping: &'static [(Unified, &'static str)],
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

    fn build(&self, params: &ProviderParams, unresolved_ok: bool) -> Result<Map<String, Value>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut input = Map::new();
        let media = |r: &MediaRef| match r {
            MediaRef::Url(url) => Value::from(url.clone()),
            MediaRef::Job(id) => Value::from(format!("${id}")),
        };
        let inputs = &params.inputs;
        let unified: [(Unified, &str, Option<Value>); 10] = [
            (Unified::Prompt, "prompt", params.prompt.clone().map(Value::from)),
            (Unified::Duration, "duration", params.duration.map(Value::from)),
            (
                Unified::AspectRatio,
                "aspectRatio",
                params.aspect_ratio.map(|r| Value::from(r.to_string())),
            ),
            (
                Unified::Resolution,
                "resolution",
                params.resolution.clone().map(Value::from),
            ),
            (Unified::Seed, "seed", params.seed.map(Value::from)),
            (Unified::Image, "image", inputs.get("image").map(media)),
            (Unified::StartImage, "startImage", inputs.get("startImage").map(media)),
            (Unified::EndImage, "endImage", inputs.get("endImage").map(media)),
            (
                Unified::Audio,
                "audio",
                inputs.get("audio").or_else(|| inputs.get("audioUrl")).map(media),
            ),
            (
                Unified::Video,
                "video",
                inputs.get("video").or_else(|| inputs.get("videoUrl")).map(media),
            ),
        ];
        for (which, name, value) in unified {
            let Some(value) = value else { continue };
            let target = self
                .mapping
                .iter()
                .find(|(u, _)| *u == which)
                .map(|(_, f)| *f)
                .or_else(|| {
                    // A start image is the image for models with no separate field for it.
                    (which == Unified::StartImage)
                        .then(|| self.mapping.iter().find(|(u, _)| *u == Unified::Image).map(|(_, f)| *f))
                        .flatten()
                });
            match target {
                Some(field) => {
                    input.insert(field.to_string(), value);
                }
                None => problems.push((name.to_string(), format!("model `{}` does not take `{name}`", self.id))),
            }
        }
        // Raw params: the model's own names, as given.
        for (key, value) in &params.options {
            input.insert(key.clone(), value.clone());
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

/// Checks a value against a field type, converting where the meaning is plain (a duration
/// of 5.0 for an integer field, one URL for a list).
fn conform(ty: FieldType, value: &mut Value, unresolved_ok: bool) -> Result<(), String> {
    let is_url = |s: &str| {
        s.starts_with("https://")
            || s.starts_with("http://")
            || s.starts_with("data:")
            || (unresolved_ok && s.starts_with('$'))
    };
    match ty {
        FieldType::Any => Ok(()),
        FieldType::String => value.is_string().then_some(()).ok_or("must be a string".into()),
        FieldType::Boolean => value.is_boolean().then_some(()).ok_or("must be true or false".into()),
        FieldType::Number => value.is_number().then_some(()).ok_or("must be a number".into()),
        FieldType::Integer => to_integer(value).map(|n| *value = Value::from(n)),
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
        FieldType::UrlList => {
            if value.is_string() {
                *value = Value::Array(vec![value.take()]);
            }
            match value.as_array() {
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

/// Finds a model in a provider's list.
pub fn find<'a>(models: &'a [ModelSpec], id: &str) -> Option<&'a ModelSpec> {
    models.iter().find(|m| m.id == id)
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
            Field::optional("refs", FieldType::UrlList),
            Field::optional("fps", FieldType::Integer),
        ],
        mapping: &[
            (Unified::Prompt, "prompt"),
            (Unified::Image, "first_frame"),
            (Unified::Duration, "seconds"),
            (Unified::AspectRatio, "ratio"),
        ],
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
                "first_frame": "https://x/y.png", "refs": ["https://x/r.png"]})
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut p = params();
        p.prompt = None;
        p.duration = Some(7.0);
        p.seed = Some(1);
        p.options.insert("fps".into(), Value::from("fast"));
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
