//! Strict plans: unknown keys (with the key meant), keys given twice, job ids; and a property
//! test over generated plans, hostile ones included.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::strict::{self, edit_distance, suggest, STYLE};
use super::tests::TestCatalog;
use super::*;

fn parse(body: &Value) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_bytes(&serde_json::to_vec(body).unwrap())
}

fn parse_bytes(body: &[u8]) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_request(body, &TestCatalog, PlanLimits::default())
}

fn errors_of(body: &Value) -> Vec<PlanError> {
    match parse(body) {
        Ok(request) => panic!("expected errors, got {request:#?}"),
        Err(errors) => errors,
    }
}

fn accepted(body: &Value) -> ExecutionRequest {
    parse(body).unwrap_or_else(|errors| panic!("expected {body} to parse, got {errors:#?}"))
}

/// The one error with this code, job and field; its message.
fn the_error(errors: &[PlanError], code: &str, job: Option<&str>, field: &str) -> String {
    errors
        .iter()
        .find(|e| e.code == code && e.job_id.as_deref() == job && e.field.as_deref() == Some(field))
        .unwrap_or_else(|| panic!("no {code} for job {job:?} at {field} among {errors:#?}"))
        .message
        .clone()
}

fn video(id: &str) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "a scene"}})
}

fn plan(jobs: Vec<Value>) -> Value {
    json!({ "jobs": jobs })
}

/// `job` with `key` set to `value` at `pointer` (`""` for the job itself, `/params`, …).
fn with(mut job: Value, pointer: &str, key: &str, value: Value) -> Value {
    job.pointer_mut(pointer)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.into(), value);
    job
}

// ---------------------------------------------------------------------------------------------
// Unknown keys
// ---------------------------------------------------------------------------------------------

#[test]
fn a_misspelt_dependency_key_is_refused_naming_the_key_meant() {
    for (key, meant) in [
        ("dependOn", "dependsOn"),
        ("depends_on", "dependsOn"),
        ("DependsOn", "dependsOn"),
        ("deps", "dependsOn"),
        ("dependencys", "dependencies"),
        ("operaton", "operation"),
        ("parmas", "params"),
    ] {
        let body = plan(vec![video("a"), with(video("b"), "", key, json!(["a"]))]);
        let message = the_error(&errors_of(&body), "unknown_field", Some("b"), key);
        assert_eq!(
            message,
            format!("job `b`: unknown key `{key}`; did you mean `{meant}`?"),
            "{key}"
        );
    }
}

#[test]
fn a_param_beside_params_is_refused_saying_where_it_goes() {
    let body = plan(vec![with(video("a"), "", "sendJobWebhook", json!(true))]);
    let message = the_error(&errors_of(&body), "unknown_field", Some("a"), "sendJobWebhook");
    assert!(message.contains("did you mean `params.sendJobWebhook`?"), "{message}");
    let merge = json!({"id": "m", "type": "merge", "params": {"items": ["https://e.com/a.mp4"]}, "transition": "fade"});
    let message = the_error(&errors_of(&plan(vec![merge])), "unknown_field", Some("m"), "transition");
    assert!(message.contains("`params.transition`"), "{message}");
    // With nothing near, the known keys are listed.
    let body = plan(vec![with(video("a"), "", "colour", json!("red"))]);
    let message = the_error(&errors_of(&body), "unknown_field", Some("a"), "colour");
    assert!(message.contains("known: id, type, operation, params"), "{message}");
}

