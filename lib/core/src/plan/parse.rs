//! Wire forms → the canonical model, collecting every problem rather than stopping at the first.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::model::*;
use super::{Catalog, ModelLookup, PlanError};

/// Limits a plan must stay within.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    pub max_jobs: usize,
    pub max_body_bytes: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_jobs: 500,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What a plan may refer to in the base execution it builds on (`baseExecutionId`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseJobs {
    /// The base's jobs and what each produces.
    pub kinds: HashMap<JobId, MediaKind>,
    /// The base's final job: the input of a variant's root job that needs a video and names none.
    pub final_job: JobId,
}

/// Parses and validates a `POST /api/execute` body in any of its forms.
pub fn parse_request(
    body: &[u8],
    catalog: &dyn Catalog,
    limits: PlanLimits,
) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_value(&read_body(body, limits)?, catalog, limits)
}

/// The body as JSON, within the size limit.
pub fn read_body(body: &[u8], limits: PlanLimits) -> Result<Value, Vec<PlanError>> {
    if body.len() > limits.max_body_bytes {
        return Err(vec![PlanError::new(
            "body_too_large",
            format!(
                "the request body is {} bytes; the limit is {} bytes",
                body.len(),
                limits.max_body_bytes
            ),
        )]);
    }
    serde_json::from_slice(body).map_err(|e| {
        vec![PlanError::new(
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )]
    })
}

/// The `baseExecutionId` a body asks for, wherever the client put it (the plan must then be
/// validated against that base's jobs).
pub fn requested_base(root: &Value) -> Option<String> {
    let plan = root.get("executionPlan").unwrap_or(root);
    [
        plan.get("baseExecutionId"),
        root.pointer("/options/baseExecutionId"),
        root.get("baseExecutionId"),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
}

pub fn parse_value(
    root: &Value,
    catalog: &dyn Catalog,
    limits: PlanLimits,
) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_value_on(root, catalog, limits, None)
}

