//! template.yaml's own invariants: what cfn-lint lets through (../shared/reference/local-aws.md)
//! and what this project relies on.
//!
//! - every SQS event reports partial batch failures, its batch size and window are within
//!   Lambda's limits, and its queue has a dead-letter queue and a visibility timeout of at least
//!   6x the consumer's timeout plus its batching window (AWS's advice for SQS event sources);
//!   a queue nobody reads is a dead-letter queue or has one too; a function that sends to the
//!   queue it reads has `RecursiveLoop: Allow`;
//! - schedule expressions are `rate(N unit)` with the unit singular exactly when N is 1, a
//!   six-field `cron(...)`, or (EventBridge Scheduler only) `at(...)`;
//! - every function is a `provided.al2023` arm64 `bootstrap` built by cargo-lambda from a
//!   workspace member under functions/, or an arm64 container image (`PackageType: Image`, no
//!   Runtime or Handler) built from a Dockerfile around such a member's bootstrap; it logs
//!   JSON, has an explicit policy, and no environment variable carries a secret;
//! - no Allow statement grants a wildcard action or resource, or a DynamoDB Scan;
//! - every `Ref`, `GetAtt`, `Sub` and condition names a resource, parameter, pseudo parameter or
//!   condition that exists, and a `GetAtt` attribute its resource type has;
//! - the HTTP API routes exactly the operations of lib/api/openapi.json, the provider callback to
//!   the provider-webhook function and the rest to execute-api;
//! - the scene renderer runs generated code with nothing else to reach, and the job runner may
//!   invoke it (`template/scene_renderer.rs`);
//! - the job runner forwards media jobs to the media runner's queue, which only the media
//!   runner reads, and the two are sized for their work (`template/runners.rs`).
//!
//! Each check is also fed small broken templates, so that each one can fail.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::{Mapping, Value};

#[path = "template/runners.rs"]
mod runners;
#[path = "template/scene_renderer.rs"]
mod scene_renderer;

/// Every problem found names the resource (or section) it is in.
type Problems = Vec<String>;

const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// `Fn::GetAtt` attributes by resource type (CloudFormation's resource schemas). A type missing
/// here fails the check rather than passing unchecked: add it when the template needs it.
/// template.yaml after one change: `replace` (found once, or empty: no change) by `with`.
fn changed_template(replace: &str, with: &str) -> Template {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).expect("template.yaml");
    let single = replace.is_empty() || text.matches(replace).count() == 1;
    assert!(single, "template.yaml has no single {replace:?}");
    Template::parse(&text.replacen(replace, with, 1)).expect("a template")
}

/// Asserts that one of `problems`, found after that change, names every one of `words`.
fn assert_named(problems: &Problems, (replace, with): (&str, &str), words: &[&str]) {
    let found = problems.iter().any(|p| words.iter().all(|w| p.contains(w)));
    assert!(
        found,
        "{replace:?} -> {with:?}: no problem with {words:?} in {problems:#?}"
    );
}

fn attributes(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "AWS::SQS::Queue" => &["Arn", "QueueName", "QueueUrl"],
        "AWS::DynamoDB::Table" => &["Arn", "StreamArn"],
        "AWS::S3::Bucket" => &[
            "Arn",
            "DomainName",
            "DualStackDomainName",
            "RegionalDomainName",
            "WebsiteURL",
        ],
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => &["Arn"],
        "AWS::SecretsManager::Secret" => &["Id"],
        // SAM keeps an HttpApi's logical id for the AWS::ApiGatewayV2::Api it makes.
        "AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api" => &["ApiEndpoint", "ApiId"],
        "AWS::IAM::ManagedPolicy" => &["PolicyArn", "PolicyId"],
        "AWS::IAM::Role" => &["Arn", "RoleId"],
        "AWS::Logs::LogGroup" => &["Arn"],
        "AWS::Scheduler::Schedule" => &["Arn"],
        "AWS::Events::Rule" => &["Arn"],
        "AWS::Lambda::LayerVersion" => &["LayerVersionArn"],
        "AWS::S3::BucketPolicy" => &[],
        _ => return None,
    })
}

static NULL: Value = Value::Null;

/// A parsed template, with SAM's `Globals.Function` as the fallback for function properties.
struct Template {
    doc: Value,
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("template.yaml: {e}"))?;
        if doc.as_mapping().is_none() {
            return Err("template.yaml: not a mapping".into());
        }
        Ok(Template { doc })
    }

    fn section(&self, name: &str) -> Option<&Mapping> {
        self.doc.get(name)?.as_mapping()
    }

    fn names(&self, section: &str) -> BTreeSet<&str> {
        self.section(section)
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
            .collect()
    }

    fn resources(&self) -> Vec<(&str, &Value)> {
        self.section("Resources")
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect()
    }

    fn resource(&self, name: &str) -> Option<&Value> {
        self.section("Resources")?.get(name)
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.resource(name)?.get("Type")?.as_str()
    }

    fn functions(&self) -> Vec<(&str, &Value)> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
            .collect()
    }

    /// A function's property, or the one `Globals.Function` gives every function that does
    /// not ignore it (`IgnoreGlobals`).
    fn property<'a>(&'a self, function: &'a Value, key: &str) -> Option<&'a Value> {
        let own = function.get("Properties").and_then(|p| p.get(key));
        own.or_else(|| {
            if ignores_global(function, key) {
                return None;
            }
            self.doc.get("Globals")?.get("Function")?.get(key)
        })
    }

    /// A whole number, literal or the default of the parameter a `Ref` names.
    fn number(&self, value: &Value) -> Option<i64> {
        match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            other => match intrinsic(other)? {
                ("Ref", Value::String(name)) => {
                    self.number(self.section("Parameters")?.get(name.as_str())?.get("Default")?)
                }
                _ => None,
            },
        }
    }

    /// The values a numeric property may take: a literal, or a parameter's default and bounds.
    fn possible_numbers(&self, value: &Value) -> Result<Vec<i64>, String> {
        if let Some(("Ref", Value::String(name))) = intrinsic(value) {
            let Some(parameter) = self.section("Parameters").and_then(|p| p.get(name.as_str())) else {
                return Err(format!("names no parameter {name}"));
            };
            let mut values = Vec::new();
            for bound in ["Default", "MinValue", "MaxValue"] {
                match parameter.get(bound).map(|v| self.number(v)) {
                    Some(Some(n)) => values.push(n),
                    Some(None) => return Err(format!("parameter {name}'s {bound} is not a whole number")),
                    None if bound == "Default" => {}
                    None => return Err(format!("parameter {name} has no {bound}, so any value could be given")),
                }
            }
            return Ok(values);
        }
        self.number(value)
            .map(|n| vec![n])
            .ok_or_else(|| format!("{} is not a whole number", show(value)))
    }
}

/// Whether a resource's `IgnoreGlobals` (`"*"` or a list of keys) leaves out the global `key`.
fn ignores_global(resource: &Value, key: &str) -> bool {
    match resource.get("IgnoreGlobals") {
        Some(Value::String(all)) => all == "*",
        Some(Value::Sequence(keys)) => keys.iter().any(|k| k.as_str() == Some(key)),
        _ => false,
    }
}