#[test]
fn unknown_keys_of_fixed_shapes_are_refused_with_their_path() {
    let merge = |params: Value| json!({"id": "m", "type": "merge", "params": params, "dependsOn": ["v"]});
    let layer = |params: Value| json!({"id": "l", "type": "layer", "params": params});
    let subs = |params: Value| json!({"id": "s", "type": "addSubtitles", "params": params, "dependsOn": ["v"]});
    let cases = [
        (
            merge(json!({"items": ["$v"], "transitons": "fade"})),
            "m",
            "params.transitons",
            Some("transition"),
        ),
        (
            merge(json!({"items": [{"url": "$v", "durration": 2}]})),
            "m",
            "params.items[0].durration",
            Some("duration"),
        ),
        (
            json!({"id": "r", "type": "reframe", "params": {"aspect_ratio": "9:16"}, "dependsOn": ["v"]}),
            "r",
            "params.aspect_ratio",
            Some("aspectRatio"),
        ),
        (
            json!({"id": "r", "type": "reframe", "params": {"aspectRatio": "9:16", "promt": "x"}, "dependsOn": ["v"]}),
            "r",
            "params.promt",
            None,
        ),
        (
            layer(json!({"layers": [{"media": "$v", "chromakey": true}]})),
            "l",
            "params.layers[0].chromakey",
            Some("chromaKey"),
        ),
        (
            layer(json!({"layers": [{"media": "$v", "placement": {"width": "50%", "positon": {"x": 0}}}]})),
            "l",
            "params.layers[0].placement.positon",
            Some("position"),
        ),
        (
            layer(json!({"layers": [{"media": "$v", "placement": {"position": {"x": 0, "z": 1}}}]})),
            "l",
            "params.layers[0].placement.position.z",
            None,
        ),
        (
            layer(json!({"layers": [{"media": "$v"}, {"media": [["$v", {"media": "$v", "duraton": 1}]]}]})),
            "l",
            "params.layers[1].media[0][1].duraton",
            Some("duration"),
        ),
        (
            layer(
                json!({"layers": [{"media": "$v"}, {"media": {"isTimeline": true, "timeline": ["$v"], "total": 2}}]}),
            ),
            "l",
            "params.layers[1].media.total",
            None,
        ),
        (
            layer(json!({"layers": [{"media": "$v"}], "outputwidth": 640})),
            "l",
            "params.outputwidth",
            Some("outputWidth"),
        ),
        (
            subs(json!({"transcript": [{"word": "hi", "start": 0, "end": 1}], "style": {"fontsize": 40}})),
            "s",
            "params.style.fontsize",
            Some("fontSize"),
        ),
        (
            subs(json!({"transcript": [{"word": "hi", "strat": 0, "start": 0, "end": 1}]})),
            "s",
            "params.transcript[0].strat",
            Some("start"),
        ),
    ];
    for (job, id, field, meant) in cases {
        let errors = errors_of(&plan(vec![video("v"), job]));
        let message = the_error(&errors, "unknown_field", Some(id), field);
        match meant {
            Some(meant) => assert!(message.ends_with(&format!("did you mean `{meant}`?")), "{message}"),
            None => assert!(message.contains("; known: "), "{message}"),
        }
    }
}

#[test]
fn every_style_name_the_reader_knows_is_accepted() {
    let values = |key: &str| match key {
        "preset" => json!("youtube"),
        "fontFamily" | "fontName" | "font" => json!("DejaVu Sans"),
        "bold" | "italic" | "uppercase" | "highlightActiveWord" => json!(true),
        "borderStyle" => json!(3),
        "alignment" | "position" => json!("bottom"),
        "animationStyle" | "activeWordEffect" => json!("scale"),
        k if k.to_lowercase().contains("colo") => json!("#FFCC00"),
        _ => json!(2),
    };
    for key in STYLE {
        let job = json!({"id": "s", "type": "addSubtitles", "dependsOn": ["v"], "params": {
            "transcript": [{"word": "hi", "start": 0, "end": 1}], "style": {*key: values(key)}}});
        accepted(&plan(vec![video("v"), job]));
    }
}

#[test]
fn the_request_around_the_plan_is_checked_too() {
    let errors = errors_of(&json!({"executionPlan": {"jobs": [video("a")], "baseExecutionID": "b"},
        "options": {"webhookSecrets": "s", "webhook": {"url": "https://h.example.com", "secert": "s"}},
        "executionplan": {}}));
    assert!(
        the_error(&errors, "unknown_field", None, "executionPlan.baseExecutionID")
            .ends_with("did you mean `baseExecutionId`?")
    );
    assert!(
        the_error(&errors, "unknown_field", None, "options.webhookSecrets").ends_with("did you mean `webhookSecret`?")
    );
    assert!(the_error(&errors, "unknown_field", None, "options.webhook.secert").ends_with("did you mean `secret`?"));
    assert!(the_error(&errors, "unknown_field", None, "executionplan").ends_with("did you mean `executionPlan`?"));
    let errors = errors_of(&json!({"jobs": [video("a")], "webhookURL": "https://h.example.com"}));
    the_error(&errors, "unknown_field", None, "webhookURL");
}

