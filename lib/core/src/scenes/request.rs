//! A workflow request (`POST /api/workflows/generate-video`) read and turned into a plan:
//! per scene, code generation → validation → render → upload, and in multi mode one merge
//! of every scene's upload, in order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::brief::SceneBrief;
use crate::plan::{
    duplicate_keys, suggest, JobSpec, MediaRef, MergeItem, MergeParams, Operation, Params, Plan, ProviderParams,
    Quality, SceneParams, Transition, TransitionKind,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowMode {
    Single,
    Multi,
}

impl WorkflowMode {
    pub fn name(self) -> &'static str {
        match self {
            WorkflowMode::Single => "single",
            WorkflowMode::Multi => "multi",
        }
    }
}

/// One scene to write and render.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpec {
    pub name: String,
    pub prompt: String,
    pub order: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRequest {
    pub mode: WorkflowMode,
    pub title: Option<String>,
    pub context: Option<String>,
    /// In `order`.
    pub scenes: Vec<SceneSpec>,
    pub transition: Option<Transition>,
    /// Target length of each scene, seconds.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub webhook: Option<String>,
    pub webhook_secret: Option<String>,
}

/// A refused request: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WorkflowError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> WorkflowError {
    WorkflowError {
        code: "invalid_request",
        field: field.into(),
        message: message.into(),
    }
}

const MAX_SCENES: usize = 20;
const MAX_PROMPT_CHARS: usize = 4_000;
const MAX_CONTEXT_CHARS: usize = 8_000;
const DEFAULT_TRANSITION_SECS: f64 = 0.5;