/// Parses a plan that builds on a base execution: its job ids may be depended on and
/// referred to, and a root job that transforms a video and names no input takes the base's
/// final output.
pub fn parse_value_on(
    root: &Value,
    catalog: &dyn Catalog,
    limits: PlanLimits,
    base: Option<&BaseJobs>,
) -> Result<ExecutionRequest, Vec<PlanError>> {
    let mut errors = Vec::new();
    let Some(root) = root.as_object() else {
        return Err(vec![PlanError::new("invalid_body", "the body must be a JSON object")]);
    };
    let empty = Map::new();
    let options = match root.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            errors.push(PlanError::new("invalid_field", "`options` must be an object").field("options"));
            &empty
        }
    };
    let (plan_obj, plan_path) = match root.get("executionPlan") {
        Some(Value::Object(p)) => (p, "executionPlan."),
        Some(_) => {
            errors.push(PlanError::new("invalid_field", "`executionPlan` must be an object").field("executionPlan"));
            return Err(errors);
        }
        None => (root, ""),
    };

    let mut id_sources = vec![(plan_obj, "baseExecutionId"), (options, "baseExecutionId")];
    if !std::ptr::eq(plan_obj, root) {
        id_sources.push((root, "baseExecutionId"));
    }
    let base_execution_id = first_string(&id_sources, &mut errors);
    let webhook = parse_webhook(root, options, &mut errors);
    let provider_api_keys = parse_provider_keys(options, &mut errors);

    let raw_jobs = match plan_obj.get("jobs") {
        Some(Value::Array(jobs)) => jobs,
        Some(_) => {
            errors.push(PlanError::new("invalid_field", "`jobs` must be an array").field(format!("{plan_path}jobs")));
            return Err(errors);
        }
        None => {
            errors.push(
                PlanError::new("missing_field", "the plan has no `jobs` array").field(format!("{plan_path}jobs")),
            );
            return Err(errors);
        }
    };
    if raw_jobs.is_empty() {
        errors.push(PlanError::new("empty_plan", "the plan has no jobs").field(format!("{plan_path}jobs")));
        return Err(errors);
    }
    if raw_jobs.len() > limits.max_jobs {
        errors.push(
            PlanError::new(
                "too_many_jobs",
                format!("the plan has {} jobs; the limit is {}", raw_jobs.len(), limits.max_jobs),
            )
            .field(format!("{plan_path}jobs")),
        );
        return Err(errors);
    }

    let drafts: Vec<Option<Draft>> = raw_jobs
        .iter()
        .enumerate()
        .map(|(i, raw)| Draft::read(i, raw, &mut errors))
        .collect();
    let in_base = |id: &str| base.is_some_and(|b| b.kinds.contains_key(id));

    // Ids: duplicates, and the set every reference is checked against.
    let mut seen = HashSet::new();
    for draft in drafts.iter().flatten() {
        if !seen.insert(draft.id.as_str()) {
            errors.push(
                PlanError::new(
                    "duplicate_job_id",
                    format!("job id `{}` is used more than once", draft.id),
                )
                .job(&draft.id)
                .field("id"),
            );
        }
    }
    for draft in drafts.iter().flatten() {
        for (dep, field) in &draft.deps {
            if dep == &draft.id {
                errors.push(
                    PlanError::new("self_dependency", format!("job `{}` depends on itself", draft.id))
                        .job(&draft.id)
                        .field(field.clone()),
                );
            } else if !seen.contains(dep.as_str()) && !in_base(dep) {
                let code = if field.starts_with("params") {
                    "unknown_reference"
                } else {
                    "unknown_dependency"
                };
                let scope = if base.is_some() {
                    "the plan or its base execution"
                } else {
                    "the plan"
                };
                errors.push(
                    PlanError::new(
                        code,
                        format!("job `{}` refers to `{dep}`, which is not in {scope}", draft.id),
                    )
                    .job(&draft.id)
                    .field(field.clone()),
                );
            }
        }
    }

    let mut drafts: Vec<Draft> = drafts.into_iter().flatten().collect();
    infer_unwired_merges(&mut drafts);
    if errors.is_empty() {
        if let Some(cycle) = find_cycle(&drafts) {
            errors.push(
                PlanError::new(
                    "cycle",
                    format!("the jobs {} form a dependency cycle", cycle.join(" → ")),
                )
                .job(&cycle[0])
                .field("dependsOn"),
            );
        }
    }

    let mut kinds: HashMap<String, Option<MediaKind>> = drafts
        .iter()
        .map(|d| (d.id.clone(), d.operation.map(Operation::output_kind)))
        .collect();
    if let Some(base) = base {
        for (id, kind) in &base.kinds {
            kinds.entry(id.clone()).or_insert(Some(*kind));
        }
        // A variant's video transform with no video to work on takes the base's final output.
        for draft in drafts.iter_mut() {
            let has_video_dep = draft
                .deps
                .iter()
                .any(|(d, _)| matches!(kinds.get(d), Some(Some(MediaKind::Video))));
            if draft.needs_video_input() && !has_video_dep {
                draft.deps.push((base.final_job.clone(), "params.video".to_string()));
            }
        }
    }
    let mut jobs = Vec::with_capacity(drafts.len());
    for draft in &drafts {
        if let Some(job) = draft.typed(catalog, &kinds, &mut errors) {
            jobs.push(job);
        }
    }

    if errors.is_empty() {
        Ok(ExecutionRequest {
            plan: Plan { jobs },
            base_execution_id,
            webhook,
            provider_api_keys,
        })
    } else {
        Err(errors)
    }
}

fn first_string(sources: &[(&Map<String, Value>, &str)], errors: &mut Vec<PlanError>) -> Option<String> {
    for (obj, key) in sources {
        match obj.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(_) => {
                errors.push(PlanError::new("invalid_field", format!("`{key}` must be a non-empty string")).field(*key))
            }
        }
    }
    None
}