/// Whether a function is a container image rather than a zip.
fn is_image(t: &Template, function: &Value) -> bool {
    t.property(function, "PackageType").and_then(Value::as_str) == Some("Image")
}

/// A function's `Metadata` entry.
fn metadata<'a>(function: &'a Value, key: &str) -> Option<&'a str> {
    function.get("Metadata")?.get(key)?.as_str()
}

/// The package a function runs: a zip's `Binary`, an image's `DockerTag`.
fn binary(function: &Value) -> Option<&str> {
    metadata(function, "Binary").or_else(|| metadata(function, "DockerTag"))
}

/// The function that runs `package`.
fn function_running<'a>(t: &'a Template, package: &str) -> Option<(&'a str, &'a Value)> {
    t.functions().into_iter().find(|(_, f)| binary(f) == Some(package))
}

/// A function's environment as SAM merges it: its own variables over the global ones, unless
/// it ignores those.
fn environment<'a>(t: &'a Template, function: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let variables = |props: Option<&'a Value>| {
        props
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
    };
    let mut all: Vec<(&str, &Value)> = variables(function.get("Properties")).collect();
    if !ignores_global(function, "Environment") {
        let global = t.doc.get("Globals").and_then(|g| g.get("Function"));
        let inherited: Vec<_> = variables(global)
            .filter(|(k, _)| all.iter().all(|(o, _)| o != k))
            .collect();
        all.extend(inherited);
    }
    all
}

/// One variable of a function's environment.
fn variable<'a>(t: &'a Template, function: &'a Value, name: &str) -> Option<&'a Value> {
    environment(t, function)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a value is `!Ref <resource>`.
fn is_ref_of(value: &Value, resource: &str) -> bool {
    matches!(intrinsic(value), Some(("Ref", Value::String(r))) if r == resource)
}

/// An intrinsic function, short (`!GetAtt`) or long (`Fn::GetAtt:`), as its name and argument.
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = INTRINSICS.iter().find(|n| tag.strip_prefix('!') == Some(**n))?;
            Some((name, &tagged.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (key, argument) = m.iter().next()?;
            let key = key.as_str()?;
            let name = key.strip_prefix("Fn::").unwrap_or(key);
            let known = INTRINSICS.iter().find(|n| **n == name)?;
            // `Ref` and `Condition` are the only ones without the `Fn::` prefix.
            let long_form_ok = key.starts_with("Fn::") != (name == "Ref" || name == "Condition");
            (long_form_ok && (name != "Condition" || argument.is_string())).then_some((*known, argument))
        }
        _ => None,
    }
}

const INTRINSICS: &[&str] = &[
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "If",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "Equals",
    "Not",
    "And",
    "Or",
    "Base64",
    "Cidr",
    "GetAZs",
    "ImportValue",
    "Length",
    "ToJsonString",
];

fn show(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_default()
}

/// The SQS events of every function: (function, event name, event properties).
fn sqs_events(t: &Template) -> Vec<(&str, &Value, &str, &Value)> {
    let mut out = Vec::new();
    for (name, function) in t.functions() {
        let events = function
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        for (event, body) in events.into_iter().flatten() {
            if body.get("Type").and_then(Value::as_str) == Some("SQS") {
                out.push((
                    name,
                    function,
                    event.as_str().unwrap_or("?"),
                    body.get("Properties").unwrap_or(&NULL),
                ));
            }
        }
    }
    out
}

