//! Each job as read from the wire, before its params are typed.

use serde_json::{Map, Value};

use super::model::{JobId, Operation};
use super::references::collect_references;
use super::strict::{id_problem, KeyCheck};
use super::PlanError;

/// A job as read from the wire, before its params are typed.
/// Where a video transform may name its input (`inputs[0]` last).
pub(super) const VIDEO_INPUT_KEYS: [&str; 5] = ["video", "videoUrl", "url", "input", "inputs"];

pub(super) struct Draft {
    pub(super) id: String,
    /// `None` when the operation is missing or unknown (already reported): the job still
    /// takes part in the id and dependency checks, so other jobs do not report it as missing.
    pub(super) operation: Option<Operation>,
    pub(super) params: Map<String, Value>,
    /// Dependencies with the field that named them (`dependsOn[0]`, `params.items[1].url`).
    pub(super) deps: Vec<(String, String)>,
}

impl Draft {
    /// Job `index` of the plan; `None` when it has no usable id (reported).
    pub(super) fn read(index: usize, raw: &Value, errors: &mut Vec<PlanError>) -> Option<Draft> {
        let at = format!("jobs[{index}]");
        let Some(obj) = raw.as_object() else {
            errors.push(PlanError::new("invalid_job", format!("{at} must be an object")).field(at));
            return None;
        };
        let Some(id) = read_id(obj, &at, errors) else {
            // Its keys are still checked, the job named by its place in the array.
            KeyCheck::new(None, errors).job(obj, None, &at);
            return None;
        };
        let operation = read_operation(obj, &id, errors);
        KeyCheck::new(Some(id.as_str()), errors).job(obj, operation, "");
        let params = read_params(obj, &id, errors);
        let mut deps = read_dependencies(obj, &id, errors);
        collect_references(&params, &mut deps);
        Some(Draft {
            id,
            operation,
            params,
            deps,
        })
    }

    /// A video transform that names no input: its input is then its video dependency.
    pub(super) fn needs_video_input(&self) -> bool {
        matches!(
            self.operation,
            Some(Operation::Reframe | Operation::LipSync | Operation::RemoveBackground | Operation::AddSubtitles)
        ) && !VIDEO_INPUT_KEYS
            .iter()
            .any(|k| self.params.get(*k).is_some_and(|v| !v.is_null()))
    }

    pub(super) fn dep_ids(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = Vec::new();
        for (d, _) in &self.deps {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }
}

/// The job's id, if it has a usable one (else reported, naming the job by its place `at`).
fn read_id(obj: &Map<String, Value>, at: &str, errors: &mut Vec<PlanError>) -> Option<String> {
    match obj.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => match id_problem(id) {
            None => Some(id.clone()),
            // The id is not echoed: it may not print, or print as something else.
            Some(why) => {
                errors
                    .push(PlanError::new("invalid_job_id", format!("the id of {at} {why}")).field(format!("{at}.id")));
                None
            }
        },
        Some(Value::String(_)) | None => {
            errors.push(PlanError::new("missing_field", format!("{at} has no `id`")).field(format!("{at}.id")));
            None
        }
        Some(_) => {
            errors.push(PlanError::new("invalid_field", format!("{at}.id must be a string")).field(format!("{at}.id")));
            None
        }
    }
}

fn read_operation(obj: &Map<String, Value>, id: &str, errors: &mut Vec<PlanError>) -> Option<Operation> {
    match obj.get("type").or_else(|| obj.get("operation")) {
        Some(Value::String(name)) => {
            let operation = Operation::parse(name);
            if operation.is_none() {
                errors.push(PlanError::in_job(
                    "unknown_operation",
                    id,
                    "type",
                    format_args!(
                        "unknown operation `{name}`; known: {}",
                        Operation::ALL.map(Operation::name).join(", ")
                    ),
                ));
            }
            operation
        }
        _ => {
            errors.push(
                PlanError::new(
                    "missing_field",
                    format!("job `{id}` has no `type` (or `operation`) string"),
                )
                .job(id)
                .field("type"),
            );
            None
        }
    }
}

/// How deeply a param value may nest. JSON bodies are already limited to 128 levels by the
/// parser; a `Value` built in code is not, and clone, drop and serialisation all recurse.
const MAX_PARAM_DEPTH: usize = 128;

/// The job's params, without those nested too deeply (reported).
fn read_params(obj: &Map<String, Value>, id: &str, errors: &mut Vec<PlanError>) -> Map<String, Value> {
    match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => {
            let mut params = Map::new();
            for (key, value) in p {
                if nests_deeper_than(value, MAX_PARAM_DEPTH) {
                    errors.push(PlanError::in_job(
                        "invalid_param",
                        id,
                        format!("params.{key}"),
                        format_args!("`{key}` nests more than {MAX_PARAM_DEPTH} levels deep"),
                    ));
                } else {
                    params.insert(key.clone(), value.clone());
                }
            }
            params
        }
        Some(_) => {
            errors.push(PlanError::in_job(
                "invalid_field",
                id,
                "params",
                "`params` must be an object",
            ));
            Map::new()
        }
    }
}

/// Whether arrays and objects nest more than `limit` levels inside `value`, without recursion.
fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    // `depth`: how many arrays and objects enclose the value.
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Array(_) | Value::Object(_) if depth >= limit => return true,
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    false
}

/// The explicit dependencies (`dependsOn`, or `dependencies`), with the field naming each.
fn read_dependencies(obj: &Map<String, Value>, id: &str, errors: &mut Vec<PlanError>) -> Vec<(String, String)> {
    let field = if obj.contains_key("dependsOn") {
        "dependsOn"
    } else {
        "dependencies"
    };
    let mut deps = Vec::new();
    match obj.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, dep) in list.iter().enumerate() {
                match dep {
                    Value::String(d) => deps.push((d.clone(), format!("{field}[{i}]"))),
                    _ => errors.push(PlanError::in_job(
                        "invalid_field",
                        id,
                        format!("{field}[{i}]"),
                        "dependencies must be job id strings",
                    )),
                }
            }
        }
        Some(_) => errors.push(PlanError::in_job(
            "invalid_field",
            id,
            field,
            format_args!("`{field}` must be an array"),
        )),
    }
    deps
}