fn parse_webhook<'a>(
    root: &'a Map<String, Value>,
    options: &'a Map<String, Value>,
    errors: &mut Vec<PlanError>,
) -> Option<WebhookTarget> {
    let raw = root.get("webhook").or_else(|| options.get("webhook"))?;
    // A secret that is not a string is an error: dropping it would send unsigned webhooks.
    let mut secret_at = |value: Option<&'a Value>, field: &str| match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(PlanError::new("invalid_field", format!("`{field}` must be a string")).field(field));
            None
        }
    };
    let loose_secret = match options.get("webhookSecret") {
        Some(v) => secret_at(Some(v), "options.webhookSecret"),
        None => secret_at(root.get("webhookSecret"), "webhookSecret"),
    };
    let (url, secret) = match raw {
        Value::Null => return None,
        Value::String(url) => (url.as_str(), loose_secret),
        Value::Object(o) => match o.get("url").and_then(Value::as_str) {
            Some(url) => (url, secret_at(o.get("secret"), "webhook.secret").or(loose_secret)),
            None => {
                errors.push(PlanError::new("invalid_field", "`webhook.url` must be a string").field("webhook.url"));
                return None;
            }
        },
        _ => {
            errors.push(PlanError::new("invalid_field", "`webhook` must be a URL or {url, secret}").field("webhook"));
            return None;
        }
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        errors.push(PlanError::new("invalid_field", "`webhook.url` must be an http(s) URL").field("webhook.url"));
        return None;
    }
    Some(WebhookTarget {
        url: url.to_string(),
        secret: secret.filter(|s| !s.is_empty()).map(Secret::new),
    })
}

fn parse_provider_keys(options: &Map<String, Value>, errors: &mut Vec<PlanError>) -> BTreeMap<String, Secret> {
    let mut keys = BTreeMap::new();
    match options.get("providerApiKeys") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (provider, key) in o {
                match key {
                    Value::String(k) if !k.is_empty() => {
                        keys.insert(provider.clone(), Secret::new(k.clone()));
                    }
                    Value::Null => {}
                    // The value is a secret: name the field, never echo it.
                    _ => errors.push(
                        PlanError::new("invalid_field", "provider API keys must be strings")
                            .field(format!("options.providerApiKeys.{provider}")),
                    ),
                }
            }
        }
        Some(_) => errors.push(
            PlanError::new("invalid_field", "`providerApiKeys` must be an object").field("options.providerApiKeys"),
        ),
    }
    keys
}

/// A job as read from the wire, before its params are typed.
struct Draft {
    id: String,
    /// `None` when the operation is missing or unknown (already reported): the job still
    /// takes part in the id and dependency checks, so other jobs do not report it as missing.
    operation: Option<Operation>,
    params: Map<String, Value>,
    /// Dependencies with the field that named them (`dependsOn[0]`, `params.items[1].url`).
    deps: Vec<(String, String)>,
}