/// Partial batch responses, batch sizes, windows and concurrency of SQS events.
fn check_sqs_events(t: &Template) -> Problems {
    let mut problems = Vec::new();
    for (function, _, event, props) in sqs_events(t) {
        let at = format!("{function}: SQS event {event}");
        let reports = props
            .get("FunctionResponseTypes")
            .and_then(Value::as_sequence)
            .map(|types| types.len() == 1 && types[0].as_str() == Some("ReportBatchItemFailures"));
        if reports != Some(true) {
            problems.push(format!(
                "{at}: FunctionResponseTypes must be [ReportBatchItemFailures] (the runners answer with partial \
                 batch failures), found {}",
                props.get("FunctionResponseTypes").map_or("nothing".into(), show)
            ));
        }
        let window = match props.get("MaximumBatchingWindowInSeconds") {
            None => 0,
            Some(v) => match t.number(v) {
                Some(w @ 0..=300) => w,
                _ => {
                    problems.push(format!(
                        "{at}: MaximumBatchingWindowInSeconds must be 0 to 300, found {}",
                        show(v)
                    ));
                    0
                }
            },
        };
        let max_batch = if window > 0 { 10_000 } else { 10 };
        match props.get("BatchSize").map(|v| t.possible_numbers(v)) {
            None => {}
            Some(Err(e)) => problems.push(format!("{at}: BatchSize {e}")),
            Some(Ok(sizes)) => {
                if let Some(bad) = sizes.iter().find(|s| !(1..=max_batch).contains(*s)) {
                    problems.push(format!(
                        "{at}: BatchSize {bad} is outside 1..={max_batch} (with a batching window of {window} s)"
                    ));
                }
            }
        }
        if let Some(v) = props.get("ScalingConfig").and_then(|s| s.get("MaximumConcurrency")) {
            match t.possible_numbers(v) {
                Err(e) => problems.push(format!("{at}: ScalingConfig.MaximumConcurrency {e}")),
                Ok(values) => {
                    if let Some(bad) = values.iter().find(|n| !(2..=1000).contains(*n)) {
                        problems.push(format!(
                            "{at}: ScalingConfig.MaximumConcurrency {bad} is outside 2..=1000"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The queue an SQS event reads: it must be `!GetAtt <queue>.Arn` of a queue of this template.
fn event_queue<'a>(t: &'a Template, props: &'a Value) -> Result<(&'a str, &'a Value), String> {
    let queue = props.get("Queue").ok_or("has no Queue")?;
    let target = match intrinsic(queue) {
        Some(("GetAtt", Value::String(s))) => s.split_once('.'),
        Some(("GetAtt", Value::Sequence(parts))) if parts.len() == 2 => parts[0].as_str().zip(parts[1].as_str()),
        _ => None,
    };
    match target {
        Some((name, "Arn")) if t.kind(name) == Some("AWS::SQS::Queue") => Ok((name, t.resource(name).unwrap_or(&NULL))),
        _ => Err(format!(
            "Queue must be !GetAtt <queue>.Arn of a queue in this template, found {}",
            show(queue)
        )),
    }
}

/// The statements of a function's inline `Policies` entries.
fn inline_statements(function: &Value) -> Vec<&Value> {
    let policies = function.get("Properties").and_then(|p| p.get("Policies"));
    policies
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .flat_map(statements)
        .collect()
}

fn statement_resources(statement: &Value) -> impl Iterator<Item = &Value> {
    match statement.get("Resource") {
        Some(Value::Sequence(items)) => items.iter().collect::<Vec<_>>().into_iter(),
        Some(one) => vec![one].into_iter(),
        None => Vec::new().into_iter(),
    }
}

/// Whether a value is `resource`'s ARN: `!GetAtt <resource>.Arn`, or a `!Sub` of just that.
fn is_arn_of(value: &Value, resource: &str) -> bool {
    match intrinsic(value) {
        Some(("GetAtt", Value::String(s))) => s.split_once('.') == Some((resource, "Arn")),
        Some(("GetAtt", Value::Sequence(parts))) => {
            parts.len() == 2 && parts[0].as_str() == Some(resource) && parts[1].as_str() == Some("Arn")
        }
        Some(("Sub", Value::String(s))) => *s == format!("${{{resource}.Arn}}"),
        _ => false,
    }
}

/// Visibility timeouts against their consumers' timeouts, a dead-letter queue for each, and
/// Lambda's recursion detection allowed for a function that feeds the queue it reads.
fn check_queues(t: &Template) -> Problems {
    let mut problems = Vec::new();
    for (function, body, event, props) in sqs_events(t) {
        let (queue_name, queue) = match event_queue(t, props) {
            Ok(q) => q,
            Err(e) => {
                problems.push(format!("{function}: SQS event {event}: {e}"));
                continue;
            }
        };
        let queue_props = queue.get("Properties");
        let visibility = queue_props
            .and_then(|p| p.get("VisibilityTimeout"))
            .map_or(Some(30), |v| t.number(v));
        // Lambda's default timeout is 3 s.
        let timeout = t.property(body, "Timeout").map_or(Some(3), |v| t.number(v));
        let window = props
            .get("MaximumBatchingWindowInSeconds")
            .map_or(Some(0), |v| t.number(v));
        match (visibility, timeout, window) {
            (Some(visibility), Some(timeout), Some(window)) => {
                let needed = 6 * timeout + window;
                if visibility < needed {
                    problems.push(format!(
                        "{queue_name}: VisibilityTimeout {visibility} s is under 6 x {function}'s timeout \
                         ({timeout} s) \
                         + its batching window ({window} s) = {needed} s"
                    ));
                }
                if visibility > 43_200 {
                    problems.push(format!(
                        "{queue_name}: VisibilityTimeout {visibility} s is over SQS's 12 hours"
                    ));
                }
            }
            _ => problems.push(format!(
                "{queue_name}: its VisibilityTimeout, {function}'s Timeout or the batching window is not a whole number"
            )),
        }
        let sends_to_itself = inline_statements(body).into_iter().any(|s| {
            strings(s.get("Action")).contains(&"sqs:SendMessage")
                && statement_resources(s).any(|r| is_arn_of(r, queue_name))
        });
        let allowed = t.property(body, "RecursiveLoop").and_then(Value::as_str) == Some("Allow");
        if sends_to_itself && !allowed {
            problems.push(format!(
                "{function}: sends to {queue_name}, which it reads, without RecursiveLoop: Allow (Lambda would \
                 stop the chain after 16 rounds)"
            ));
        }
        problems.extend(check_redrive(t, queue_name, queue));
    }
    // A queue nobody reads is a dead-letter queue, or else it too needs one.
    let read: BTreeSet<&str> = sqs_events(t)
        .into_iter()
        .filter_map(|(_, _, _, props)| event_queue(t, props).ok().map(|(name, _)| name))
        .collect();
    let dead_letter_queues: BTreeSet<&str> = t
        .resources()
        .into_iter()
        .filter_map(|(_, queue)| dead_letter_target(t, queue))
        .collect();
    for (name, queue) in t.resources() {
        let is_queue = queue.get("Type").and_then(Value::as_str) == Some("AWS::SQS::Queue");
        if is_queue && !read.contains(name) && !dead_letter_queues.contains(name) {
            problems.extend(check_redrive(t, name, queue));
        }
    }
    problems
}

/// The queue of this template a queue's `RedrivePolicy` moves messages to.
fn dead_letter_target<'a>(t: &Template, queue: &'a Value) -> Option<&'a str> {
    let redrive = queue.get("Properties")?.get("RedrivePolicy")?;
    match intrinsic(redrive.get("deadLetterTargetArn")?)? {
        ("GetAtt", Value::String(s)) => s
            .split_once('.')
            .filter(|(n, a)| *a == "Arn" && t.kind(n) == Some("AWS::SQS::Queue"))
            .map(|(n, _)| n),
        _ => None,
    }
}

/// A queue's redrive to a dead-letter queue of this template, after 1 to 1,000 receives.
fn check_redrive(t: &Template, name: &str, queue: &Value) -> Problems {
    let receives = queue
        .get("Properties")
        .and_then(|p| p.get("RedrivePolicy"))
        .and_then(|r| r.get("maxReceiveCount"))
        .and_then(|v| t.number(v));
    if dead_letter_target(t, queue).is_none() || !matches!(receives, Some(1..=1000)) {
        return vec![format!(
            "{name}: needs a RedrivePolicy to a dead-letter queue of this template \
             (deadLetterTargetArn: !GetAtt <queue>.Arn, maxReceiveCount 1..=1000)"
        )];
    }
    Vec::new()
}

/// Why a schedule expression is invalid, if it is. `at(...)` is EventBridge Scheduler's only.
fn schedule_problem(expression: &str, scheduler: bool) -> Option<String> {
    if let Some(inner) = expression.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut words = inner.split(' ');
        let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return Some(format!("{expression}: a rate is `rate(N unit)`"));
        };
        let Ok(count) = count.parse::<u32>() else {
            return Some(format!("{expression}: {count} is not a whole number"));
        };
        let singular = ["minute", "hour", "day"];
        let plural = ["minutes", "hours", "days"];
        return match count {
            0 => Some(format!("{expression}: the rate must be at least 1")),
            1 if !singular.contains(&unit) => Some(format!("{expression}: 1 takes minute, hour or day")),
            2.. if !plural.contains(&unit) => Some(format!("{expression}: {count} takes minutes, hours or days")),
            _ => None,
        };
    }
    if let Some(inner) = expression.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split(' ').collect();
        if fields.len() != 6 || fields.iter().any(|f| f.is_empty()) {
            return Some(format!(
                "{expression}: cron takes six fields (minutes hours day-of-month month day-of-week year)"
            ));
        }
        // One of day-of-month and day-of-week must be `?`, and only one.
        if (fields[2] == "?") == (fields[4] == "?") {
            return Some(format!(
                "{expression}: exactly one of day-of-month and day-of-week must be ?"
            ));
        }
        return None;
    }
    if scheduler && expression.starts_with("at(") && expression.ends_with(')') {
        return None;
    }
    Some(format!(
        "{expression}: not rate(...), cron(...){}",
        if scheduler { " or at(...)" } else { "" }
    ))
}

/// Schedule expressions of function events and of schedule resources.
fn check_schedules(t: &Template) -> Problems {
    let mut problems = Vec::new();
    let mut check = |at: String, expression: Option<&Value>, scheduler: bool| match expression.map(|e| (e, e.as_str()))
    {
        Some((_, Some(e))) => {
            if let Some(p) = schedule_problem(e, scheduler) {
                problems.push(format!("{at}: {p}"));
            }
        }
        Some((e, None)) => problems.push(format!("{at}: ScheduleExpression must be a literal, found {}", show(e))),
        None => problems.push(format!("{at}: has no ScheduleExpression")),
    };
    for (name, resource) in t.resources() {
        let props = resource.get("Properties");
        match resource.get("Type").and_then(Value::as_str) {
            Some("AWS::Serverless::Function") => {
                let events = props.and_then(|p| p.get("Events")).and_then(Value::as_mapping);
                for (event, body) in events.into_iter().flatten() {
                    let kind = body.get("Type").and_then(Value::as_str);
                    if let Some(kind @ ("Schedule" | "ScheduleV2")) = kind {
                        let expression = body.get("Properties").and_then(|p| p.get("ScheduleExpression"));
                        let event = event.as_str().unwrap_or("?");
                        check(
                            format!("{name}: {kind} event {event}"),
                            expression,
                            kind == "ScheduleV2",
                        );
                    }
                }
            }
            Some(kind @ ("AWS::Events::Rule" | "AWS::Scheduler::Schedule")) => {
                let expression = props.and_then(|p| p.get("ScheduleExpression"));
                // An event-pattern rule has no schedule.
                if kind == "AWS::Scheduler::Schedule" || expression.is_some() {
                    check(name.to_string(), expression, kind == "AWS::Scheduler::Schedule");
                }
            }
            _ => {}
        }
    }
    problems
}

/// Runtime, architecture, handler, build method and JSON logs of every function.
fn check_runtime(t: &Template) -> Problems {
    let mut problems = Vec::new();
    for (name, function) in t.functions() {
        let text = |key: &str| t.property(function, key).and_then(Value::as_str);
        if is_image(t, function) {
            problems.extend(scene_renderer::check_image(t, name, function));
        } else if text("Runtime") != Some("provided.al2023") {
            problems.push(format!(
                "{name}: Runtime must be provided.al2023, found {:?}",
                text("Runtime")
            ));
        }
        let arm64 = t
            .property(function, "Architectures")
            .and_then(Value::as_sequence)
            .is_some_and(|a| a.len() == 1 && a[0].as_str() == Some("arm64"));
        if !arm64 {
            problems.push(format!("{name}: Architectures must be [arm64]"));
        }
        // An image's entry point is its Dockerfile's (check_image).
        if !is_image(t, function) && text("Handler") != Some("bootstrap") {
            problems.push(format!(
                "{name}: Handler must be bootstrap, found {:?}",
                text("Handler")
            ));
        }
        let build = function
            .get("Metadata")
            .and_then(|m| m.get("BuildMethod"))
            .and_then(Value::as_str);
        if build != Some("rust-cargolambda") && !is_image(t, function) {
            problems.push(format!(
                "{name}: Metadata.BuildMethod must be rust-cargolambda, found {build:?}"
            ));
        }
        // SAM merges a function's LoggingConfig into the global one, key by key.
        let own = function.get("Properties").and_then(|p| p.get("LoggingConfig"));
        let global = t
            .doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("LoggingConfig"));
        let format = own
            .and_then(|l| l.get("LogFormat"))
            .or_else(|| global.and_then(|l| l.get("LogFormat")));
        if format.and_then(Value::as_str) != Some("JSON") {
            problems.push(format!(
                "{name}: LoggingConfig.LogFormat must be JSON (structured logs)"
            ));
        }
    }
    problems
}

/// The `[workspace] members` of a Cargo.toml (a small reader: quoted strings in the array).
fn workspace_members(cargo_toml: &str) -> Vec<String> {
    let Some(start) = cargo_toml.find("[workspace]") else {
        return Vec::new();
    };
    let section = &cargo_toml[start..];
    let Some(array) = section
        .lines()
        .position(|l| l.trim_start().starts_with("members"))
        .and_then(|i| {
            section
                .lines()
                .skip(i)
                .collect::<Vec<_>>()
                .join("\n")
                .split_once('[')
                .map(|(_, a)| a.to_string())
        })
    else {
        return Vec::new();
    };
    let array = array.split(']').next().unwrap_or_default();
    array.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

fn is_member(members: &[String], path: &str) -> bool {
    members.iter().any(|m| match m.strip_suffix("/*") {
        Some(prefix) => path.rsplit_once('/').is_some_and(|(parent, _)| parent == prefix),
        None => m.trim_end_matches('/') == path,
    })
}

/// The `[package] name` of a Cargo.toml.
fn package_name(cargo_toml: &str) -> Option<String> {
    let section = &cargo_toml[cargo_toml.find("[package]")?..];
    let line = section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .find(|l| {
            let l = l.trim_start();
            l.starts_with("name") && l["name".len()..].trim_start().starts_with('=')
        })?;
    Some(line.split('"').nth(1)?.to_string())
}

/// Every function's code is a workspace member under functions/ whose package is its binary.
fn check_code(t: &Template, root: &Path) -> Problems {
    let mut problems = Vec::new();
    let members = std::fs::read_to_string(root.join("Cargo.toml"))
        .map(|s| workspace_members(&s))
        .unwrap_or_default();
    for (name, function) in t.functions() {
        if is_image(t, function) {
            problems.extend(scene_renderer::check_image_code(name, function, root, &members));
            continue;
        }
        let Some(uri) = t.property(function, "CodeUri").and_then(Value::as_str) else {
            problems.push(format!("{name}: CodeUri must be a folder under functions/"));
            continue;
        };
        let uri = uri.trim_end_matches('/');
        let under_functions = uri
            .strip_prefix("functions/")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') && rest != "..");
        if !under_functions {
            problems.push(format!("{name}: CodeUri {uri} is not a folder under functions/"));
            continue;
        }
        let manifest = match std::fs::read_to_string(root.join(uri).join("Cargo.toml")) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{name}: CodeUri {uri} has no readable Cargo.toml ({e})"));
                continue;
            }
        };
        if !is_member(&members, uri) {
            problems.push(format!("{name}: CodeUri {uri} is not a member of the workspace"));
        }
        let binary = function
            .get("Metadata")
            .and_then(|m| m.get("Binary"))
            .and_then(Value::as_str);
        let package = package_name(&manifest);
        if binary.is_none() || binary != package.as_deref() {
            problems.push(format!(
                "{name}: Metadata.Binary {binary:?} must name the package of {uri} ({package:?}): cargo-lambda \
                 builds that binary"
            ));
        }
    }
    problems
}