impl WorkflowRequest {
    pub fn parse(body: &[u8]) -> Result<WorkflowRequest, WorkflowError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| invalid("body", format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(invalid("body", "must be a JSON object"));
        };
        if let Some(path) = duplicate_keys(body).first() {
            return Err(invalid(path.clone(), "is given more than once"));
        }
        known_keys(&obj, "", REQUEST_KEYS)?;
        let mode = match obj.get("mode").and_then(Value::as_str) {
            Some("single") => WorkflowMode::Single,
            Some("multi") => WorkflowMode::Multi,
            Some(other) => return Err(invalid("mode", format!("`{other}` is not `single` or `multi`"))),
            None => return Err(invalid("mode", "required: `single` or `multi`")),
        };
        let context = text(&obj, "context", MAX_CONTEXT_CHARS)?;
        let (title, scenes) = match mode {
            WorkflowMode::Single => {
                let prompt = text(&obj, "prompt", MAX_PROMPT_CHARS)?.ok_or_else(|| invalid("prompt", "required"))?;
                let name = text(&obj, "sceneName", 200)?.unwrap_or_else(|| "Main".into());
                (None, vec![SceneSpec { name, prompt, order: 1 }])
            }
            WorkflowMode::Multi => {
                let title = text(&obj, "title", 200)?.ok_or_else(|| invalid("title", "required"))?;
                (Some(title), scenes(&obj)?)
            }
        };
        let transition = match mode {
            WorkflowMode::Single => None,
            WorkflowMode::Multi => transition(&obj)?,
        };
        let portrait = match obj.get("aspectRatio").and_then(Value::as_str) {
            None | Some("16:9") => false,
            Some("9:16") => true,
            Some(other) => return Err(invalid("aspectRatio", format!("`{other}` is not `16:9` or `9:16`"))),
        };
        let (short, fps): (u32, u32) = match obj.get("quality").map(|q| q.as_str().unwrap_or_default()) {
            None | Some("1080p30") => (1080, 30),
            Some("1080p60") => (1080, 60),
            Some("720p30") => (720, 30),
            Some("480p15") => (480, 15),
            Some(other) => {
                return Err(invalid(
                    "quality",
                    format!("`{other}` is not one of 1080p30, 1080p60, 720p30, 480p15"),
                ))
            }
        };
        // Even, as the encoder needs: 480p is 854 wide.
        let long = (short * 16).div_ceil(9).next_multiple_of(2);
        let (width, height) = if portrait { (short, long) } else { (long, short) };
        let duration = match obj.get("duration") {
            None => 5.0,
            Some(v) => v
                .as_f64()
                .filter(|d| (1.0..=60.0).contains(d))
                .ok_or_else(|| invalid("duration", "must be a number of seconds from 1 to 60"))?,
        };
        let webhook = text(&obj, "webhook", 2048)?;
        let webhook_secret = text(&obj, "webhookSecret", 512)?;
        Ok(WorkflowRequest {
            mode,
            title,
            context,
            scenes,
            transition,
            duration,
            width,
            height,
            fps,
            webhook,
            webhook_secret,
        })
    }

    /// The run's plan: each scene's four steps, then (multi) the merge. `writer`: the provider
    /// and model that write the code.
    pub fn plan(&self, writer: (&str, &str)) -> Plan {
        let mut jobs = Vec::new();
        for (i, scene) in self.scenes.iter().enumerate() {
            let ids = SceneJobIds::new(i + 1);
            let brief = SceneBrief {
                prompt: scene.prompt.clone(),
                scene_name: scene.name.clone(),
                class_name: class_name(&scene.name, i + 1),
                context: self.context.clone(),
                duration: self.duration,
                width: self.width,
                height: self.height,
                repairs: Vec::new(),
            };
            let mut code = ProviderParams::prompt(writer.0, writer.1, &scene.prompt);
            brief.put_into(&mut code);
            let step = |input: &str| SceneParams {
                input: input.to_string(),
                class_name: brief.class_name.clone(),
                width: self.width,
                height: self.height,
                fps: self.fps,
            };
            jobs.push(spec(
                &ids.code,
                Operation::GenerateSceneCode,
                Params::Provider(code),
                None,
            ));
            jobs.push(spec(
                &ids.validate,
                Operation::ValidateSceneCode,
                Params::Scene(step(&ids.code)),
                Some(&ids.code),
            ));
            jobs.push(spec(
                &ids.render,
                Operation::RenderScene,
                Params::Scene(step(&ids.validate)),
                Some(&ids.validate),
            ));
            jobs.push(spec(
                &ids.upload,
                Operation::UploadScene,
                Params::Scene(step(&ids.render)),
                Some(&ids.render),
            ));
        }
        if self.mode == WorkflowMode::Multi {
            let uploads: Vec<String> = (1..=self.scenes.len()).map(|n| SceneJobIds::new(n).upload).collect();
            let merge = MergeParams {
                items: uploads
                    .iter()
                    .map(|id| MergeItem {
                        source: MediaRef::Job(id.clone()),
                        kind: None,
                        duration: None,
                        offset: None,
                        volume: None,
                    })
                    .collect(),
                transition: self.transition.clone(),
            };
            jobs.push(JobSpec {
                id: MERGE_JOB.into(),
                operation: Operation::Merge,
                params: Params::Merge(merge),
                depends_on: uploads,
                send_job_webhook: false,
                quality: Quality::default(),
            });
        }
        Plan { jobs }
    }
}

/// The multi-mode run's last job.
pub const MERGE_JOB: &str = "merge";

/// The job ids of the `n`th scene (from 1, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneJobIds {
    pub code: String,
    pub validate: String,
    pub render: String,
    pub upload: String,
}

impl SceneJobIds {
    pub fn new(n: usize) -> SceneJobIds {
        let scene = format!("scene-{n}");
        SceneJobIds {
            code: format!("{scene}.code"),
            validate: format!("{scene}.validate"),
            render: format!("{scene}.render"),
            upload: format!("{scene}.upload"),
        }
    }
}

fn spec(id: &str, operation: Operation, params: Params, parent: Option<&String>) -> JobSpec {
    JobSpec {
        id: id.into(),
        operation,
        params,
        depends_on: parent.into_iter().cloned().collect(),
        send_job_webhook: false,
        quality: Quality::default(),
    }
}

/// A Python class name from a scene's name: its letters and digits in PascalCase, ending in
/// `Scene`; `Scene{n}` when nothing usable is left.
fn class_name(name: &str, n: usize) -> String {
    let mut out = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    // `Scene` itself would shadow the base class it derives from.
    if out.is_empty() || out == "Scene" || out.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("Scene{n}");
    }
    if !out.ends_with("Scene") {
        out.push_str("Scene");
    }
    out
}