#[test]
fn a_misspelt_unified_param_is_refused_on_a_model_without_a_schema() {
    let body = plan(vec![with(video("a"), "/params", "promt", json!("a fox"))]);
    let message = the_error(&errors_of(&body), "unknown_field", Some("a"), "params.promt");
    assert_eq!(
        message,
        "job `a`: unknown key `promt` in `params`; did you mean `prompt`?"
    );
    // The model cannot be found for a misspelt `modelId`: that is said too.
    let job = json!({"id": "a", "type": "generate", "params": {"provider": "local", "modelID": "video"}});
    let errors = errors_of(&plan(vec![job]));
    the_error(&errors, "unknown_field", Some("a"), "params.modelID");
    // The model's own options pass (the local models take any), and raw params are the
    // schema's to check, as given.
    accepted(&plan(vec![with(video("a"), "/params", "guidance_scale", json!(3.5))]));
    accepted(&plan(vec![
        json!({"id": "a", "type": "generate", "params": {"unified": false, "promt": "x",
        "model": {"provider": "local", "modelId": "video", "options": {"fps": 24}}}}),
    ]));
}

/// `TestCatalog`, with a schema for `local/video`: its options are `speed` and nothing else.
struct SchemaCatalog;

impl Catalog for SchemaCatalog {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup {
        TestCatalog.lookup(provider, model_id)
    }
    fn check(&self, params: &ProviderParams) -> Vec<(String, String)> {
        params
            .options
            .keys()
            .filter(|k| *k != "speed")
            .map(|k| (k.clone(), format!("model `video` has no input `{k}`")))
            .collect()
    }
}

#[test]
fn a_model_with_a_schema_decides_its_options() {
    let run = |job: Value| parse_value(&plan(vec![job]), &SchemaCatalog, PlanLimits::default());
    // `speed` is near `seed`, but the model takes it.
    run(with(video("a"), "/params", "speed", json!(1.5))).unwrap();
    // `promt` the schema refuses, once.
    let errors = run(with(video("a"), "/params", "promt", json!("x"))).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    the_error(&errors, "invalid_model_params", Some("a"), "params.promt");
}

#[test]
fn what_the_sdk_sends_is_accepted() {
    let body = json!({"executionPlan": {"jobs": [
        {"id": "job2", "operation": "pipeline:generate", "output": "$job2", "params": {
            "provider": "local", "modelId": "video", "apiKey": "k", "unified": true, "prompt": "one",
            "duration": 1, "resolution": "720p", "aspectRatio": "16:9", "seed": 3, "cameraMotion": "fixed",
            "sendJobWebhook": true}},
        {"id": "job3", "type": "generateImage", "output": "$job3", "params": {
            "provider": "local", "modelId": "image", "prompt": "a cat", "outputFormat": "png"}},
        {"id": "job4", "type": "generateAudio", "params": {"provider": "local", "modelId": "audio",
            "text": "hi", "voiceId": "21m00Tcm4TlvDq8ikWAM"}},
        {"id": "job5", "type": "lipSync", "params": {"audioUrl": "_audioJobDependency:job4"}, "dependsOn": ["job2"]},
        {"id": "job6", "type": "removeBackground", "params": {"outputType": "green-screen"}, "dependencies": ["job5"]},
        {"id": "job7", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["job6"]},
        {"id": "job8", "type": "addSubtitles", "params": {"language": "en", "style": "default",
            "transcript": [{"word": "hi", "start": 0, "end": 0.5}]}, "dependsOn": ["job7"]},
        {"id": "job9", "type": "merge", "params": {"items": [
            {"url": "_jobDependency:job8", "type": "video"},
            {"url": "_jobDependency:job3", "type": "image", "duration": 1},
            {"url": "_jobDependency:job4", "type": "audio", "offset": 0, "volume": 0.5}]},
            "dependsOn": ["job8", "job3", "job4"], "output": "$job9"},
        {"id": "job1", "type": "layer", "params": {"layers": [
            {"media": ["_mediaJobDependency:job9"], "placement": "full", "main": true},
            {"media": {"isTimeline": true, "timeline": [
                {"media": "_jobDependency:job3", "duration": 1, "placement": "pip", "chromaKey": false},
                {"media": "_jobDependency:job3"}],
                "needsAutoDuration": true, "explicitDuration": 1},
             "placement": {"width": "50%", "height": "50%", "position": {"x": "(W-w)/2", "y": "0"}, "padding": 10, "aspectRatio": "16:9"},
             "chromaKey": true, "chromaKeyColor": "#00FF00", "similarity": 0.3, "blend": 0.1}],
            "outputWidth": 1280, "outputHeight": 720, "mainLayer": 0}, "dependsOn": ["job9", "job3"]}
    ], "baseExecutionId": null}, "options": {"webhook": {"url": "https://h.example.com", "secret": "s"},
        "providerApiKeys": {"replicate": "r8"}}});
    let request = accepted(&body);
    check_invariants(&request);
}