/// The statements of a policy document or of SAM's inline `Policies` entries.
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Sequence(s)) => s.iter().collect(),
        Some(one @ Value::Mapping(_)) => vec![one],
        _ => Vec::new(),
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Sequence(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Least privilege: an explicit policy per function, and no wildcard grants or Scans anywhere.
fn check_policies(t: &Template) -> Problems {
    let mut problems = Vec::new();
    let mut documents: Vec<(String, &Value)> = Vec::new();
    for (name, function) in t.functions() {
        let policies = function.get("Properties").and_then(|p| p.get("Policies"));
        let has_role = function.get("Properties").and_then(|p| p.get("Role")).is_some();
        match policies {
            Some(Value::Sequence(list)) if !list.is_empty() => {
                documents.extend(list.iter().map(|p| (name.to_string(), p)));
            }
            _ if has_role => {}
            _ => problems.push(format!("{name}: has no explicit Policies (nor Role)")),
        }
    }
    for (name, resource) in t.resources() {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or_default();
        let props = resource.get("Properties");
        if matches!(kind, "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy") {
            if let Some(doc) = props.and_then(|p| p.get("PolicyDocument")) {
                documents.push((name.to_string(), doc));
            }
        }
        if kind == "AWS::IAM::Role" {
            let inline = props.and_then(|p| p.get("Policies")).and_then(Value::as_sequence);
            for policy in inline.into_iter().flatten() {
                if let Some(doc) = policy.get("PolicyDocument") {
                    documents.push((name.to_string(), doc));
                }
            }
        }
    }
    for (owner, document) in documents {
        for statement in statements(document) {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            let actions = strings(statement.get("Action"));
            if let Some(a) = actions.iter().find(|a| a.contains('*')) {
                problems.push(format!("{owner}: allows the wildcard action {a}"));
            }
            if let Some(a) = actions.iter().find(|a| a.eq_ignore_ascii_case("dynamodb:Scan")) {
                problems.push(format!(
                    "{owner}: allows {a}: every read goes through a key or an index"
                ));
            }
            if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                problems.push(format!(
                    "{owner}: an Allow with NotAction or NotResource grants too much"
                ));
            }
            if strings(statement.get("Resource")).contains(&"*") {
                problems.push(format!("{owner}: allows {actions:?} on every resource (*)"));
            }
        }
    }
    problems
}

