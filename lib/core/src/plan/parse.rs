//! Wire forms → the canonical model, collecting every problem rather than stopping at the first.
//! Here: the request around the plan (its forms, options and limits), and the order of the stages.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::dag::BaseJobs;
use super::draft::Draft;
use super::model::{ExecutionRequest, JobSpec, Plan, Secret, WebhookTarget};
use super::strict::{self, KeyCheck};
use super::{dag, params, Catalog, PlanError};

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
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        vec![PlanError::new(
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )]
    })?;
    // serde_json keeps the last of a key given twice: the client meant one of them, which
    // cannot be told, so the body is refused.
    let duplicates = strict::duplicate_keys(body);
    if duplicates.is_empty() {
        Ok(root)
    } else {
        Err(duplicates
            .iter()
            .map(|path| strict::duplicate_key_error(&root, path))
            .collect())
    }
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
    let Some(root) = root.as_object() else {
        return Err(vec![PlanError::new("invalid_body", "the body must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let empty = Map::new();
    let options = read_options(root, &empty, &mut errors);
    let Some((plan_obj, plan_path)) = plan_object(root, &mut errors) else {
        return Err(errors);
    };
    check_request_keys(root, plan_obj, options, &mut errors);
    let mut id_sources = vec![(plan_obj, "baseExecutionId"), (options, "baseExecutionId")];
    if !std::ptr::eq(plan_obj, root) {
        id_sources.push((root, "baseExecutionId"));
    }
    let base_execution_id = first_string(&id_sources, &mut errors);
    let webhook = parse_webhook(root, options, &mut errors);
    let provider_api_keys = parse_provider_keys(options, &mut errors);
    let Some(raw_jobs) = jobs_array(plan_obj, plan_path, limits, &mut errors) else {
        return Err(errors);
    };
    let jobs = read_jobs(raw_jobs, catalog, base, &mut errors);
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

/// The keys of the request around the plan: the body, `executionPlan`, `options` and a
/// webhook object.
fn check_request_keys(
    root: &Map<String, Value>,
    plan: &Map<String, Value>,
    options: &Map<String, Value>,
    errors: &mut Vec<PlanError>,
) {
    const OPTIONS: &[&str] = &["webhook", "webhookSecret", "baseExecutionId", "providerApiKeys"];
    const WEBHOOK: &[&str] = &["url", "secret"];
    let mut check = KeyCheck::new(None, errors);
    if std::ptr::eq(plan, root) {
        check.object(
            root,
            "",
            &["jobs", "baseExecutionId", "webhook", "webhookSecret", "options"],
        );
    } else {
        check.object(
            root,
            "",
            &[
                "executionPlan",
                "options",
                "baseExecutionId",
                "webhook",
                "webhookSecret",
            ],
        );
        check.object(plan, "executionPlan", &["jobs", "baseExecutionId"]);
    }
    check.object(options, "options", OPTIONS);
    for (webhook, path) in [
        (root.get("webhook"), "webhook"),
        (options.get("webhook"), "options.webhook"),
    ] {
        if let Some(Value::Object(webhook)) = webhook {
            check.object(webhook, path, WEBHOOK);
        }
    }
}

/// `options`, or `empty` when there are none (or they are not an object: reported).
fn read_options<'a>(
    root: &'a Map<String, Value>,
    empty: &'a Map<String, Value>,
    errors: &mut Vec<PlanError>,
) -> &'a Map<String, Value> {
    match root.get("options") {
        None | Some(Value::Null) => empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            errors.push(PlanError::new("invalid_field", "`options` must be an object").field("options"));
            empty
        }
    }
}

/// The object holding the plan (`executionPlan`, or the body itself), and the prefix of its
/// fields in errors.
fn plan_object<'a>(
    root: &'a Map<String, Value>,
    errors: &mut Vec<PlanError>,
) -> Option<(&'a Map<String, Value>, &'static str)> {
    match root.get("executionPlan") {
        Some(Value::Object(p)) => Some((p, "executionPlan.")),
        Some(_) => {
            errors.push(PlanError::new("invalid_field", "`executionPlan` must be an object").field("executionPlan"));
            None
        }
        None => Some((root, "")),
    }
}

/// The plan's `jobs`, if they are a non-empty array within the limit.
fn jobs_array<'a>(
    plan: &'a Map<String, Value>,
    plan_path: &str,
    limits: PlanLimits,
    errors: &mut Vec<PlanError>,
) -> Option<&'a [Value]> {
    let problem = match plan.get("jobs") {
        Some(Value::Array(jobs)) if jobs.is_empty() => PlanError::new("empty_plan", "the plan has no jobs"),
        Some(Value::Array(jobs)) if jobs.len() > limits.max_jobs => PlanError::new(
            "too_many_jobs",
            format!("the plan has {} jobs; the limit is {}", jobs.len(), limits.max_jobs),
        ),
        Some(Value::Array(jobs)) => return Some(jobs),
        Some(_) => PlanError::new("invalid_field", "`jobs` must be an array"),
        None => PlanError::new("missing_field", "the plan has no `jobs` array"),
    };
    errors.push(problem.field(format!("{plan_path}jobs")));
    None
}

/// The stages of reading the jobs: each as sent, the graph they form, then their params.
fn read_jobs(
    raw_jobs: &[Value],
    catalog: &dyn Catalog,
    base: Option<&BaseJobs>,
    errors: &mut Vec<PlanError>,
) -> Vec<JobSpec> {
    let mut drafts: Vec<Draft> = raw_jobs
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| Draft::read(i, raw, errors))
        .collect();
    dag::check_dependencies(&drafts, base, errors);
    dag::infer_unwired_merges(&mut drafts);
    if errors.is_empty() {
        dag::check_cycle(&drafts, errors);
    }
    let kinds = dag::output_kinds(&drafts, base);
    if let Some(base) = base {
        dag::take_base_output(&mut drafts, &kinds, base);
    }
    drafts
        .iter()
        .filter_map(|draft| params::job_spec(draft, catalog, &kinds, errors))
        .collect()
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