// ---------------------------------------------------------------------------------------------
// Keys given twice
// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_given_twice_is_refused_wherever_it_is() {
    let errors = parse_bytes(br#"{"jobs": [], "jobs": [{"id": "a"}]}"#).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    the_error(&errors, "duplicate_key", None, "jobs");

    let body = br#"{"executionPlan": {"jobs": [{"id": "a", "type": "generate", "params": {"provider": "local",
        "modelId": "video", "prompt": "one", "prompt": "two"}}]}}"#;
    let errors = parse_bytes(body).unwrap_err();
    let message = the_error(&errors, "duplicate_key", Some("a"), "params.prompt");
    assert_eq!(message, "job `a`: the key `params.prompt` is given more than once");

    // Deep inside, escaped alike, and in a job whose id is not usable.
    let body =
        br#"{"jobs": [{"id": "$a", "params": {"layers": [{"placement": {"position": {"x": 1, "\u0078": 2}}}]}}]}"#;
    let errors = parse_bytes(body).unwrap_err();
    the_error(
        &errors,
        "duplicate_key",
        None,
        "jobs[0].params.layers[0].placement.position.x",
    );
    // The same key in two objects is no duplicate.
    accepted(&plan(vec![video("a"), video("b")]));
}

#[test]
fn the_nesting_limit_still_holds() {
    let deep = format!("{{\"jobs\": {}{}}}", "[".repeat(200), "]".repeat(200));
    let errors = parse_bytes(deep.as_bytes()).unwrap_err();
    assert_eq!(errors[0].code, "invalid_json", "{errors:#?}");
}

// ---------------------------------------------------------------------------------------------
// Job ids
// ---------------------------------------------------------------------------------------------

#[test]
fn job_ids_are_printable_short_and_not_references() {
    let long = "j".repeat(129);
    for (id, why) in [
        (long.as_str(), "is 129 characters long"),
        ("job\u{7}1", "control character U+0007"),
        ("job\n1", "control character U+000A"),
        ("job\u{202E}1", "U+202E"),
        ("\u{2066}job1", "U+2066"),
        ("job\u{200F}", "U+200F"),
        ("job\u{061C}", "U+061C"),
        ("$job1", "looks like a reference"),
        ("$", "looks like a reference"),
        ("_videoJobDependency:job1", "looks like a reference"),
        ("_jobDependency:", "looks like a reference"),
    ] {
        let errors = errors_of(&plan(vec![video(id)]));
        let message = the_error(&errors, "invalid_job_id", None, "jobs[0].id");
        assert!(
            message.starts_with("the id of jobs[0] ") && message.contains(why),
            "{message}"
        );
        assert!(id.len() < 3 || !message.contains(id), "the id is not echoed: {message}");
    }
    let longest = "j".repeat(128);
    for id in [longest.as_str(), "job 1", "a$b", "job:1", "_job:1", "Szene-1 🎬", "é"] {
        accepted(&plan(vec![video(id)]));
    }
}