/// Environment variable names that would carry a secret in plain text.
fn check_environment(t: &Template) -> Problems {
    let mut problems = Vec::new();
    let global = t.doc.get("Globals").and_then(|g| g.get("Function"));
    let mut scopes: Vec<(&str, Option<&Value>)> = vec![("Globals", global)];
    scopes.extend(t.functions().into_iter().map(|(n, f)| (n, f.get("Properties"))));
    for (owner, props) in scopes {
        let variables = props
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);
        for key in variables.into_iter().flatten().filter_map(|(k, _)| k.as_str()) {
            let upper = key.to_ascii_uppercase();
            let secretish = ["KEY", "TOKEN", "PASSWORD", "SECRET", "CREDENTIALS"]
                .iter()
                .any(|w| upper.contains(w));
            let a_reference = ["_ID", "_ARN", "_NAME"].iter().any(|s| upper.ends_with(s));
            if secretish && !a_reference {
                problems.push(format!(
                    "{owner}: environment variable {key} looks like a secret; secrets come from Secrets Manager"
                ));
            }
        }
    }
    problems
}

/// The variables a `Fn::Sub` string names (`${!Literal}` is text, not a variable).
fn sub_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let variable = after[..end].trim();
        if !variable.starts_with('!') {
            out.push(variable);
        }
        rest = &after[end + 1..];
    }
    out
}

struct References<'a> {
    t: &'a Template,
    refs: BTreeSet<&'a str>,
    conditions: BTreeSet<&'a str>,
    problems: Problems,
}

impl<'a> References<'a> {
    fn check_ref(&mut self, at: &str, name: &str) {
        if !self.refs.contains(name) {
            self.problems.push(format!(
                "{at}: Ref {name} names no resource, parameter or pseudo parameter"
            ));
        }
    }

    fn check_get_att(&mut self, at: &str, resource: &str, attribute: &str) {
        let Some(kind) = self.t.kind(resource) else {
            self.problems.push(format!(
                "{at}: GetAtt {resource}.{attribute}: there is no resource {resource}"
            ));
            return;
        };
        match attributes(kind) {
            Some(known) if known.contains(&attribute) => {}
            Some(known) => self.problems.push(format!(
                "{at}: GetAtt {resource}.{attribute}: a {kind} has no attribute {attribute} (it has {known:?})"
            )),
            None => self.problems.push(format!(
                "{at}: GetAtt {resource}.{attribute}: no attribute table for {kind} (add it to tests/template.rs)"
            )),
        }
    }

    fn check_condition(&mut self, at: &str, name: &Value) {
        match name.as_str() {
            Some(n) if self.conditions.contains(n) => {}
            _ => self
                .problems
                .push(format!("{at}: condition {} is not defined", show(name))),
        }
    }

    fn walk(&mut self, at: &str, value: &'a Value) {
        if let Some((name, argument)) = intrinsic(value) {
            self.intrinsic(at, name, argument);
        }
        match value {
            Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("Condition") && v.is_string() && intrinsic(value).is_none() {
                        // A resource's or output's `Condition:` attribute.
                        self.check_condition(at, v);
                    }
                    self.walk(at, v);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|v| self.walk(at, v)),
            Value::Tagged(tagged) => self.walk(at, &tagged.value),
            _ => {}
        }
    }

    fn intrinsic(&mut self, at: &str, name: &str, argument: &Value) {
        match (name, argument) {
            ("Ref", Value::String(target)) => self.check_ref(at, target),
            ("GetAtt", Value::String(dotted)) => match dotted.split_once('.') {
                Some((resource, attribute)) => self.check_get_att(at, resource, attribute),
                None => self
                    .problems
                    .push(format!("{at}: GetAtt {dotted} is not Resource.Attribute")),
            },
            ("GetAtt", Value::Sequence(parts)) => match (parts.first().and_then(Value::as_str), parts.get(1)) {
                (Some(resource), Some(Value::String(attribute))) if parts.len() == 2 => {
                    self.check_get_att(at, resource, attribute)
                }
                // An attribute chosen by another function: the resource at least must exist.
                (Some(resource), Some(_)) if parts.len() == 2 && self.t.kind(resource).is_some() => {}
                _ => self
                    .problems
                    .push(format!("{at}: GetAtt {} is not [Resource, Attribute]", show(argument))),
            },
            ("Sub", Value::String(text)) => self.check_sub(at, text, &BTreeSet::new()),
            ("Sub", Value::Sequence(parts)) => match (parts.first().and_then(Value::as_str), parts.get(1)) {
                (Some(text), Some(Value::Mapping(locals))) if parts.len() == 2 => {
                    let locals = locals.iter().filter_map(|(k, _)| k.as_str()).collect();
                    self.check_sub(at, text, &locals);
                }
                _ => self
                    .problems
                    .push(format!("{at}: Sub {} is not [text, {{variables}}]", show(argument))),
            },
            ("If", Value::Sequence(parts)) if parts.len() == 3 => self.check_condition(at, &parts[0]),
            ("If", _) => self.problems.push(format!("{at}: If takes [condition, then, else]")),
            ("Condition", condition) => self.check_condition(at, condition),
            ("Ref" | "GetAtt" | "Sub", other) => self.problems.push(format!(
                "{at}: {name} with an argument it does not take: {}",
                show(other)
            )),
            _ => {}
        }
    }

    fn check_sub(&mut self, at: &str, text: &str, locals: &BTreeSet<&str>) {
        for variable in sub_variables(text) {
            if locals.contains(variable) {
                continue;
            }
            match variable.split_once('.') {
                // Pseudo parameters contain `::`, never a dot.
                Some((resource, attribute)) => self.check_get_att(at, resource, attribute),
                None => self.check_ref(at, variable),
            }
        }
    }
}

/// Every Ref, GetAtt, Sub variable and condition names something that exists.
fn check_references(t: &Template) -> Problems {
    let mut refs = t.names("Resources");
    refs.extend(t.names("Parameters"));
    refs.extend(PSEUDO_PARAMETERS);
    let mut walker = References {
        t,
        refs,
        conditions: t.names("Conditions"),
        problems: Vec::new(),
    };
    for section in ["Globals", "Conditions", "Outputs"] {
        if let Some(v) = t.doc.get(section) {
            walker.walk(section, v);
        }
    }
    for (name, resource) in t.resources() {
        walker.walk(name, resource);
    }
    walker.problems
}