impl Draft {
    fn read(index: usize, raw: &Value, errors: &mut Vec<PlanError>) -> Option<Draft> {
        let at = format!("jobs[{index}]");
        let Some(obj) = raw.as_object() else {
            errors.push(PlanError::new("invalid_job", format!("{at} must be an object")).field(at));
            return None;
        };
        let id = match obj.get("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            Some(Value::String(_)) | None => {
                errors.push(PlanError::new("missing_field", format!("{at} has no `id`")).field(format!("{at}.id")));
                return None;
            }
            Some(_) => {
                errors.push(
                    PlanError::new("invalid_field", format!("{at}.id must be a string")).field(format!("{at}.id")),
                );
                return None;
            }
        };
        let op_raw = obj.get("type").or_else(|| obj.get("operation"));
        let operation = match op_raw {
            Some(Value::String(name)) => match Operation::parse(name) {
                Some(op) => Some(op),
                None => {
                    errors.push(
                        PlanError::new(
                            "unknown_operation",
                            format!(
                                "job `{id}`: unknown operation `{name}`; known: {}",
                                Operation::ALL.map(Operation::name).join(", ")
                            ),
                        )
                        .job(&id)
                        .field("type"),
                    );
                    None
                }
            },
            _ => {
                errors.push(
                    PlanError::new(
                        "missing_field",
                        format!("job `{id}` has no `type` (or `operation`) string"),
                    )
                    .job(&id)
                    .field("type"),
                );
                None
            }
        };
        let params = match obj.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => {
                let mut params = Map::new();
                for (key, value) in p {
                    if nests_deeper_than(value, MAX_PARAM_DEPTH) {
                        errors.push(
                            PlanError::new(
                                "invalid_param",
                                format!("job `{id}`: `{key}` nests more than {MAX_PARAM_DEPTH} levels deep"),
                            )
                            .job(&id)
                            .field(format!("params.{key}")),
                        );
                    } else {
                        params.insert(key.clone(), value.clone());
                    }
                }
                params
            }
            Some(_) => {
                errors.push(
                    PlanError::new("invalid_field", format!("job `{id}`: `params` must be an object"))
                        .job(&id)
                        .field("params"),
                );
                Map::new()
            }
        };
        let mut deps: Vec<(String, String)> = Vec::new();
        let dep_field = if obj.contains_key("dependsOn") {
            "dependsOn"
        } else {
            "dependencies"
        };
        match obj.get(dep_field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, dep) in list.iter().enumerate() {
                    match dep {
                        Value::String(d) => deps.push((d.clone(), format!("{dep_field}[{i}]"))),
                        _ => errors.push(
                            PlanError::new(
                                "invalid_field",
                                format!("job `{id}`: dependencies must be job id strings"),
                            )
                            .job(&id)
                            .field(format!("{dep_field}[{i}]")),
                        ),
                    }
                }
            }
            Some(_) => errors.push(
                PlanError::new("invalid_field", format!("job `{id}`: `{dep_field}` must be an array"))
                    .job(&id)
                    .field(dep_field),
            ),
        }
        collect_references(&params, &mut deps);
        Some(Draft {
            id,
            operation,
            params,
            deps,
        })
    }

    /// A video transform that names no input: its input is then its video dependency.
    fn needs_video_input(&self) -> bool {
        matches!(
            self.operation,
            Some(Operation::Reframe | Operation::LipSync | Operation::RemoveBackground | Operation::AddSubtitles)
        ) && !VIDEO_INPUT_KEYS
            .iter()
            .any(|k| self.params.get(*k).is_some_and(|v| !v.is_null()))
    }

    fn dep_ids(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = Vec::new();
        for (d, _) in &self.deps {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    fn typed(
        &self,
        catalog: &dyn Catalog,
        kinds: &HashMap<String, Option<MediaKind>>,
        errors: &mut Vec<PlanError>,
    ) -> Option<JobSpec> {
        let mut p = ParamReader {
            job: &self.id,
            params: &self.params,
            errors,
            failed: false,
        };
        let operation = self.operation?;
        let params = match operation {
            Operation::Merge => Params::Merge(p.merge(kinds)),
            Operation::Reframe => Params::Reframe(p.reframe(&self.dep_ids(), kinds)?),
            Operation::AddSubtitles | Operation::Layer => {
                p.fail(
                    PlanError::new(
                        "unsupported_operation",
                        format!("job `{}`: `{operation}` is not supported by this server yet", self.id),
                    )
                    .field("type"),
                );
                return None;
            }
            op => Params::Provider(p.provider(op, catalog, &self.dep_ids(), kinds)?),
        };
        let send_job_webhook = p.bool("sendJobWebhook").unwrap_or(false);
        if p.failed {
            return None;
        }
        Some(JobSpec {
            id: self.id.clone(),
            operation,
            params,
            depends_on: self.dep_ids(),
            send_job_webhook,
        })
    }
}

/// How deeply a param value may nest. JSON bodies are already limited to 128 levels by the
/// parser; a `Value` built in code is not, and clone, drop and serialisation all recurse.
const MAX_PARAM_DEPTH: usize = 128;

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

/// Where a video transform may name its input (`inputs[0]` last).
const VIDEO_INPUT_KEYS: [&str; 5] = ["video", "videoUrl", "url", "input", "inputs"];

/// Finds `$job1` and `_videoJobDependency:job1`-style markers anywhere in params, in document
/// order, without recursion.
fn collect_references(params: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    // Entries in reverse, so that popping the stack visits them in order. A provider key is a
    // secret, never a reference, and never echoed.
    fn entries<'v>(o: &'v Map<String, Value>, path: &str) -> Vec<(&'v Value, String)> {
        o.iter()
            .rev()
            .filter(|(k, _)| *k != "apiKey")
            .map(|(k, v)| (v, format!("{path}.{k}")))
            .collect()
    }
    let mut stack: Vec<(&Value, String)> = entries(params, "params");
    while let Some((value, path)) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(id) = reference(s) {
                    out.push((id.to_string(), path));
                }
            }
            Value::Array(items) => {
                stack.extend(items.iter().enumerate().rev().map(|(i, v)| (v, format!("{path}[{i}]"))))
            }
            Value::Object(o) => stack.extend(entries(o, &path)),
            _ => {}
        }
    }
}