#[test]
fn the_edit_distance_counts_one_for_a_swap() {
    assert_eq!(edit_distance("dependOn", "dependsOn"), 1);
    assert_eq!(edit_distance("ab", "ba"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("prompt", "prompt"), 0);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(suggest("itmes", &["items", "transition"]), Some("items"));
    assert_eq!(suggest("colour", &["items", "transition"]), None);
    // Short keys are held to one edit.
    assert_eq!(suggest("fps", &["seed"]), None);
}

// ---------------------------------------------------------------------------------------------
// Generated plans
// ---------------------------------------------------------------------------------------------

/// What every accepted plan must satisfy, whatever was sent.
pub(super) fn check_invariants(request: &ExecutionRequest) {
    let jobs = &request.plan.jobs;
    assert!(!jobs.is_empty());
    let ids: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), jobs.len(), "duplicate ids accepted: {jobs:#?}");
    for job in jobs {
        let job_deps: HashSet<&str> = job.depends_on.iter().map(String::as_str).collect();
        assert_eq!(job_deps.len(), job.depends_on.len(), "duplicate deps in {job:#?}");
        assert!(
            !job_deps.contains(job.id.as_str()),
            "self dependency accepted: {job:#?}"
        );
        assert!(job_deps.is_subset(&ids), "unknown dependency accepted: {job:#?}");
        let mut sources: Vec<&MediaRef> = Vec::new();
        match &job.params {
            Params::Provider(p) => sources.extend(p.inputs.values()),
            Params::Merge(m) => {
                assert!(!m.items.is_empty());
                sources.extend(m.items.iter().map(|i| &i.source));
            }
            Params::Reframe(r) => sources.push(&r.input),
            Params::Layer(l) => sources.extend(l.sources()),
            Params::Subtitles(s) => {
                sources.push(&s.video);
                if let TranscriptSource::Media(t) = &s.transcript {
                    sources.push(t);
                }
            }
            Params::Base(b) => panic!("the parser never makes base references: {b:?}"),
            Params::Scene(s) => panic!("plans never name scene steps: {s:?}"),
        }
        for source in sources {
            if let MediaRef::Job(id) = source {
                assert!(
                    job_deps.contains(id.as_str()),
                    "{id} used but not a dependency: {job:#?}"
                );
            }
        }
    }
    // Acyclic: Kahn's algorithm consumes every job.
    let mut remaining: Vec<&JobSpec> = jobs.iter().collect();
    let mut done: HashSet<&str> = HashSet::new();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|j| {
            let ready = j.depends_on.iter().all(|d| done.contains(d.as_str()));
            if ready {
                done.insert(j.id.as_str());
            }
            !ready
        });
        assert!(remaining.len() < before, "cycle accepted: {remaining:#?}");
    }
}

const POOL: [&str; 6] = ["job1", "job2", "job3", "job4", "job5", "job6"];

/// A job id: mostly from a small pool (so dependencies hit, miss and loop), sometimes hostile.
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => proptest::sample::select(&POOL[..]).prop_map(Value::from),
        1 => prop_oneof![
            Just(json!("$job1")),
            Just(json!("_videoJobDependency:job1")),
            Just(json!("job\u{202E}1")),
            Just(json!("job\u{0}1")),
            Just(json!("")),
            Just(json!(" ")),
            Just(json!("j".repeat(129))),
            Just(json!(7)),
            "\\PC{1,12}".prop_map(Value::from),
        ],
    ]
}

/// A reference to a job, in any of its forms, or to a job that may not exist.
fn reference() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(
            &[
                "$",
                "_jobDependency:",
                "_videoJobDependency:",
                "_imageJobDependency:",
                "_audioJobDependency:",
                "_transcriptJobDependency:",
            ][..],
        ),
        prop_oneof![proptest::sample::select(&POOL[..]), Just("nowhere")],
    )
        .prop_map(|(marker, id)| json!(format!("{marker}{id}")))
}