/// OpenAPI's `{anything}` path parameters, as one shape.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The HTTP API routes exactly the OpenAPI document's operations, each to the right function.
fn check_routes(t: &Template, openapi: &serde_json::Value) -> Problems {
    let mut problems = Vec::new();
    let mut routed = BTreeSet::new();
    for (name, function) in t.functions() {
        let binary = function
            .get("Metadata")
            .and_then(|m| m.get("Binary"))
            .and_then(Value::as_str);
        let events = function
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        for (event, body) in events.into_iter().flatten() {
            if body.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let event = event.as_str().unwrap_or("?");
            let props = body.get("Properties");
            let field = |k: &str| props.and_then(|p| p.get(k)).and_then(Value::as_str);
            let api = props.and_then(|p| p.get("ApiId")).and_then(intrinsic);
            let api_ok =
                matches!(api, Some(("Ref", Value::String(a))) if t.kind(a) == Some("AWS::Serverless::HttpApi"));
            if !api_ok {
                problems.push(format!(
                    "{name}: HttpApi event {event}: ApiId must be !Ref of the template's HttpApi"
                ));
            }
            if field("PayloadFormatVersion") != Some("2.0") {
                problems.push(format!(
                    "{name}: HttpApi event {event}: PayloadFormatVersion must be \"2.0\""
                ));
            }
            let (Some(method), Some(path)) = (field("Method"), field("Path")) else {
                problems.push(format!("{name}: HttpApi event {event}: needs a Method and a Path"));
                continue;
            };
            let method = method.to_ascii_uppercase();
            let expected = if path.starts_with("/api/webhooks/") {
                "provider-webhook"
            } else {
                "execute-api"
            };
            if binary != Some(expected) {
                problems.push(format!("{name}: routes {method} {path}, which belongs to {expected}"));
            }
            if !routed.insert((method.clone(), route_shape(path))) {
                problems.push(format!("{name}: {method} {path} is routed twice"));
            }
        }
    }
    let mut documented = BTreeSet::new();
    for (path, operations) in openapi.get("paths").and_then(|p| p.as_object()).into_iter().flatten() {
        for method in operations.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                documented.insert((method.to_ascii_uppercase(), route_shape(path)));
            }
        }
    }
    for (method, path) in documented.difference(&routed) {
        problems.push(format!(
            "HttpApi: {method} {path} is in openapi.json but no function serves it"
        ));
    }
    for (method, path) in routed.difference(&documented) {
        problems.push(format!("HttpApi: {method} {path} is routed but not in openapi.json"));
    }
    problems
}

/// Every check but the routes' on one template, against the workspace at `root`.
fn template_problems(t: &Template, root: &Path) -> Problems {
    [
        check_sqs_events(t),
        check_queues(t),
        check_schedules(t),
        check_runtime(t),
        check_code(t, root),
        check_policies(t),
        check_environment(t),
        check_references(t),
    ]
    .concat()
}

#[test]
fn template_yaml_keeps_its_invariants() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("template.yaml"))?;
    let t = Template::parse(&text).map_err(anyhow::Error::msg)?;
    let openapi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("lib/api/openapi.json"))?)?;
    let mut problems = template_problems(&t, root);
    problems.extend(check_routes(&t, &openapi));
    problems.extend(scene_renderer::check_scene_renderer(&t));
    problems.extend(runners::check_runners(&t));
    let makefile = std::fs::read_to_string(root.join("Makefile"))?;
    problems.extend(scene_renderer::check_makefile(&t, &makefile));
    assert!(problems.is_empty(), "template.yaml:\n  {}", problems.join("\n  "));
    // The checks saw what they were meant to: seven functions (one an image), three SQS
    // consumers.
    assert_eq!(t.functions().len(), 7);
    assert_eq!(t.functions().iter().filter(|(_, f)| is_image(&t, f)).count(), 1);
    assert_eq!(sqs_events(&t).len(), 3);
    Ok(())
}

// ---------------------------------------------------------------- each check can fail

/// A small template that passes every check: a queue consumer and a scheduled function.
const GOOD: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Concurrency: { Type: Number, Default: 5, MinValue: 2, MaxValue: 50 }
  Name: { Type: String }
Conditions:
  HasName: !Not [!Equals [!Ref Name, ""]]
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Handler: bootstrap
    LoggingConfig: { LogFormat: JSON }
    Environment:
      Variables:
        REELAY_QUEUE: !Ref Queue
        REELAY_SECRETS_ID: !If [HasName, !Ref Name, !Ref AWS::NoValue]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 610
      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 5 }
  Dlq:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildMethod: rust-cargolambda, Binary: worker }
    Properties:
      CodeUri: functions/worker
      Timeout: 100
      RecursiveLoop: Allow
      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !Sub "${Queue.Arn}"
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: !Ref Concurrency }
  Ticker:
    Type: AWS::Serverless::Function
    Metadata: { BuildMethod: rust-cargolambda, Binary: ticker }
    Properties:
      CodeUri: functions/ticker
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:Query]
              Resource: [!GetAtt Table.Arn, !Sub "${Table.Arn}/index/*"]
      Events:
        Tick:
          Type: ScheduleV2
          Properties: { ScheduleExpression: rate(1 minute) }
  Table:
    Type: AWS::DynamoDB::Table
Outputs:
  QueueUrl:
    Value: !GetAtt Queue.QueueUrl
"#;

/// A workspace with the two functions of [`GOOD`]; `members` is its `[workspace] members`.
fn workspace(members: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        std::fs::write(path, text).expect("a file");
    };
    write(
        "Cargo.toml",
        &format!("[workspace]\nmembers = [\n  {members}\n]\n\n[package]\nname = \"root\"\n"),
    );
    write(
        "functions/worker/Cargo.toml",
        "[package]\nname = \"worker\"\nversion = \"0.1.0\"\n",
    );
    write("functions/ticker/Cargo.toml", "[package]\nname = \"ticker\"\n");
    dir
}