/// The job id a reference string points at, if it is one.
pub fn reference(s: &str) -> Option<&str> {
    if let Some(id) = s.strip_prefix('$') {
        return (!id.is_empty() && !id.contains(char::is_whitespace)).then_some(id);
    }
    let (marker, id) = s.split_once(':')?;
    let marker = marker.strip_prefix('_')?;
    // `_jobDependency:` (generic) or `_<kind>JobDependency:` (`_videoJobDependency:`, ...).
    let kind = if marker == "jobDependency" {
        ""
    } else {
        marker.strip_suffix("JobDependency")?
    };
    (kind.chars().all(|c| c.is_ascii_alphabetic()) && !id.is_empty()).then_some(id)
}

/// `compose(sceneA, sceneB, merge())` sends a merge with no items and no dependencies; its
/// documented intent is "merge the scenes before me": the preceding jobs nothing else consumes.
fn infer_unwired_merges(drafts: &mut [Draft]) {
    for i in 0..drafts.len() {
        let d = &drafts[i];
        let empty_items = match d.params.get("items") {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if d.operation != Some(Operation::Merge) || !empty_items || !d.deps.is_empty() {
            continue;
        }
        let consumed: HashSet<String> = drafts.iter().flat_map(|d| d.dep_ids()).collect();
        let unconsumed: Vec<String> = drafts[..i]
            .iter()
            .filter(|p| !consumed.contains(&p.id))
            .map(|p| p.id.clone())
            .collect();
        let merge = &mut drafts[i];
        let items: Vec<Value> = unconsumed
            .iter()
            .map(|id| serde_json::json!({ "url": format!("${id}") }))
            .collect();
        for (n, id) in unconsumed.iter().enumerate() {
            merge.deps.push((id.clone(), format!("params.items[{n}].url")));
        }
        merge.params.insert("items".into(), Value::Array(items));
    }
}

/// A cycle's job ids, in order, if the graph has one.
fn find_cycle(drafts: &[Draft]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = drafts.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> = drafts
        .iter()
        .map(|d| {
            d.dep_ids()
                .iter()
                .filter_map(|dep| index.get(dep.as_str()).copied())
                .collect()
        })
        .collect();
    // Iterative DFS: 0 = unvisited, 1 = on stack, 2 = done. Plans may be 500 deep: no recursion.
    let mut state = vec![0u8; drafts.len()];
    for start in 0..drafts.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = edges[node].get(*next) {
                *next += 1;
                match state[dep] {
                    0 => {
                        state[dep] = 1;
                        stack.push((dep, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..].iter().map(|(n, _)| drafts[*n].id.clone()).collect();
                        cycle.reverse();
                        cycle.push(cycle[0].clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

struct ParamReader<'a> {
    job: &'a str,
    params: &'a Map<String, Value>,
    errors: &'a mut Vec<PlanError>,
    failed: bool,
}

impl ParamReader<'_> {
    fn fail(&mut self, error: PlanError) {
        self.failed = true;
        self.errors.push(error.job(self.job));
    }

    fn invalid(&mut self, field: &str, message: impl std::fmt::Display) {
        let msg = format!("job `{}`: `{field}` {message}", self.job);
        self.fail(PlanError::new("invalid_param", msg).field(format!("params.{field}")));
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.params.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => {
                self.invalid(key, "must be a string");
                None
            }
        }
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.params.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            _ => {
                self.invalid(key, "must be true or false");
                None
            }
        }
    }

    /// A finite number in `range`, described for the error message.
    fn number_in(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        ok: fn(f64) -> bool,
        what: &str,
    ) -> Option<f64> {
        match obj.get(key)? {
            Value::Null => None,
            Value::Number(n) => match n.as_f64() {
                Some(v) if v.is_finite() && ok(v) => Some(v),
                _ => {
                    self.invalid(path, format_args!("must be {what}"));
                    None
                }
            },
            _ => {
                self.invalid(path, format_args!("must be a number ({what})"));
                None
            }
        }
    }

    fn aspect_ratio(&mut self, key: &str) -> Option<AspectRatio> {
        let raw = self.string(key)?;
        let parsed = AspectRatio::parse(&raw);
        if parsed.is_none() {
            self.invalid(
                key,
                format_args!("must be a ratio like `16:9`, `9:16`, `1:1` or `4:5`, not `{raw}`"),
            );
        }
        parsed
    }

    fn media_ref(&mut self, value: &Value, path: &str) -> Option<MediaRef> {
        match value {
            Value::String(s) => match reference(s) {
                Some(id) => Some(MediaRef::Job(id.to_string())),
                None if is_url(s) => Some(MediaRef::Url(s.clone())),
                None => {
                    self.invalid(path, "must be an http(s) URL or a job reference such as `$job1`");
                    None
                }
            },
            _ => {
                self.invalid(path, "must be a URL or job reference string");
                None
            }
        }
    }

    fn provider(
        &mut self,
        op: Operation,
        catalog: &dyn Catalog,
        deps: &[JobId],
        kinds: &HashMap<String, Option<MediaKind>>,
    ) -> Option<ProviderParams> {
        let unified = self.bool("unified").unwrap_or(true);
        let model_obj = match self.params.get("model") {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let from_model = |key: &str| {
            model_obj
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let provider = self.string("provider").or_else(|| from_model("provider"));
        let model_id = self.string("modelId").or_else(|| from_model("modelId"));
        if provider.is_none() {
            self.fail(
                PlanError::new(
                    "missing_field",
                    format!("job `{}`: `{op}` needs a `provider`", self.job),
                )
                .field("params.provider"),
            );
        }
        if model_id.is_none() {
            self.fail(
                PlanError::new("missing_field", format!("job `{}`: `{op}` needs a `modelId`", self.job))
                    .field("params.modelId"),
            );
        }
        let (Some(provider), Some(model_id)) = (provider, model_id) else {
            return None;
        };
        match catalog.lookup(&provider, &model_id) {
            ModelLookup::UnknownProvider(known) => {
                self.fail(
                    PlanError::new(
                        "unknown_provider",
                        format!(
                            "job `{}`: unknown provider `{provider}`; available: {}",
                            self.job,
                            known.join(", ")
                        ),
                    )
                    .field("params.provider"),
                );
                return None;
            }
            ModelLookup::UnknownModel(known) => {
                self.fail(
                    PlanError::new(
                        "unknown_model",
                        format!(
                            "job `{}`: provider `{provider}` has no model `{model_id}`; available: {}",
                            self.job,
                            known.join(", ")
                        ),
                    )
                    .field("params.modelId"),
                );
                return None;
            }
            ModelLookup::Found(model) if !model.operations.contains(&op) => {
                self.fail(
                    PlanError::new(
                        "unsupported_model_operation",
                        format!("job `{}`: model `{provider}/{model_id}` cannot `{op}`", self.job),
                    )
                    .field("params.modelId"),
                );
                return None;
            }
            ModelLookup::Found(_) => {}
        }
        let prompt = self.string("prompt");
        let duration = self.number_in(
            self.params,
            "duration",
            "duration",
            |v| v > 0.0 && v <= 600.0,
            "greater than 0 and at most 600 seconds",
        );
        let resolution = self.string("resolution");
        if let Some(r) = &resolution {
            if parse_resolution(r).is_none() {
                self.invalid(
                    "resolution",
                    format_args!("must be like `480p`, `720p`, `1080p` or `4k`, not `{r}`"),
                );
            }
        }
        let aspect_ratio = self.aspect_ratio("aspectRatio");
        let seed = match self.params.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(s) => Some(s),
                None => {
                    self.invalid("seed", "must be an integer");
                    None
                }
            },
        };
        let mut inputs = BTreeMap::new();
        for key in [
            "image",
            "audio",
            "startImage",
            "endImage",
            "video",
            "videoUrl",
            "audioUrl",
        ] {
            if let Some(v) = self.params.get(key).filter(|v| !v.is_null()) {
                if let Some(r) = self.media_ref(v, key) {
                    inputs.insert(key.to_string(), r);
                }
            }
        }
        // The chained form (`lipSync` after `generate`): no reference, only a dependency.
        if matches!(op, Operation::LipSync | Operation::RemoveBackground)
            && !inputs.contains_key("video")
            && !inputs.contains_key("videoUrl")
        {
            if let Some(dep) = deps
                .iter()
                .find(|d| matches!(kinds.get(*d), Some(Some(MediaKind::Video))))
            {
                inputs.insert("video".to_string(), MediaRef::Job(dep.clone()));
            }
        }
        const KNOWN: [&str; 18] = [
            "provider",
            "modelId",
            "prompt",
            "duration",
            "resolution",
            "aspectRatio",
            "seed",
            "image",
            "audio",
            "startImage",
            "endImage",
            "video",
            "videoUrl",
            "audioUrl",
            "unified",
            "model",
            "sendJobWebhook",
            "apiKey",
        ];
        let mut options: Map<String, Value> = model_obj
            .and_then(|m| m.get("options"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in self.params {
            if !KNOWN.contains(&k.as_str()) {
                options.insert(k.clone(), v.clone());
            }
        }
        // A provider key may sit in params, in `model`, or among the model's raw options;
        // wherever it is, it leaves the params here so it can only be stored sealed.
        let in_model = options.remove("apiKey");
        let api_key = [
            self.params.get("apiKey"),
            model_obj.and_then(|m| m.get("apiKey")),
            in_model.as_ref(),
        ]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|k| !k.is_empty()).map(Secret::new));
        let params = ProviderParams {
            api_key,
            provider,
            model_id,
            prompt,
            duration,
            resolution,
            aspect_ratio,
            seed,
            inputs,
            unified,
            options,
        };
        for (field, message) in catalog.check(&params) {
            self.fail(
                PlanError::new("invalid_model_params", format!("job `{}`: {message}", self.job))
                    .field(format!("params.{field}")),
            );
        }
        Some(params)
    }

    fn merge(&mut self, kinds: &HashMap<String, Option<MediaKind>>) -> MergeParams {
        let mut items = Vec::new();
        match self.params.get("items") {
            Some(Value::Array(raw)) => {
                for (i, item) in raw.iter().enumerate() {
                    let path = format!("items[{i}]");
                    let obj = match item {
                        Value::Object(o) => o.clone(),
                        // A bare URL or reference is an item too.
                        Value::String(_) => Map::from_iter([("url".to_string(), item.clone())]),
                        _ => {
                            self.invalid(&path, "must be an object {url, type?, duration?, offset?, volume?}");
                            continue;
                        }
                    };
                    let Some(url) = obj.get("url").or_else(|| obj.get("media")) else {
                        self.invalid(&format!("{path}.url"), "is missing");
                        continue;
                    };
                    let Some(source) = self.media_ref(url, &format!("{path}.url")) else {
                        continue;
                    };
                    let kind = match obj.get("type") {
                        None | Some(Value::Null) => match &source {
                            MediaRef::Job(id) => kinds.get(id).copied().flatten(),
                            MediaRef::Url(_) => None,
                        },
                        Some(Value::String(t)) if t == "video" => Some(MediaKind::Video),
                        Some(Value::String(t)) if t == "image" => Some(MediaKind::Image),
                        Some(Value::String(t)) if t == "audio" => Some(MediaKind::Audio),
                        Some(Value::String(other)) => {
                            self.invalid(
                                &format!("{path}.type"),
                                format_args!("must be `video`, `image` or `audio`, not `{other}`"),
                            );
                            None
                        }
                        Some(_) => {
                            self.invalid(
                                &format!("{path}.type"),
                                "must be the string `video`, `image` or `audio`",
                            );
                            None
                        }
                    };
                    if kind == Some(MediaKind::Transcript) {
                        self.invalid(&format!("{path}.url"), "refers to a transcript, which cannot be merged");
                    }
                    let duration = self.number_in(
                        &obj,
                        "duration",
                        &format!("{path}.duration"),
                        |v| v > 0.0 && v <= 3600.0,
                        "greater than 0 seconds",
                    );
                    let offset = self.number_in(
                        &obj,
                        "offset",
                        &format!("{path}.offset"),
                        |v| (0.0..=3600.0).contains(&v),
                        "at least 0 seconds",
                    );
                    let volume = self.number_in(
                        &obj,
                        "volume",
                        &format!("{path}.volume"),
                        |v| (0.0..=10.0).contains(&v),
                        "between 0 and 10",
                    );
                    items.push(MergeItem {
                        source,
                        kind,
                        duration,
                        offset,
                        volume,
                    });
                }
            }
            _ => self.invalid("items", "must be a non-empty array"),
        }
        if items.is_empty() && !self.failed {
            self.invalid("items", "must list at least one video or image");
        } else if !items.is_empty() && items.iter().all(|i| i.kind == Some(MediaKind::Audio)) {
            self.invalid(
                "items",
                "must contain at least one video or image: audio is mixed over them",
            );
        }
        let transition_name = self.string("transition");
        let add = self.bool("addTransitions").unwrap_or(false);
        let duration = self
            .number_in(
                self.params,
                "transitionDuration",
                "transitionDuration",
                |v| v > 0.0 && v <= 10.0,
                "greater than 0 and at most 10 seconds",
            )
            .unwrap_or(0.5);
        let transition = match (transition_name, add) {
            (Some(name), _) if TRANSITIONS.contains(&name.to_ascii_lowercase().as_str()) => Some(Transition {
                kind: name.to_ascii_lowercase(),
                duration,
            }),
            (Some(name), _) => {
                self.invalid(
                    "transition",
                    format_args!("must be one of {}, not `{name}`", TRANSITIONS.join(", ")),
                );
                None
            }
            (None, true) => Some(Transition {
                kind: "fade".into(),
                duration,
            }),
            (None, false) => None,
        };
        MergeParams { items, transition }
    }

    fn reframe(&mut self, deps: &[JobId], kinds: &HashMap<String, Option<MediaKind>>) -> Option<ReframeParams> {
        let Some(aspect_ratio) = self.aspect_ratio("aspectRatio") else {
            if !self.failed {
                self.fail(
                    PlanError::new(
                        "missing_field",
                        format!("job `{}`: `reframe` needs an `aspectRatio`", self.job),
                    )
                    .field("params.aspectRatio"),
                );
            }
            return None;
        };
        let explicit = VIDEO_INPUT_KEYS[..4]
            .iter()
            .find_map(|k| self.params.get(*k).map(|v| (v, k.to_string())))
            .or_else(|| match self.params.get("inputs") {
                Some(Value::Array(a)) => a.first().map(|v| (v, "inputs[0]".to_string())),
                _ => None,
            });
        let input = match explicit {
            Some((value, path)) => self.media_ref(value, &path)?,
            // The documented chain form: no reference, only `dependsOn`; take the media dependency.
            None => match deps
                .iter()
                .find(|d| matches!(kinds.get(*d), Some(Some(MediaKind::Video))))
            {
                Some(dep) => MediaRef::Job(dep.clone()),
                // A dependency whose operation is unknown (already reported) may be the video.
                None if deps.iter().any(|d| kinds.get(d) == Some(&None)) => return None,
                None => {
                    self.fail(
                        PlanError::new(
                            "missing_input",
                            format!(
                                "job `{}`: `reframe` needs a video: give `video` or depend on a video job",
                                self.job
                            ),
                        )
                        .field("params.video"),
                    );
                    return None;
                }
            },
        };
        let mode = match self.string("mode").or_else(|| self.string("fit")).as_deref() {
            None | Some("crop") | Some("cover") => ReframeMode::Crop,
            Some("pad") | Some("contain") | Some("fit") => ReframeMode::Pad,
            Some(other) => {
                self.invalid("mode", format_args!("must be `crop` or `pad`, not `{other}`"));
                return None;
            }
        };
        let short_side = match self.string("resolution") {
            None => 1080,
            Some(r) => match parse_resolution(&r) {
                Some(n) => n,
                None => {
                    self.invalid("resolution", format_args!("must be like `720p` or `1080p`, not `{r}`"));
                    return None;
                }
            },
        };
        Some(ReframeParams {
            input,
            aspect_ratio,
            mode,
            short_side,
        })
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://") || s.starts_with("data:")
}