fn random_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
        reference(),
        Just(json!("https://cdn.example.com/a.mp4")),
        Just(json!("9:16")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Params for `op` that may be valid: a sensible base, then keys of the op's vocabulary (and
/// some outside it) set to random values.
fn params(op: Operation) -> impl Strategy<Value = Value> {
    let base = match op {
        Operation::Generate => json!({"provider": "local", "modelId": "video", "prompt": "x"}),
        Operation::GenerateImage => json!({"provider": "local", "modelId": "image", "prompt": "x"}),
        Operation::GenerateAudio => json!({"provider": "local", "modelId": "audio", "text": "x"}),
        Operation::Transcribe => json!({"provider": "replicate", "modelId": "openai/whisper"}),
        Operation::Merge => json!({"items": []}),
        Operation::Reframe => json!({"aspectRatio": "9:16"}),
        Operation::AddSubtitles => json!({"transcript": [{"word": "a", "start": 0, "end": 1}]}),
        Operation::Layer => json!({"layers": [{"media": "$job1"}]}),
        _ => json!({}),
    };
    let keys = &[
        "items",
        "url",
        "video",
        "image",
        "audio",
        "videoUrl",
        "audioUrl",
        "transcript",
        "style",
        "layers",
        "media",
        "prompt",
        "promt",
        "aspectRatio",
        "aspect_ratio",
        "mode",
        "duration",
        "sendJobWebhook",
        "transition",
        "unified",
        "fps",
    ][..];
    let value = prop_oneof![3 => random_json(), 2 => reference(),
        1 => proptest::collection::vec(reference(), 1..3).prop_map(Value::from)];
    proptest::collection::vec((proptest::sample::select(keys), value), 0..3).prop_map(move |extra| {
        let mut params = base.clone();
        for (key, value) in extra {
            params[key] = value;
        }
        params
    })
}

/// A generated job, and whether it carries something that must be refused (a key a job does
/// not have).
fn job() -> impl Strategy<Value = (Value, bool)> {
    (
        id(),
        proptest::sample::select(&Operation::ALL[..]),
        0..8u8,
        proptest::collection::vec(
            prop_oneof![proptest::sample::select(&POOL[..]).prop_map(Value::from), id()],
            0..3,
        ),
        proptest::option::weighted(0.15, ("[a-zA-Z_]{1,12}", random_json())),
    )
        .prop_flat_map(|(id, op, form, deps, extra)| {
            params(op).prop_map(move |params| {
                let mut job = Map::new();
                job.insert("id".into(), id.clone());
                let name = match form {
                    0 => format!("pipeline:{}", op.name()),
                    1 => "bogus".to_string(),
                    _ => op.name().to_string(),
                };
                job.insert(if form == 2 { "operation" } else { "type" }.into(), name.into());
                job.insert("params".into(), if form == 3 { random_json_now() } else { params });
                if !deps.is_empty() {
                    job.insert(
                        if form == 4 { "dependencies" } else { "dependsOn" }.into(),
                        Value::from(deps.clone()),
                    );
                }
                let mut refused = false;
                if let Some((key, value)) = &extra {
                    refused = !strict::JOB.contains(&key.as_str());
                    job.insert(key.clone(), value.clone());
                }
                (Value::Object(job), refused)
            })
        })
}

/// A value that is not params (form 3 of `job`).
fn random_json_now() -> Value {
    json!(["not", "params"])
}

fn plan_body() -> impl Strategy<Value = (Value, bool)> {
    (proptest::collection::vec(job(), 1..7), any::<bool>()).prop_map(|(jobs, nested)| {
        let refused = jobs.iter().any(|(_, r)| *r);
        let jobs: Vec<Value> = jobs.into_iter().map(|(j, _)| j).collect();
        let body = if nested {
            json!({"executionPlan": {"jobs": jobs}, "options": {}})
        } else {
            json!({ "jobs": jobs })
        };
        (body, refused)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever plan arrives: no panic; a refusal names a job or a field for each problem; an
    /// accepted plan is acyclic, its ids are usable, and every reference and dependency is to
    /// one of its jobs.
    #[test]
    fn generated_plans_are_accepted_sound_or_refused_with_a_place((body, must_refuse) in plan_body()) {
        match parse(&body) {
            Ok(request) => {
                prop_assert!(!must_refuse, "a job key outside the shape was accepted: {body}");
                check_invariants(&request);
                for job in &request.plan.jobs {
                    prop_assert!(strict::id_problem(&job.id).is_none(), "{:?}", job.id);
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(!e.code.is_empty() && !e.message.is_empty(), "{e:?}");
                    prop_assert!(e.job_id.is_some() || e.field.is_some(), "names no job or field: {e:?}");
                }
            }
        }
    }

    /// Raw bytes, and generated plans with a key repeated: never a panic, always an answer.
    #[test]
    fn bytes_and_repeated_keys_never_panic((body, _) in plan_body(), cut in any::<prop::sample::Index>()) {
        let text = serde_json::to_string(&body).unwrap();
        let doubled = text.replacen("\"jobs\":", "\"jobs\":[],\"jobs\":", 1);
        let errors = parse_bytes(doubled.as_bytes()).unwrap_err();
        prop_assert!(errors.iter().any(|e| e.code == "duplicate_key" && e.field.as_deref() == Some(if doubled.starts_with("{\"executionPlan\"") { "executionPlan.jobs" } else { "jobs" })), "{errors:#?}");
        let bytes = &text.as_bytes()[..cut.index(text.len())];
        let _ = parse_bytes(bytes);
    }
}