fn problems_with(replace: &str, with: &str) -> Problems {
    assert!(GOOD.contains(replace), "GOOD has no {replace:?}");
    let t = Template::parse(&GOOD.replacen(replace, with, 1)).expect("a template");
    let root = workspace(r#""lib/core", "functions/worker", "functions/ticker""#);
    template_problems(&t, root.path())
}

/// The single problem a change causes, which must mention every one of `names`.
fn the_problem(replace: &str, with: &str, names: &[&str]) -> String {
    let problems = problems_with(replace, with);
    assert_eq!(problems.len(), 1, "{replace} -> {with}: {problems:#?}");
    for name in names {
        assert!(problems[0].contains(name), "{:?} does not mention {name}", problems[0]);
    }
    problems[0].clone()
}

#[test]
fn the_good_template_passes() {
    assert_eq!(problems_with("", ""), Problems::new());
}

#[test]
fn sqs_events_must_report_partial_batch_failures() {
    the_problem(
        "[ReportBatchItemFailures]",
        "[ReportBatchFailures]",
        &["Worker", "Work", "ReportBatchItemFailures"],
    );
    the_problem(
        "            FunctionResponseTypes: [ReportBatchItemFailures]\n",
        "",
        &["Worker", "nothing"],
    );
}

#[test]
fn batch_sizes_and_concurrency_stay_within_lambda_limits() {
    the_problem("BatchSize: 10", "BatchSize: 100000", &["Worker", "100000", "1..=10 "]);
    the_problem("BatchSize: 10", "BatchSize: 0", &["Worker", "BatchSize 0"]);
    the_problem("BatchSize: 10", "BatchSize: 11", &["Worker", "11"]);
    // A batching window allows up to 10,000, and the queue's visibility must cover the window.
    assert_eq!(
        problems_with(
            "BatchSize: 10",
            "BatchSize: 10000\n            MaximumBatchingWindowInSeconds: 0"
        ),
        ["Worker: SQS event Work: BatchSize 10000 is outside 1..=10 (with a batching window of 0 s)".to_string()]
    );
    assert_eq!(
        problems_with(
            "BatchSize: 10",
            "BatchSize: 10000\n            MaximumBatchingWindowInSeconds: 5"
        ),
        Problems::new()
    );
    let problems = problems_with(
        "BatchSize: 10",
        "BatchSize: 10\n            MaximumBatchingWindowInSeconds: 301",
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("Worker: SQS event Work: MaximumBatchingWindowInSeconds")),
        "{problems:#?}"
    );
    the_problem("MaxValue: 50", "MaxValue: 5000", &["Worker", "MaximumConcurrency 5000"]);
    the_problem(", MaxValue: 50", "", &["Worker", "Concurrency has no MaxValue"]);
}

#[test]
fn queues_outlast_their_consumers_and_have_dead_letter_queues() {
    the_problem(
        "VisibilityTimeout: 610",
        "VisibilityTimeout: 599",
        &["Queue", "Worker", "600 s"],
    );
    the_problem("Timeout: 100", "Timeout: 900", &["Queue", "Worker", "900"]);
    // Without its redrive, the queue needs one, and so does the queue that was its dead-letter
    // queue, now read by nobody.
    let problems = problems_with(
        "      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 5 }\n",
        "",
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("Queue: needs a RedrivePolicy"), "{problems:#?}");
    assert!(problems[1].starts_with("Dlq: needs a RedrivePolicy"), "{problems:#?}");
    the_problem(
        "  Dlq:\n    Type: AWS::SQS::Queue\n",
        "  Dlq:\n    Type: AWS::SQS::Queue\n  Spare:\n    Type: AWS::SQS::Queue\n",
        &["Spare", "RedrivePolicy"],
    );
    the_problem(
        "      RecursiveLoop: Allow\n",
        "",
        &["Worker", "sends to Queue", "RecursiveLoop: Allow"],
    );
    let terminate = problems_with("      RecursiveLoop: Allow\n", "      RecursiveLoop: Terminate\n");
    assert_eq!(terminate.len(), 1, "{terminate:#?}");
    // The event must name the queue's ARN, not its URL.
    let problems = problems_with("Queue: !GetAtt Queue.Arn", "Queue: !GetAtt Queue.QueueUrl");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("Worker: SQS event Work: Queue must be")),
        "{problems:#?}"
    );
}

#[test]
fn schedule_expressions_are_valid() {
    the_problem("rate(1 minute)", "rate(1 days)", &["Ticker", "Tick", "rate(1 days)"]);
    the_problem("rate(1 minute)", "rate(5 minute)", &["Ticker", "5 takes minutes"]);
    the_problem("rate(1 minute)", "rate(0 minutes)", &["Ticker", "at least 1"]);
    the_problem("rate(1 minute)", "rate(1 minute", &["Ticker"]);
    the_problem("rate(1 minute)", "rate(one minute)", &["Ticker", "one"]);
    the_problem(
        "rate(1 minute)",
        "cron(0 12 * * * *)",
        &["Ticker", "day-of-week must be ?"],
    );
    assert_eq!(problems_with("rate(1 minute)", "cron(0/5 * * * ? *)"), Problems::new());
    assert_eq!(problems_with("rate(1 minute)", "rate(10 minutes)"), Problems::new());
    assert_eq!(
        problems_with("rate(1 minute)", "at(2030-01-01T00:00:00)"),
        Problems::new()
    );
    the_problem("rate(1 minute)", "cron(0 12 * *)", &["Ticker", "six fields"]);
    // `at(...)` is EventBridge Scheduler's (ScheduleV2) only.
    let old_rule = "Type: Schedule\n          Properties: { ScheduleExpression: at(2030-01-01T00:00:00) }";
    the_problem(
        "Type: ScheduleV2\n          Properties: { ScheduleExpression: rate(1 minute) }",
        old_rule,
        &["Ticker", "Schedule event Tick"],
    );
}

#[test]
fn functions_are_arm64_al2023_rust_builds_with_json_logs() {
    let problems = problems_with("Runtime: provided.al2023", "Runtime: provided.al2");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("Worker: Runtime must be provided.al2023"),
        "{problems:#?}"
    );
    // Ticker overrides the global; Worker keeps it.
    let problems = problems_with(
        "      CodeUri: functions/ticker\n",
        "      CodeUri: functions/ticker\n      Architectures: [x86_64]\n",
    );
    assert_eq!(problems, ["Ticker: Architectures must be [arm64]".to_string()]);
    let problems = problems_with("Handler: bootstrap", "Handler: main");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[1].starts_with("Ticker: Handler must be bootstrap"),
        "{problems:#?}"
    );
    the_problem(
        "BuildMethod: rust-cargolambda, Binary: worker",
        "BuildMethod: go1.x, Binary: worker",
        &["Worker", "rust-cargolambda"],
    );
    let problems = problems_with(
        "LoggingConfig: { LogFormat: JSON }",
        "LoggingConfig: { LogFormat: Text }",
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().all(|p| p.contains("LogFormat must be JSON")));
}