/// The keys a request's top level may have.
const REQUEST_KEYS: &[&str] = &[
    "mode",
    "prompt",
    "sceneName",
    "context",
    "title",
    "scenes",
    "mergeOptions",
    "aspectRatio",
    "quality",
    "duration",
    "webhook",
    "webhookSecret",
];

/// Refuses a key outside `known`, naming the one probably meant, as plans do.
fn known_keys(obj: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), WorkflowError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(invalid(
            format!("{prefix}{key}"),
            match suggest(key, known) {
                Some(meant) => format!("unknown key; did you mean `{prefix}{meant}`?"),
                None => format!("unknown key; known: {}", known.join(", ")),
            },
        )),
    }
}

/// An optional string field, trimmed; present but empty, too long or not a string is refused.
fn text(obj: &Map<String, Value>, field: &str, max_chars: usize) -> Result<Option<String>, WorkflowError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(invalid(field, "must not be empty")),
        Some(Value::String(s)) if s.chars().count() > max_chars => {
            Err(invalid(field, format!("longer than {max_chars} characters")))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn scenes(obj: &Map<String, Value>) -> Result<Vec<SceneSpec>, WorkflowError> {
    let list = match obj.get("scenes") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(invalid("scenes", "must list at least one scene")),
        Some(_) => return Err(invalid("scenes", "must be an array")),
        None => return Err(invalid("scenes", "required")),
    };
    if list.len() > MAX_SCENES {
        return Err(invalid("scenes", format!("at most {MAX_SCENES} scenes")));
    }
    let mut scenes = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("scenes[{i}]");
        let Value::Object(scene) = item else {
            return Err(invalid(at, "must be an object"));
        };
        known_keys(scene, &format!("{at}."), &["name", "prompt", "order"])?;
        let field = |name: &str| format!("{at}.{name}");
        let name = text(scene, "name", 200)
            .map_err(|e| invalid(field("name"), e.message))?
            .ok_or_else(|| invalid(field("name"), "required"))?;
        let prompt = text(scene, "prompt", MAX_PROMPT_CHARS)
            .map_err(|e| invalid(field("prompt"), e.message))?
            .ok_or_else(|| invalid(field("prompt"), "required"))?;
        let order = match scene.get("order") {
            None => i as i64 + 1,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid(field("order"), "must be an integer"))?,
        };
        if let Some(j) = scenes.iter().position(|s: &SceneSpec| s.order == order) {
            return Err(invalid(
                field("order"),
                format!("{order} is also the order of scenes[{j}]"),
            ));
        }
        scenes.push(SceneSpec { name, prompt, order });
    }
    scenes.sort_by_key(|s| s.order);
    Ok(scenes)
}

fn transition(obj: &Map<String, Value>) -> Result<Option<Transition>, WorkflowError> {
    let options = match obj.get("mergeOptions") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid("mergeOptions", "must be an object")),
    };
    known_keys(
        options,
        "mergeOptions.",
        &["addTransitions", "transitionDuration", "transition"],
    )?;
    match options.get("addTransitions") {
        None | Some(Value::Bool(false)) => return Ok(None),
        Some(Value::Bool(true)) => {}
        Some(_) => return Err(invalid("mergeOptions.addTransitions", "must be a boolean")),
    }
    let duration = match options.get("transitionDuration") {
        None => DEFAULT_TRANSITION_SECS,
        Some(v) => v.as_f64().filter(|d| *d > 0.0 && *d <= 5.0).ok_or_else(|| {
            invalid(
                "mergeOptions.transitionDuration",
                "must be a number of seconds above 0 and at most 5",
            )
        })?,
    };
    let kind = match options.get("transition") {
        None => TransitionKind::Crossfade,
        Some(v) => v.as_str().and_then(TransitionKind::parse).ok_or_else(|| {
            invalid(
                "mergeOptions.transition",
                format!("one of {}", TransitionKind::ALL.map(TransitionKind::name).join(", ")),
            )
        })?,
    };
    Ok(Some(Transition { kind, duration }))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