#[test]
fn code_is_a_workspace_member_under_functions() {
    the_problem(
        "CodeUri: functions/worker",
        "CodeUri: functions/nope",
        &["Worker", "functions/nope", "Cargo.toml"],
    );
    the_problem(
        "CodeUri: functions/worker",
        "CodeUri: lib/core",
        &["Worker", "not a folder under functions/"],
    );
    the_problem("CodeUri: functions/worker", "CodeUri: functions/../lib", &["Worker"]);
    the_problem("Binary: worker", "Binary: wroker", &["Worker", "wroker", "worker"]);
    let t = Template::parse(GOOD).expect("a template");
    let outside = workspace(r#""functions/ticker""#);
    let problems = check_code(&t, outside.path());
    assert_eq!(
        problems,
        ["Worker: CodeUri functions/worker is not a member of the workspace".to_string()]
    );
    let glob = workspace(r#""lib/*", "functions/*""#);
    assert_eq!(check_code(&t, glob.path()), Problems::new());
}

#[test]
fn every_function_has_a_narrow_explicit_policy() {
    let without = concat!(
        "      Policies:\n",
        "        - Statement:\n",
        "            - Effect: Allow\n",
        "              Action: sqs:SendMessage\n",
        "              Resource: !Sub \"${Queue.Arn}\"\n",
    );
    the_problem(without, "", &["Worker", "no explicit Policies"]);
    the_problem("Action: sqs:SendMessage", "Action: sqs:*", &["Worker", "sqs:*"]);
    the_problem(
        "Action: [dynamodb:GetItem, dynamodb:Query]",
        "Action: [dynamodb:Scan]",
        &["Ticker", "Scan"],
    );
    the_problem(
        "Resource: !Sub \"${Queue.Arn}\"",
        "Resource: \"*\"",
        &["Worker", "every resource"],
    );
}

#[test]
fn no_secret_in_plain_environment() {
    the_problem(
        "REELAY_QUEUE: !Ref Queue",
        "REPLICATE_API_TOKEN: r8_abc",
        &["Globals", "REPLICATE_API_TOKEN"],
    );
    the_problem(
        "REELAY_QUEUE: !Ref Queue",
        "REELAY_SECRET_KEY: abc",
        &["Globals", "REELAY_SECRET_KEY"],
    );
}

#[test]
fn references_name_what_exists() {
    // The queue checks object too; the reference check names the resource and the attribute.
    let has = |problems: Problems, start: &str, words: &[&str]| {
        let found = problems
            .iter()
            .any(|p| p.starts_with(start) && words.iter().all(|w| p.contains(w)));
        assert!(found, "no {start}... with {words:?} in {problems:#?}");
    };
    let arnn = problems_with("Queue: !GetAtt Queue.Arn", "Queue: !GetAtt Queue.Arnn");
    has(
        arnn,
        "Worker: GetAtt Queue.Arnn",
        &["AWS::SQS::Queue has no attribute Arnn"],
    );
    has(
        problems_with("!GetAtt Dlq.Arn", "!GetAtt Dql.Arn"),
        "Queue: GetAtt Dql.Arn",
        &["no resource Dql"],
    );
    the_problem(
        "REELAY_QUEUE: !Ref Queue",
        "REELAY_QUEUE: !Ref Qeueu",
        &["Globals", "Qeueu"],
    );
    the_problem(
        "!Sub \"${Queue.Arn}\"",
        "!Sub \"${Queue.Name}\"",
        &["Worker", "Queue.Name"],
    );
    the_problem(
        "!Sub \"${Table.Arn}/index/*\"",
        "!Sub \"${Tabel.Arn}/index/*\"",
        &["Ticker", "Tabel"],
    );
    the_problem(
        "!Sub \"${Queue.Arn}\"",
        "!Sub \"arn:${AWS::Partition}:sqs:${AWS::Regoin}:x\"",
        &["Worker", "AWS::Regoin"],
    );
    the_problem("!If [HasName,", "!If [HasNmae,", &["Globals", "HasNmae"]);
    the_problem(
        "!GetAtt Queue.QueueUrl",
        "!GetAtt Queue.QueueURL",
        &["Outputs", "QueueURL"],
    );
    // Long forms, literal `${!...}`, Sub's own variables and pseudo parameters are understood.
    for (from, to) in [
        ("Queue: !GetAtt Queue.Arn", "Queue: { \"Fn::GetAtt\": [Queue, Arn] }"),
        ("REELAY_QUEUE: !Ref Queue", "REELAY_QUEUE: { Ref: Queue }"),
        (
            "!Sub \"${Queue.Arn}\"",
            "!Sub [\"${Q}-${!Literal}-${AWS::Region}\", { Q: !GetAtt Queue.Arn }]",
        ),
        ("REELAY_QUEUE: !Ref Queue", "REELAY_QUEUE: !Ref AWS::StackName"),
    ] {
        assert_eq!(problems_with(from, to), Problems::new(), "{to}");
    }
    let problems = problems_with(
        "REELAY_QUEUE: !Ref Queue",
        "REELAY_QUEUE: { \"Fn::GetAtt\": [Queue, Arnn] }",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    // A type the attribute table does not know fails rather than passing unchecked.
    let glue = problems_with(
        "  Table:\n    Type: AWS::DynamoDB::Table",
        "  Table:\n    Type: AWS::Glue::Table",
    );
    assert_eq!(glue.len(), 2, "{glue:#?}");
    assert!(glue
        .iter()
        .all(|p| p.starts_with("Ticker: GetAtt Table.Arn: no attribute table for AWS::Glue::Table")));
}

#[test]
fn routes_match_the_openapi_document() {
    let template = r#"
Resources:
  Api: { Type: AWS::Serverless::HttpApi }
  ExecuteApi:
    Type: AWS::Serverless::Function
    Metadata: { Binary: execute-api }
    Properties:
      Events:
        Submit:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: POST, Path: /api/execute, PayloadFormatVersion: "2.0" }
        Status:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: get, Path: "/api/status/{id}", PayloadFormatVersion: "2.0" }
  Callback:
    Type: AWS::Serverless::Function
    Metadata: { Binary: provider-webhook }
    Properties:
      Events:
        Job:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: POST, Path: "/api/webhooks/job/{record}", PayloadFormatVersion: "2.0" }
"#;
    let openapi = serde_json::json!({"paths": {
        "/api/execute": {"post": {}},
        "/api/status/{executionId}": {"get": {}, "parameters": []},
        "/api/webhooks/job/{record}": {"post": {}},
    }});
    let check = |from: &str, to: &str| {
        check_routes(
            &Template::parse(&template.replacen(from, to, 1)).expect("a template"),
            &openapi,
        )
    };
    assert_eq!(check("", ""), Problems::new());
    assert_eq!(
        check("Path: /api/execute,", "Path: /api/exec,"),
        [
            "HttpApi: POST /api/execute is in openapi.json but no function serves it".to_string(),
            "HttpApi: POST /api/exec is routed but not in openapi.json".to_string(),
        ]
    );
    let wrong_function = check(
        "Metadata: { Binary: provider-webhook }",
        "Metadata: { Binary: execute-api }",
    );
    assert_eq!(
        wrong_function,
        ["Callback: routes POST /api/webhooks/job/{record}, which belongs to provider-webhook".to_string()]
    );
    let old_payload = check(
        "Path: /api/execute, PayloadFormatVersion: \"2.0\"",
        "Path: /api/execute, PayloadFormatVersion: \"1.0\"",
    );
    assert_eq!(
        old_payload,
        ["ExecuteApi: HttpApi event Submit: PayloadFormatVersion must be \"2.0\"".to_string()]
    );
    let unknown_api = check(
        "ApiId: !Ref Api, Method: POST, Path: /api/execute",
        "ApiId: !Ref Apj, Method: POST, Path: /api/execute",
    );
    assert_eq!(
        unknown_api,
        ["ExecuteApi: HttpApi event Submit: ApiId must be !Ref of the template's HttpApi".to_string()]
    );
}

#[test]
fn cargo_toml_readers() {
    let toml = concat!(
        "[workspace]\nmembers = [\"lib/core\",\n  \"functions/*\", # all of them\n]\n",
        "[package]\nversion = \"1\"\nname = \"reelay\"\n[dependencies]\nname = \"x\"\n",
    );
    assert_eq!(workspace_members(toml), ["lib/core", "functions/*"]);
    assert!(is_member(&workspace_members(toml), "functions/poller"));
    assert!(!is_member(&workspace_members(toml), "functions/poller/src"));
    assert!(!is_member(&workspace_members(toml), "lib/media"));
    assert_eq!(package_name(toml).as_deref(), Some("reelay"));
    assert_eq!(package_name("[package]\nnamespace = \"a\"\n"), None);
}
