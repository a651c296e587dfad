//! Unit tests of the plan parser and validator against the wire forms of `api-compat.md`.

use serde_json::{json, Value};

use super::strict_tests::check_invariants;
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The models the tests can use: `(provider, model id, operation, output)`.
const MODELS: &[(&str, &str, Operation, MediaKind)] = &[
    ("local", "video", Operation::Generate, MediaKind::Video),
    ("local", "image", Operation::GenerateImage, MediaKind::Image),
    ("local", "audio", Operation::GenerateAudio, MediaKind::Audio),
    (
        "replicate",
        "bytedance/seedance-1-pro",
        Operation::Generate,
        MediaKind::Video,
    ),
    (
        "replicate",
        "openai/whisper",
        Operation::Transcribe,
        MediaKind::Transcript,
    ),
    ("fal", "veed/fabric-1.0", Operation::LipSync, MediaKind::Video),
    ("fal", "veed/lipsync", Operation::LipSync, MediaKind::Video),
    (
        "replicate",
        "arielreplicate/robust_video_matting",
        Operation::RemoveBackground,
        MediaKind::Video,
    ),
    (
        "replicate",
        "google/nano-banana-pro",
        Operation::GenerateImage,
        MediaKind::Image,
    ),
    (
        "elevenlabs",
        "elevenlabs/turbo-v2.5",
        Operation::GenerateAudio,
        MediaKind::Audio,
    ),
];

pub(super) struct TestCatalog;

impl Catalog for TestCatalog {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup {
        let of_provider: Vec<_> = MODELS.iter().filter(|m| m.0 == provider).collect();
        if of_provider.is_empty() {
            let mut names: Vec<String> = MODELS.iter().map(|m| m.0.to_string()).collect();
            names.dedup();
            return ModelLookup::UnknownProvider(names);
        }
        match of_provider.iter().find(|m| m.1 == model_id) {
            Some(&&(_, id, operation, output)) => ModelLookup::Found(ModelInfo {
                id: id.to_string(),
                operations: vec![operation],
                output,
                completion: Completion::Polling,
                deadline: DEFAULT_DEADLINE,
            }),
            None => ModelLookup::UnknownModel(of_provider.iter().map(|m| m.1.to_string()).collect()),
        }
    }

    fn default_model(&self, operation: Operation) -> Option<(String, String)> {
        let (provider, model) = match operation {
            Operation::LipSync => ("fal", "veed/lipsync"),
            Operation::RemoveBackground => ("replicate", "arielreplicate/robust_video_matting"),
            _ => return None,
        };
        Some((provider.into(), model.into()))
    }

    fn route(&self, provider: &str, model_id: &str) -> Option<String> {
        (provider == "replicate" && model_id == "elevenlabs/turbo-v2.5").then(|| "elevenlabs".into())
    }
}

fn body_bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("a Value always serialises")
}

/// Parses through the byte entry point, as the API does.
fn parse(body: &Value) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_request(&body_bytes(body), &TestCatalog, PlanLimits::default())
}

fn parse_ok(body: &Value) -> ExecutionRequest {
    match parse(body) {
        Ok(request) => request,
        Err(errors) => panic!("expected the plan to parse, got {errors:#?}"),
    }
}

fn parse_err(body: &Value) -> Vec<PlanError> {
    match parse(body) {
        Ok(request) => panic!("expected errors, got {request:#?}"),
        Err(errors) => {
            assert!(!errors.is_empty(), "an Err must carry at least one error");
            errors
        }
    }
}

/// The error with exactly this code, job and field; panics listing every error otherwise.
fn find_error<'a>(errors: &'a [PlanError], code: &str, job: Option<&str>, field: Option<&str>) -> &'a PlanError {
    errors
        .iter()
        .find(|e| e.code == code && e.job_id.as_deref() == job && e.field.as_deref() == field)
        .unwrap_or_else(|| panic!("no error {code} (job {job:?}, field {field:?}) among {errors:#?}"))
}

/// Asserts the plan fails with exactly one error, and returns it.
fn only_error(body: &Value, code: &str, job: Option<&str>, field: Option<&str>) -> PlanError {
    let errors = parse_err(body);
    assert_eq!(errors.len(), 1, "expected exactly one error, got {errors:#?}");
    find_error(&errors, code, job, field).clone()
}

fn codes(errors: &[PlanError]) -> Vec<&str> {
    errors.iter().map(|e| e.code.as_str()).collect()
}

fn plan(jobs: Vec<Value>) -> Value {
    json!({ "jobs": jobs })
}

fn video_job(id: &str) -> Value {
    json!({
        "id": id,
        "type": "generate",
        "params": {"provider": "local", "modelId": "video", "prompt": format!("scene {id}")}
    })
}

fn image_job(id: &str) -> Value {
    json!({
        "id": id,
        "type": "generateImage",
        "params": {"provider": "local", "modelId": "image", "prompt": "a cat"}
    })
}

fn audio_job(id: &str) -> Value {
    json!({
        "id": id,
        "type": "generateAudio",
        "params": {"provider": "local", "modelId": "audio", "text": "hello"}
    })
}

fn merge_job(id: &str, items: Value) -> Value {
    json!({ "id": id, "type": "merge", "params": { "items": items } })
}

fn reframe_job(id: &str, depends_on: &[&str]) -> Value {
    json!({
        "id": id,
        "type": "reframe",
        "params": { "aspectRatio": "9:16" },
        "dependsOn": depends_on
    })
}

/// Sets a top-level field of a job.
fn with(mut job: Value, key: &str, value: Value) -> Value {
    job[key] = value;
    job
}

/// Sets one param of a job.
fn with_param(mut job: Value, key: &str, value: Value) -> Value {
    job["params"][key] = value;
    job
}

/// Removes one param of a job.
fn without_param(mut job: Value, key: &str) -> Value {
    job["params"].as_object_mut().expect("params").remove(key);
    job
}

fn job<'a>(request: &'a ExecutionRequest, id: &str) -> &'a JobSpec {
    request
        .plan
        .jobs
        .iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("no job {id} in {:#?}", request.plan))
}

fn deps(job: &JobSpec) -> Vec<&str> {
    job.depends_on.iter().map(String::as_str).collect()
}

fn provider_params(job: &JobSpec) -> &ProviderParams {
    match &job.params {
        Params::Provider(p) => p,
        other => panic!("job {} has no provider params: {other:#?}", job.id),
    }
}

fn merge_params(job: &JobSpec) -> &MergeParams {
    match &job.params {
        Params::Merge(p) => p,
        other => panic!("job {} has no merge params: {other:#?}", job.id),
    }
}

fn reframe_params(job: &JobSpec) -> &ReframeParams {
    match &job.params {
        Params::Reframe(p) => p,
        other => panic!("job {} has no reframe params: {other:#?}", job.id),
    }
}

fn job_ref(id: &str) -> MediaRef {
    MediaRef::Job(id.to_string())
}

/// Builds `depth` nested arrays around `leaf` without recursion.
fn nested_arrays(depth: usize, leaf: Value) -> Value {
    let mut value = leaf;
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

/// Drops a value of any depth without recursion (serde_json's own drop recurses).
fn drop_iteratively(value: Value) {
    let mut stack = vec![value];
    while let Some(mut value) = stack.pop() {
        match &mut value {
            Value::Array(items) => stack.append(items),
            Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire forms: where the plan and its options travel
// ---------------------------------------------------------------------------------------------

#[test]
fn top_level_plan_with_webhook_object_and_base_execution_id() {
    let body = json!({
        "jobs": [video_job("job1")],
        "baseExecutionId": "exec_base_1",
        "webhook": {"url": "https://hooks.example.com/done", "secret": "whsec_top"}
    });
    let request = parse_ok(&body);
    assert_eq!(request.plan.jobs.len(), 1);
    assert_eq!(request.base_execution_id.as_deref(), Some("exec_base_1"));
    let webhook = request.webhook.as_ref().expect("webhook");
    assert_eq!(webhook.url, "https://hooks.example.com/done");
    assert_eq!(webhook.secret.as_ref().map(Secret::expose), Some("whsec_top"));
    assert!(request.provider_api_keys.is_empty());
}

#[test]
fn nested_plan_with_options_webhook_string_and_webhook_secret() {
    let body = json!({
        "executionPlan": {"jobs": [video_job("job1")]},
        "options": {
            "webhook": "http://hooks.example.com/sdk",
            "webhookSecret": "whsec_loose",
            "baseExecutionId": "exec_from_options"
        }
    });
    let request = parse_ok(&body);
    assert_eq!(request.plan.jobs[0].id, "job1");
    assert_eq!(request.base_execution_id.as_deref(), Some("exec_from_options"));
    let webhook = request.webhook.as_ref().expect("webhook");
    assert_eq!(webhook.url, "http://hooks.example.com/sdk");
    assert_eq!(webhook.secret.as_ref().map(Secret::expose), Some("whsec_loose"));
}

#[test]
fn nested_plan_with_webhook_object_in_options_prefers_its_own_secret() {
    let body = json!({
        "executionPlan": {"jobs": [video_job("job1")]},
        "options": {
            "webhook": {"url": "https://hooks.example.com/obj", "secret": "inner"},
            "webhookSecret": "outer"
        }
    });
    let webhook = parse_ok(&body).webhook.expect("webhook");
    assert_eq!(webhook.url, "https://hooks.example.com/obj");
    assert_eq!(webhook.secret.as_ref().map(Secret::expose), Some("inner"));
}

#[test]
fn webhook_without_secret_and_secret_without_webhook() {
    let unsigned = parse_ok(&json!({
        "executionPlan": {"jobs": [video_job("job1")]},
        "options": {"webhook": "https://hooks.example.com/x"}
    }));
    assert_eq!(unsigned.webhook.expect("webhook").secret, None);

    let no_webhook = parse_ok(&json!({
        "executionPlan": {"jobs": [video_job("job1")]},
        "options": {"webhookSecret": "orphan"}
    }));
    assert_eq!(no_webhook.webhook, None);
}

#[test]
fn base_execution_id_inside_execution_plan() {
    let body = json!({
        "executionPlan": {"jobs": [video_job("job1")], "baseExecutionId": "exec_in_plan"},
        "options": {}
    });
    let request = parse_ok(&body);
    assert_eq!(request.base_execution_id.as_deref(), Some("exec_in_plan"));
    assert_eq!(request.webhook, None);
}

#[test]
fn no_options_at_all() {
    let request = parse_ok(&json!({"executionPlan": {"jobs": [video_job("job1")]}}));
    assert_eq!(request.base_execution_id, None);
    assert_eq!(request.webhook, None);
    assert!(request.provider_api_keys.is_empty());
}

#[test]
fn provider_api_keys_land_in_the_request() {
    let body = json!({
        "executionPlan": {"jobs": [video_job("job1")]},
        "options": {"providerApiKeys": {
            "replicate": "r8_replicate_key",
            "fal": "fal_key_value",
            "elevenlabs": null
        }}
    });
    let request = parse_ok(&body);
    let keys: Vec<(&str, &str)> = request
        .provider_api_keys
        .iter()
        .map(|(provider, key)| (provider.as_str(), key.expose()))
        .collect();
    assert_eq!(keys, [("fal", "fal_key_value"), ("replicate", "r8_replicate_key")]);
}

#[test]
fn type_and_operation_are_both_accepted() {
    let by_operation = json!({
        "id": "job2",
        "operation": "generateImage",
        "params": {"provider": "local", "modelId": "image", "prompt": "p"}
    });
    let request = parse_ok(&plan(vec![video_job("job1"), by_operation]));
    assert_eq!(job(&request, "job1").operation, Operation::Generate);
    assert_eq!(job(&request, "job2").operation, Operation::GenerateImage);
}

#[test]
fn pipeline_prefix_is_stripped() {
    let mut reframe = reframe_job("job2", &["job1"]);
    reframe.as_object_mut().unwrap().remove("type");
    reframe["operation"] = json!("pipeline:reframe");
    let request = parse_ok(&plan(vec![
        with(video_job("job1"), "type", json!("pipeline:generate")),
        reframe,
    ]));
    assert_eq!(job(&request, "job1").operation, Operation::Generate);
    assert_eq!(job(&request, "job2").operation, Operation::Reframe);
}

#[test]
fn depends_on_and_dependencies_are_both_accepted() {
    let request = parse_ok(&plan(vec![
        video_job("job1"),
        video_job("job2"),
        with(video_job("job3"), "dependsOn", json!(["job1"])),
        with(video_job("job4"), "dependencies", json!(["job2", "job1"])),
    ]));
    assert_eq!(deps(job(&request, "job3")), ["job1"]);
    assert_eq!(deps(job(&request, "job4")), ["job2", "job1"]);
    assert!(deps(job(&request, "job1")).is_empty());
}

#[test]
fn output_field_is_informational() {
    let request = parse_ok(&plan(vec![with(video_job("job1"), "output", json!("$job1"))]));
    assert!(
        deps(job(&request, "job1")).is_empty(),
        "`output` must not create a dependency"
    );
}

#[test]
fn send_job_webhook_flag() {
    let request = parse_ok(&plan(vec![
        with_param(video_job("job1"), "sendJobWebhook", json!(true)),
        video_job("job2"),
    ]));
    assert!(job(&request, "job1").send_job_webhook);
    assert!(!job(&request, "job2").send_job_webhook);
    assert!(!provider_params(job(&request, "job1"))
        .options
        .contains_key("sendJobWebhook"));
}

#[test]
fn an_edit_may_ask_for_a_quality_and_nothing_else_may() {
    let request = parse_ok(&plan(vec![
        video_job("scene"),
        with_param(reframe_job("draft", &["scene"]), "quality", json!("draft")),
        with_param(reframe_job("high", &["scene"]), "quality", json!("high")),
        reframe_job("plain", &["scene"]),
    ]));
    assert_eq!(job(&request, "draft").quality, Quality::Draft);
    assert_eq!(job(&request, "high").quality, Quality::High);
    assert_eq!(job(&request, "plain").quality, Quality::Standard);
    let error = only_error(
        &plan(vec![
            video_job("scene"),
            with_param(reframe_job("r", &["scene"]), "quality", json!("ultra")),
        ]),
        "invalid_param",
        Some("r"),
        Some("params.quality"),
    );
    assert!(error.message.contains("draft, standard, high"), "{}", error.message);
    // A provider job's quality is the model's own option, checked against its schema; on a
    // job itself it is an unknown key.
    let errors = parse_err(&plan(vec![with(video_job("scene"), "quality", json!("high"))]));
    find_error(&errors, "unknown_field", Some("scene"), Some("quality"));
}

// ---------------------------------------------------------------------------------------------
// References inside params
// ---------------------------------------------------------------------------------------------

#[test]
fn dollar_reference_implies_a_dependency() {
    let request = parse_ok(&plan(vec![
        image_job("job1"),
        with_param(video_job("job2"), "image", json!("$job1")),
    ]));
    let job2 = job(&request, "job2");
    assert_eq!(deps(job2), ["job1"]);
    assert_eq!(provider_params(job2).inputs.get("image"), Some(&job_ref("job1")));
}

#[test]
fn video_marker_implies_a_dependency() {
    let lip_sync = json!({
        "id": "job2",
        "type": "lipSync",
        "params": {
            "provider": "fal",
            "modelId": "veed/fabric-1.0",
            "video": "_videoJobDependency:job1",
            "audioUrl": "https://cdn.example.com/voice.mp3"
        }
    });
    let request = parse_ok(&plan(vec![video_job("job1"), lip_sync]));
    let job2 = job(&request, "job2");
    assert_eq!(deps(job2), ["job1"]);
    let inputs = &provider_params(job2).inputs;
    assert_eq!(inputs.get("video"), Some(&job_ref("job1")));
    assert_eq!(
        inputs.get("audioUrl"),
        Some(&MediaRef::Url("https://cdn.example.com/voice.mp3".into()))
    );
}

#[test]
fn image_marker_implies_a_dependency() {
    let generate = json!({
        "id": "job2",
        "type": "generate",
        "params": {
            "provider": "replicate",
            "modelId": "bytedance/seedance-1-pro",
            "prompt": "animate it",
            "image": "_imageJobDependency:job1"
        }
    });
    let request = parse_ok(&plan(vec![image_job("job1"), generate]));
    let job2 = job(&request, "job2");
    assert_eq!(deps(job2), ["job1"]);
    assert_eq!(provider_params(job2).inputs.get("image"), Some(&job_ref("job1")));
}

#[test]
fn audio_marker_implies_a_dependency() {
    let lip_sync = json!({
        "id": "job3",
        "type": "lipSync",
        "params": {
            "provider": "fal",
            "modelId": "veed/fabric-1.0",
            "audioUrl": "_audioJobDependency:job2"
        },
        "dependsOn": ["job1"]
    });
    let request = parse_ok(&plan(vec![video_job("job1"), audio_job("job2"), lip_sync]));
    let job3 = job(&request, "job3");
    assert_eq!(deps(job3), ["job1", "job2"]);
    assert_eq!(provider_params(job3).inputs.get("audioUrl"), Some(&job_ref("job2")));
}

#[test]
fn transcript_marker_implies_a_dependency() {
    let transcribe = json!({
        "id": "job2",
        "type": "transcribe",
        "params": {
            "provider": "replicate",
            "modelId": "openai/whisper",
            "video": "_videoJobDependency:job1"
        }
    });
    let captioned = with_param(video_job("job3"), "captions", json!("_transcriptJobDependency:job2"));
    let request = parse_ok(&plan(vec![video_job("job1"), transcribe, captioned]));
    assert_eq!(deps(job(&request, "job2")), ["job1"]);
    let job3 = job(&request, "job3");
    assert_eq!(deps(job3), ["job2"]);
    // Raw params keep the marker; it is resolved when the job runs.
    assert_eq!(
        provider_params(job3).options.get("captions"),
        Some(&json!("_transcriptJobDependency:job2"))
    );
}

#[test]
fn generic_job_marker_implies_a_dependency() {
    let merge = merge_job(
        "job1",
        json!([{"url": "_jobDependency:job2"}, {"url": "_jobDependency:job3"}]),
    );
    let request = parse_ok(&plan(vec![video_job("job2"), video_job("job3"), merge]));
    let job1 = job(&request, "job1");
    assert_eq!(deps(job1), ["job2", "job3"]);
    let sources: Vec<&MediaRef> = merge_params(job1).items.iter().map(|i| &i.source).collect();
    assert_eq!(sources, [&job_ref("job2"), &job_ref("job3")]);
}

#[test]
fn reference_function_recognises_every_form() {
    assert_eq!(reference("$job1"), Some("job1"));
    for marker in ["video", "image", "audio", "transcript"] {
        assert_eq!(
            reference(&format!("_{marker}JobDependency:job7")),
            Some("job7"),
            "{marker}"
        );
    }
    assert_eq!(reference("_jobDependency:job7"), Some("job7"));
    for not_a_reference in [
        "$",
        "$two words",
        "job1",
        "https://cdn.example.com/a.mp4",
        "_videoJobDependency:",
        "videoJobDependency:job1",
        "_video2JobDependency:job1",
        "_videoDependency:job1",
    ] {
        assert_eq!(reference(not_a_reference), None, "{not_a_reference}");
    }
}

#[test]
fn references_and_depends_on_are_deduplicated_in_first_seen_order() {
    let job3 = json!({
        "id": "job3",
        "type": "generate",
        "params": {
            "provider": "local",
            "modelId": "video",
            "image": "$job1",
            "startImage": "_imageJobDependency:job1",
            "endImage": "$job2"
        },
        "dependsOn": ["job2", "job1", "job2"]
    });
    let request = parse_ok(&plan(vec![image_job("job1"), image_job("job2"), job3]));
    assert_eq!(deps(job(&request, "job3")), ["job2", "job1"]);
}

#[test]
fn references_nested_in_arrays_and_objects_are_found() {
    let job2 = with_param(
        video_job("job2"),
        "referenceImages",
        json!([{"ref": {"deep": ["https://a.example/x.png", "$job1"]}}]),
    );
    let request = parse_ok(&plan(vec![image_job("job1"), job2]));
    assert_eq!(deps(job(&request, "job2")), ["job1"]);
}

#[test]
fn media_inputs_accept_urls_and_reject_other_strings() {
    let request = parse_ok(&plan(vec![with_param(
        video_job("job1"),
        "image",
        json!("https://cdn.example.com/start.png"),
    )]));
    assert_eq!(
        provider_params(job(&request, "job1")).inputs.get("image"),
        Some(&MediaRef::Url("https://cdn.example.com/start.png".into()))
    );

    only_error(
        &plan(vec![with_param(video_job("job1"), "image", json!("start.png"))]),
        "invalid_param",
        Some("job1"),
        Some("params.image"),
    );
    only_error(
        &plan(vec![with_param(video_job("job1"), "image", json!(7))]),
        "invalid_param",
        Some("job1"),
        Some("params.image"),
    );
}

// ---------------------------------------------------------------------------------------------
// Provider params
// ---------------------------------------------------------------------------------------------

#[test]
fn unified_params_are_typed() {
    let job1 = json!({
        "id": "job1",
        "type": "generate",
        "params": {
            "provider": "replicate",
            "modelId": "bytedance/seedance-1-pro",
            "prompt": "a sunrise",
            "duration": 5,
            "resolution": "720p",
            "aspectRatio": "16:9",
            "seed": 42,
            "cameraMotion": "pan-left",
            "unified": true
        }
    });
    let request = parse_ok(&plan(vec![job1]));
    let p = provider_params(job(&request, "job1"));
    assert_eq!(p.provider, "replicate");
    assert_eq!(p.model_id, "bytedance/seedance-1-pro");
    assert_eq!(p.prompt.as_deref(), Some("a sunrise"));
    assert_eq!(p.duration, Some(5.0));
    assert_eq!(p.resolution.as_deref(), Some("720p"));
    assert_eq!(p.aspect_ratio, Some(AspectRatio { w: 16, h: 9 }));
    assert_eq!(p.seed, Some(42));
    assert!(p.unified);
    assert!(p.inputs.is_empty());
    // Unknown params pass through; known ones do not.
    assert_eq!(p.options.get("cameraMotion"), Some(&json!("pan-left")));
    for known in ["provider", "modelId", "prompt", "duration", "seed", "unified"] {
        assert!(!p.options.contains_key(known), "{known} leaked into options");
    }
}

#[test]
fn unified_false_with_model_object() {
    let job2 = json!({
        "id": "job2",
        "type": "generate",
        "params": {
            "unified": false,
            "model": {
                "provider": "replicate",
                "modelId": "bytedance/seedance-1-pro",
                "options": {
                    "prompt_text": "raw prompt",
                    "fps": 24,
                    "first_frame": "_imageJobDependency:job1"
                }
            }
        }
    });
    let request = parse_ok(&plan(vec![image_job("job1"), job2]));
    let job2 = job(&request, "job2");
    let p = provider_params(job2);
    assert!(!p.unified);
    assert_eq!(p.provider, "replicate");
    assert_eq!(p.model_id, "bytedance/seedance-1-pro");
    assert_eq!(p.prompt, None);
    assert_eq!(p.options.get("prompt_text"), Some(&json!("raw prompt")));
    assert_eq!(p.options.get("fps"), Some(&json!(24)));
    assert_eq!(p.options.get("first_frame"), Some(&json!("_imageJobDependency:job1")));
    assert!(
        !p.options.contains_key("model"),
        "the model object itself is not an option"
    );
    // A reference inside the raw options is still a dependency.
    assert_eq!(deps(job2), ["job1"]);
}

#[test]
fn seed_must_be_an_integer() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "seed", json!(1.5))]),
        "invalid_param",
        Some("job1"),
        Some("params.seed"),
    );
    assert!(err.message.contains("integer"), "{}", err.message);
    only_error(
        &plan(vec![with_param(video_job("job1"), "seed", json!("42"))]),
        "invalid_param",
        Some("job1"),
        Some("params.seed"),
    );
    let request = parse_ok(&plan(vec![with_param(video_job("job1"), "seed", json!(-7))]));
    assert_eq!(provider_params(&request.plan.jobs[0]).seed, Some(-7));
}

// ---------------------------------------------------------------------------------------------
// The SDK's job order, compose() and chains
// ---------------------------------------------------------------------------------------------

#[test]
fn sdk_ordering_makes_the_last_job_final() {
    // compose(merge([genA, genB])) → [job2 generate, job3 generate, job1 merge dependsOn [job2, job3]]
    let merge = with(
        merge_job(
            "job1",
            json!([{"url": "_jobDependency:job2"}, {"url": "_jobDependency:job3"}]),
        ),
        "dependsOn",
        json!(["job2", "job3"]),
    );
    let request = parse_ok(&json!({
        "executionPlan": {"jobs": [video_job("job2"), video_job("job3"), merge]},
        "options": {}
    }));
    let ids: Vec<&str> = request.plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["job2", "job3", "job1"], "the array order is kept");
    let last = request.plan.final_job().expect("final job");
    assert_eq!(last.id, "job1");
    assert_eq!(last.operation, Operation::Merge);
    assert_eq!(deps(last), ["job2", "job3"]);
}

#[test]
fn consecutive_generates_are_independent() {
    let request = parse_ok(&plan(vec![video_job("job1"), video_job("job2"), video_job("job3")]));
    assert!(request.plan.jobs.iter().all(|j| j.depends_on.is_empty()));
    assert_eq!(request.plan.final_job().map(|j| j.id.as_str()), Some("job3"));
}

#[test]
fn unwired_merge_takes_the_preceding_scenes_in_order() {
    // compose(sceneA, sceneB, merge())
    let request = parse_ok(&plan(vec![
        video_job("job1"),
        video_job("job2"),
        merge_job("job3", json!([])),
    ]));
    let merge = job(&request, "job3");
    assert_eq!(deps(merge), ["job1", "job2"]);
    let params = merge_params(merge);
    let sources: Vec<&MediaRef> = params.items.iter().map(|i| &i.source).collect();
    assert_eq!(sources, [&job_ref("job1"), &job_ref("job2")]);
    assert!(params.items.iter().all(|i| i.kind == Some(MediaKind::Video)));
    assert_eq!(params.transition, None);
}

#[test]
fn unwired_merge_without_items_key_skips_consumed_jobs() {
    // img is consumed by scene1, so only the scenes are merged; `items` may be absent entirely.
    let merge = json!({"id": "m", "type": "merge", "params": {"addTransitions": true}});
    let request = parse_ok(&plan(vec![
        image_job("img"),
        with_param(video_job("scene1"), "image", json!("$img")),
        video_job("scene2"),
        merge,
    ]));
    let merge = job(&request, "m");
    assert_eq!(deps(merge), ["scene1", "scene2"]);
    let sources: Vec<&MediaRef> = merge_params(merge).items.iter().map(|i| &i.source).collect();
    assert_eq!(sources, [&job_ref("scene1"), &job_ref("scene2")]);
    assert_eq!(request.plan.final_job().map(|j| j.id.as_str()), Some("m"));
}

#[test]
fn unwired_merge_with_nothing_before_it_is_an_error() {
    only_error(
        &plan(vec![merge_job("job1", json!([]))]),
        "invalid_param",
        Some("job1"),
        Some("params.items"),
    );
}

#[test]
fn reframe_with_only_depends_on_takes_its_dependency_as_input() {
    let request = parse_ok(&plan(vec![video_job("job2"), reframe_job("job1", &["job2"])]));
    let reframe = job(&request, "job1");
    assert_eq!(deps(reframe), ["job2"]);
    let p = reframe_params(reframe);
    assert_eq!(p.input, job_ref("job2"));
    assert_eq!(p.aspect_ratio, AspectRatio { w: 9, h: 16 });
    assert_eq!(p.mode, ReframeMode::Crop);
    assert_eq!(p.short_side, 1080);
}

#[test]
fn reframe_picks_the_video_dependency_and_reads_mode_and_resolution() {
    let reframe = json!({
        "id": "r",
        "type": "reframe",
        "params": {"aspectRatio": "1:1", "mode": "pad", "resolution": "720p"},
        "dependsOn": ["img", "vid"]
    });
    let request = parse_ok(&plan(vec![image_job("img"), video_job("vid"), reframe]));
    let p = reframe_params(job(&request, "r"));
    assert_eq!(p.input, job_ref("vid"), "the image dependency is not a video");
    assert_eq!(p.mode, ReframeMode::Pad);
    assert_eq!(p.short_side, 720);
}

#[test]
fn reframe_with_an_explicit_input() {
    let by_url = with_param(reframe_job("r", &[]), "video", json!("https://cdn.example.com/in.mp4"));
    let request = parse_ok(&plan(vec![by_url]));
    assert_eq!(
        reframe_params(job(&request, "r")).input,
        MediaRef::Url("https://cdn.example.com/in.mp4".into())
    );

    let by_reference = with_param(reframe_job("r", &[]), "videoUrl", json!("$v"));
    let request = parse_ok(&plan(vec![video_job("v"), by_reference]));
    let r = job(&request, "r");
    assert_eq!(reframe_params(r).input, job_ref("v"));
    assert_eq!(deps(r), ["v"]);
}

#[test]
fn a_chain_of_transforms() {
    let request = parse_ok(&plan(vec![
        video_job("job3"),
        reframe_job("job2", &["job3"]),
        with(reframe_job("job1", &["job2"]), "operation", json!("pipeline:reframe")),
    ]));
    assert_eq!(reframe_params(job(&request, "job1")).input, job_ref("job2"));
    assert_eq!(reframe_params(job(&request, "job2")).input, job_ref("job3"));
    assert_eq!(request.plan.final_job().map(|j| j.id.as_str()), Some("job1"));
}

// ---------------------------------------------------------------------------------------------
// Merge params
// ---------------------------------------------------------------------------------------------

#[test]
fn merge_items_with_image_duration_audio_offset_volume_and_fade() {
    let mut merge = merge_job(
        "m",
        json!([
            {"url": "$v1"},
            {"url": "https://cdn.example.com/still.png", "type": "image", "duration": 2.5},
            {"url": "$a1", "offset": 1.5, "volume": 0.8},
            "https://cdn.example.com/outro.mp4"
        ]),
    );
    merge["params"]["transition"] = json!("fade");
    let request = parse_ok(&plan(vec![video_job("v1"), audio_job("a1"), merge]));
    let m = job(&request, "m");
    assert_eq!(deps(m), ["v1", "a1"]);
    let p = merge_params(m);
    assert_eq!(p.items.len(), 4);

    assert_eq!(p.items[0].source, job_ref("v1"));
    assert_eq!(
        p.items[0].kind,
        Some(MediaKind::Video),
        "kind comes from the job's output"
    );

    assert_eq!(
        p.items[1].source,
        MediaRef::Url("https://cdn.example.com/still.png".into())
    );
    assert_eq!(p.items[1].kind, Some(MediaKind::Image));
    assert_eq!(p.items[1].duration, Some(2.5));

    assert_eq!(p.items[2].source, job_ref("a1"));
    assert_eq!(p.items[2].kind, Some(MediaKind::Audio));
    assert_eq!(p.items[2].offset, Some(1.5));
    assert_eq!(p.items[2].volume, Some(0.8));

    assert_eq!(
        p.items[3].source,
        MediaRef::Url("https://cdn.example.com/outro.mp4".into())
    );
    assert_eq!(p.items[3].kind, None, "a URL without a type is taken as it comes");

    assert_eq!(
        p.transition,
        Some(Transition {
            kind: TransitionKind::Fade,
            duration: 0.5
        })
    );
}

#[test]
fn merge_add_transitions_with_duration() {
    let mut merge = merge_job("m", json!([{"url": "$a"}, {"url": "$b"}]));
    merge["params"]["addTransitions"] = json!(true);
    merge["params"]["transitionDuration"] = json!(1.25);
    let request = parse_ok(&plan(vec![video_job("a"), video_job("b"), merge]));
    assert_eq!(
        merge_params(job(&request, "m")).transition,
        Some(Transition {
            kind: TransitionKind::Fade,
            duration: 1.25
        })
    );
}

#[test]
fn merge_named_transition_is_case_insensitive() {
    let mut merge = merge_job("m", json!([{"url": "$a"}, {"url": "$b"}]));
    merge["params"]["transition"] = json!("CrossFade");
    merge["params"]["transitionDuration"] = json!(2);
    let request = parse_ok(&plan(vec![video_job("a"), video_job("b"), merge]));
    assert_eq!(
        merge_params(job(&request, "m")).transition,
        Some(Transition {
            kind: TransitionKind::Crossfade,
            duration: 2.0
        })
    );
}

#[test]
fn merge_media_key_is_an_alias_of_url() {
    let request = parse_ok(&plan(vec![
        video_job("a"),
        merge_job("m", json!([{"media": "_jobDependency:a"}])),
    ]));
    assert_eq!(merge_params(job(&request, "m")).items[0].source, job_ref("a"));
}

// ---------------------------------------------------------------------------------------------
// Errors: the body and the plan's shape
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_json() {
    let errors = parse_request(b"{\"jobs\": [", &TestCatalog, PlanLimits::default()).unwrap_err();
    assert_eq!(codes(&errors), ["invalid_json"]);
    let errors = parse_request(b"", &TestCatalog, PlanLimits::default()).unwrap_err();
    assert_eq!(codes(&errors), ["invalid_json"]);
}

#[test]
fn body_over_the_limit_is_rejected_before_parsing() {
    let limits = PlanLimits {
        max_jobs: 500,
        max_body_bytes: 64,
    };
    let body = body_bytes(&plan(vec![video_job("job1"), video_job("job2")]));
    assert!(body.len() > 64);
    let errors = parse_request(&body, &TestCatalog, limits).unwrap_err();
    assert_eq!(codes(&errors), ["body_too_large"]);
    assert!(errors[0].message.contains("64"), "{}", errors[0].message);

    // Not even parsed: invalid JSON over the limit is still `body_too_large`.
    let errors = parse_request(&[b'{'; 65], &TestCatalog, limits).unwrap_err();
    assert_eq!(codes(&errors), ["body_too_large"]);

    // Exactly at the limit is fine.
    let small = br#"{"jobs":[{"id":"a","type":"merge"}]}"#;
    let at_limit = PlanLimits {
        max_jobs: 500,
        max_body_bytes: small.len(),
    };
    let errors = parse_request(small, &TestCatalog, at_limit).unwrap_err();
    assert!(!codes(&errors).contains(&"body_too_large"), "{errors:#?}");
}

#[test]
fn body_must_be_an_object() {
    for body in [json!([video_job("job1")]), json!("jobs"), json!(42), Value::Null] {
        let errors = parse_err(&body);
        assert_eq!(codes(&errors), ["invalid_body"], "{body}");
    }
}

#[test]
fn missing_jobs() {
    only_error(&json!({}), "missing_field", None, Some("jobs"));
    only_error(
        &json!({"executionPlan": {}, "options": {}}),
        "missing_field",
        None,
        Some("executionPlan.jobs"),
    );
}

#[test]
fn jobs_or_plan_of_the_wrong_type() {
    only_error(&json!({"jobs": {"id": "job1"}}), "invalid_field", None, Some("jobs"));
    only_error(
        &json!({"executionPlan": [video_job("job1")]}),
        "invalid_field",
        None,
        Some("executionPlan"),
    );
}

#[test]
fn options_must_be_an_object() {
    only_error(
        &json!({"executionPlan": {"jobs": [video_job("job1")]}, "options": "fast"}),
        "invalid_field",
        None,
        Some("options"),
    );
}

#[test]
fn empty_plan() {
    only_error(&plan(vec![]), "empty_plan", None, Some("jobs"));
    only_error(
        &json!({"executionPlan": {"jobs": []}}),
        "empty_plan",
        None,
        Some("executionPlan.jobs"),
    );
}

#[test]
fn too_many_jobs_with_a_small_limit() {
    let limits = PlanLimits {
        max_jobs: 2,
        max_body_bytes: 1 << 20,
    };
    let body = body_bytes(&plan(vec![video_job("a"), video_job("b"), video_job("c")]));
    let errors = parse_request(&body, &TestCatalog, limits).unwrap_err();
    assert_eq!(codes(&errors), ["too_many_jobs"]);
    assert_eq!(errors[0].field.as_deref(), Some("jobs"));
    assert!(errors[0].message.contains('3') && errors[0].message.contains('2'));

    let body = body_bytes(&plan(vec![video_job("a"), video_job("b")]));
    assert!(parse_request(&body, &TestCatalog, limits).is_ok());
}

#[test]
fn job_not_an_object() {
    let errors = parse_err(&plan(vec![video_job("job1"), json!("job2"), json!(null)]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    find_error(&errors, "invalid_job", None, Some("jobs[1]"));
    find_error(&errors, "invalid_job", None, Some("jobs[2]"));
}

#[test]
fn missing_or_invalid_id() {
    let mut no_id = video_job("x");
    no_id.as_object_mut().unwrap().remove("id");
    let errors = parse_err(&plan(vec![
        no_id,
        video_job(""),
        video_job("  "),
        with(video_job("x"), "id", json!(7)),
    ]));
    assert_eq!(errors.len(), 4, "{errors:#?}");
    find_error(&errors, "missing_field", None, Some("jobs[0].id"));
    find_error(&errors, "missing_field", None, Some("jobs[1].id"));
    find_error(&errors, "missing_field", None, Some("jobs[2].id"));
    find_error(&errors, "invalid_field", None, Some("jobs[3].id"));
}

#[test]
fn duplicate_ids() {
    let err = only_error(
        &plan(vec![video_job("job1"), video_job("job2"), video_job("job1")]),
        "duplicate_job_id",
        Some("job1"),
        Some("id"),
    );
    assert!(err.message.contains("job1"));
}

#[test]
fn unknown_dependency() {
    let err = only_error(
        &plan(vec![
            video_job("job1"),
            with(video_job("job2"), "dependsOn", json!(["job1", "ghost"])),
        ]),
        "unknown_dependency",
        Some("job2"),
        Some("dependsOn[1]"),
    );
    assert!(err.message.contains("ghost"), "{}", err.message);
    only_error(
        &plan(vec![with(video_job("job2"), "dependencies", json!(["ghost"]))]),
        "unknown_dependency",
        Some("job2"),
        Some("dependencies[0]"),
    );
}

#[test]
fn dependencies_of_the_wrong_type() {
    only_error(
        &plan(vec![with(video_job("job1"), "dependsOn", json!("job0"))]),
        "invalid_field",
        Some("job1"),
        Some("dependsOn"),
    );
    only_error(
        &plan(vec![
            video_job("job0"),
            with(video_job("job1"), "dependsOn", json!(["job0", 3])),
        ]),
        "invalid_field",
        Some("job1"),
        Some("dependsOn[1]"),
    );
}

#[test]
fn unknown_reference_in_params() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "image", json!("$ghost"))]),
        "unknown_reference",
        Some("job1"),
        Some("params.image"),
    );
    assert!(err.message.contains("ghost"));
    only_error(
        &plan(vec![
            video_job("a"),
            merge_job("m", json!([{"url": "$a"}, {"url": "_jobDependency:b"}])),
        ]),
        "unknown_reference",
        Some("m"),
        Some("params.items[1].url"),
    );
}

#[test]
fn self_dependency() {
    only_error(
        &plan(vec![with(video_job("job1"), "dependsOn", json!(["job1"]))]),
        "self_dependency",
        Some("job1"),
        Some("dependsOn[0]"),
    );
    only_error(
        &plan(vec![with_param(video_job("job1"), "image", json!("$job1"))]),
        "self_dependency",
        Some("job1"),
        Some("params.image"),
    );
}

#[test]
fn two_job_cycle() {
    let errors = parse_err(&plan(vec![
        with(video_job("left"), "dependsOn", json!(["right"])),
        with(video_job("right"), "dependsOn", json!(["left"])),
    ]));
    assert_eq!(codes(&errors), ["cycle"], "{errors:#?}");
    let err = &errors[0];
    assert_eq!(err.field.as_deref(), Some("dependsOn"));
    assert!(matches!(err.job_id.as_deref(), Some("left" | "right")));
    assert!(
        err.message.contains("left") && err.message.contains("right"),
        "{}",
        err.message
    );
}

#[test]
fn three_job_cycle_names_every_job() {
    let errors = parse_err(&plan(vec![
        video_job("start"),
        with(video_job("alpha"), "dependsOn", json!(["start", "gamma"])),
        with(video_job("beta"), "dependsOn", json!(["alpha"])),
        with(video_job("gamma"), "dependsOn", json!(["beta"])),
    ]));
    assert_eq!(codes(&errors), ["cycle"]);
    let err = &errors[0];
    for id in ["alpha", "beta", "gamma"] {
        assert!(err.message.contains(id), "{id} missing from {}", err.message);
    }
    assert!(
        !err.message.contains("start"),
        "start is not in the cycle: {}",
        err.message
    );
    assert!(matches!(err.job_id.as_deref(), Some("alpha" | "beta" | "gamma")));
}

#[test]
fn cycle_through_references() {
    let errors = parse_err(&plan(vec![
        with_param(video_job("a"), "image", json!("$b")),
        with_param(video_job("b"), "image", json!("_imageJobDependency:a")),
    ]));
    assert_eq!(codes(&errors), ["cycle"]);
}

// ---------------------------------------------------------------------------------------------
// Errors: operations and models
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_operation() {
    let err = only_error(
        &plan(vec![with(video_job("job1"), "type", json!("explode"))]),
        "unknown_operation",
        Some("job1"),
        Some("type"),
    );
    assert!(err.message.contains("explode"));
    assert!(
        err.message.contains("generateImage"),
        "the message lists the known operations"
    );
}

#[test]
fn missing_operation() {
    let mut job1 = video_job("job1");
    job1.as_object_mut().unwrap().remove("type");
    only_error(&plan(vec![job1]), "missing_field", Some("job1"), Some("type"));
    only_error(
        &plan(vec![with(video_job("job1"), "type", json!(5))]),
        "missing_field",
        Some("job1"),
        Some("type"),
    );
}

fn subtitles_params(job: &JobSpec) -> &SubtitlesParams {
    match &job.params {
        Params::Subtitles(p) => p,
        other => panic!("job {} has no subtitles params: {other:#?}", job.id),
    }
}

#[test]
fn captions_helper_takes_the_transcript_job_and_the_other_video() {
    // captions({video, model}): transcribe, then addSubtitles on [transcribe, video].
    let transcribe = json!({"id": "t", "type": "transcribe",
        "params": {"provider": "replicate", "modelId": "openai/whisper", "videoUrl": "_videoJobDependency:v"}});
    let subtitles = json!({"id": "s", "type": "addSubtitles",
        "params": {"transcript": "_transcriptJobDependency:t", "style": {"preset": "youtube", "primaryColor": "#f80"}},
        "dependsOn": ["t", "v"]});
    let request = parse_ok(&plan(vec![video_job("v"), transcribe, subtitles]));
    let s = subtitles_params(job(&request, "s"));
    assert_eq!(s.video, job_ref("v"));
    assert_eq!(s.transcript, TranscriptSource::Media(job_ref("t")));
    assert_eq!(
        (s.style.preset, s.style.primary_color),
        (CaptionPreset::Youtube, Some(AssColour(0x0000_88FF)))
    );

    // The manual form: inline words (or `captions`), a string style, the video by URL.
    let manual = json!({"id": "m", "type": "addSubtitles", "params": {"videoUrl": "https://x/v.mp4",
        "captions": [{"word": "hi", "start": 0, "end": 0.4}], "style": "bold"}});
    let request = parse_ok(&plan(vec![manual]));
    let m = subtitles_params(job(&request, "m"));
    assert_eq!(m.video, MediaRef::Url("https://x/v.mp4".into()));
    assert!(matches!(&m.transcript, TranscriptSource::Words(w) if w.len() == 1 && w[0].end == 0.4));
    assert_eq!(m.style.preset, CaptionPreset::Tiktok);

    // No transcript named: the speech dependency's word timings.
    let speech = with_param(audio_job("a"), "text", json!("hello"));
    let chained = json!({"id": "c", "type": "addSubtitles", "params": {}, "dependsOn": ["a", "v"]});
    let request = parse_ok(&plan(vec![video_job("v"), speech, chained]));
    assert_eq!(
        subtitles_params(job(&request, "c")).transcript,
        TranscriptSource::Media(job_ref("a"))
    );
}

#[test]
fn captions_are_checked_at_submission_naming_job_and_field() {
    let words = json!([{"word": "a", "start": 0, "end": 1}]);
    let job_with = |style: Value, transcript: Value| {
        json!({"id": "s", "type": "addSubtitles",
            "params": {"videoUrl": "https://x/v.mp4", "transcript": transcript, "style": style}})
    };
    let cases = [
        (json!("neon"), words.clone(), "params.style"),
        (json!({"preset": "neon"}), words.clone(), "params.style.preset"),
        (
            json!({"primaryColor": "red"}),
            words.clone(),
            "params.style.primaryColor",
        ),
        (
            json!({"activeWordColor": "#12345"}),
            words.clone(),
            "params.style.activeWordColor",
        ),
        (json!({"alignment": 0}), words.clone(), "params.style.alignment"),
        (json!({"position": "sideways"}), words.clone(), "params.style.position"),
        (json!({"fontSize": -4}), words.clone(), "params.style.fontSize"),
        (json!({"outlineWidth": -1}), words.clone(), "params.style.outlineWidth"),
        (
            json!({"wordsPerCaption": 0}),
            words.clone(),
            "params.style.wordsPerCaption",
        ),
        (
            json!({}),
            json!([{"word": "a", "start": 2, "end": 1}]),
            "params.transcript[0].end",
        ),
        (
            json!({}),
            json!([{"text": 3, "start": 0, "end": 1}]),
            "params.transcript[0].word",
        ),
        (
            json!({}),
            json!([{"word": "a", "start": -1, "end": 1}]),
            "params.transcript[0].start",
        ),
        (
            json!({}),
            json!([{"word": "a", "end": 1}]),
            "params.transcript[0].start",
        ),
        (json!({}), json!(["a"]), "params.transcript[0]"),
        (json!({}), json!("not a url"), "params.transcript"),
    ];
    for (style, transcript, field) in cases {
        only_error(
            &plan(vec![job_with(style, transcript)]),
            "invalid_param",
            Some("s"),
            Some(field),
        );
    }
    // No transcript at all, and a video job given as the transcript.
    let bare = json!({"id": "s", "type": "addSubtitles", "params": {"videoUrl": "https://x/v.mp4"}});
    only_error(&plan(vec![bare]), "missing_field", Some("s"), Some("params.transcript"));
    let wrong = json!({"id": "s", "type": "addSubtitles", "params": {"transcript": "$v"}, "dependsOn": ["v"]});
    only_error(
        &plan(vec![video_job("v"), wrong]),
        "invalid_param",
        Some("s"),
        Some("params.transcript"),
    );
}

#[test]
fn missing_provider_or_model_id() {
    only_error(
        &plan(vec![without_param(video_job("job1"), "provider")]),
        "missing_field",
        Some("job1"),
        Some("params.provider"),
    );
    only_error(
        &plan(vec![without_param(video_job("job1"), "modelId")]),
        "missing_field",
        Some("job1"),
        Some("params.modelId"),
    );
}

#[test]
fn operations_that_name_no_model_run_the_default_and_record_it() {
    // What the SDK's `lipSync()` and `removeBackground()` send after a generate.
    let lip_sync = json!({"id": "job2", "type": "lipSync", "params": {"audioUrl": "https://x/voice.mp3"},
        "dependsOn": ["job1"]});
    let matting = json!({"id": "job3", "type": "removeBackground", "params": {"outputType": "alpha-mask"},
        "dependsOn": ["job2"]});
    let request = parse_ok(&plan(vec![video_job("job1"), lip_sync, matting]));
    let synced = provider_params(job(&request, "job2"));
    assert_eq!(
        (synced.provider.as_str(), synced.model_id.as_str()),
        ("fal", "veed/lipsync")
    );
    assert_eq!(synced.inputs.get("video"), Some(&job_ref("job1")));
    let matted = provider_params(job(&request, "job3"));
    assert_eq!(
        (matted.provider.as_str(), matted.model_id.as_str()),
        ("replicate", "arielreplicate/robust_video_matting")
    );
    assert_eq!(matted.inputs.get("video"), Some(&job_ref("job2")));
    assert_eq!(matted.options.get("outputType"), Some(&json!("alpha-mask")));
    // Recorded with the job, as if the client had named it.
    let stored = serde_json::to_value(job(&request, "job3")).unwrap();
    assert_eq!(stored["params"]["modelId"], "arielreplicate/robust_video_matting");
    // A model named by half is not completed by the default.
    let half = json!({"id": "job2", "type": "lipSync", "params": {"provider": "replicate", "audioUrl": "https://x/v.mp3"},
        "dependsOn": ["job1"]});
    only_error(
        &plan(vec![video_job("job1"), half]),
        "missing_field",
        Some("job2"),
        Some("params.modelId"),
    );
    // An operation with no default still needs its model.
    let errors = parse_err(&plan(vec![json!({"id": "job1", "type": "transcribe", "params": {}})]));
    find_error(&errors, "missing_field", Some("job1"), Some("params.provider"));
}

#[test]
fn a_model_listed_under_another_provider_runs_where_it_lives() {
    let speech = json!({"id": "job1", "type": "generateAudio", "params": {"provider": "replicate",
        "modelId": "elevenlabs/turbo-v2.5", "text": "hi", "voiceId": "21m00Tcm4TlvDq8ikWAM"}});
    let request = parse_ok(&plan(vec![speech]));
    assert_eq!(provider_params(job(&request, "job1")).provider, "elevenlabs");
}

#[test]
fn image_lists_and_image_sizes_reach_the_model() {
    let image = json!({"id": "job2", "type": "generateImage", "params": {"provider": "replicate",
        "modelId": "google/nano-banana-pro", "prompt": "merge them", "resolution": "2K",
        "image": ["https://x/1.png", "_imageJobDependency:job1"]}});
    let request = parse_ok(&plan(vec![image_job("job1"), image]));
    let p = provider_params(job(&request, "job2"));
    assert_eq!(p.resolution.as_deref(), Some("2K"));
    assert_eq!(
        p.options.get("image"),
        Some(&json!(["https://x/1.png", "_imageJobDependency:job1"]))
    );
    assert_eq!(deps(job(&request, "job2")), ["job1"]);
}

#[test]
fn missing_provider_and_model_id_are_both_reported() {
    let errors = parse_err(&plan(vec![json!({"id": "job1", "type": "generate", "params": {}})]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    find_error(&errors, "missing_field", Some("job1"), Some("params.provider"));
    find_error(&errors, "missing_field", Some("job1"), Some("params.modelId"));
}

#[test]
fn unknown_provider_lists_the_available_ones() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "provider", json!("runway"))]),
        "unknown_provider",
        Some("job1"),
        Some("params.provider"),
    );
    assert!(err.message.contains("runway"));
    for known in ["local", "replicate", "fal"] {
        assert!(err.message.contains(known), "{known} missing from {}", err.message);
    }
}

#[test]
fn unknown_model_lists_the_providers_models() {
    let job1 = with_param(
        with_param(video_job("job1"), "provider", json!("replicate")),
        "modelId",
        json!("google/veo-3"),
    );
    let err = only_error(&plan(vec![job1]), "unknown_model", Some("job1"), Some("params.modelId"));
    assert!(err.message.contains("google/veo-3"));
    assert!(err.message.contains("bytedance/seedance-1-pro"));
    assert!(err.message.contains("openai/whisper"));
}

#[test]
fn model_that_does_not_support_the_operation() {
    let image_with_video_model = with(video_job("job1"), "type", json!("generateImage"));
    let transcribe_with_video_model = json!({
        "id": "job2",
        "type": "transcribe",
        "params": {"provider": "replicate", "modelId": "bytedance/seedance-1-pro"}
    });
    let errors = parse_err(&plan(vec![image_with_video_model, transcribe_with_video_model]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    find_error(
        &errors,
        "unsupported_model_operation",
        Some("job1"),
        Some("params.modelId"),
    );
    find_error(
        &errors,
        "unsupported_model_operation",
        Some("job2"),
        Some("params.modelId"),
    );
}

// ---------------------------------------------------------------------------------------------
// Errors: params
// ---------------------------------------------------------------------------------------------

#[test]
fn duration_must_be_positive() {
    only_error(
        &plan(vec![with_param(video_job("job1"), "duration", json!(0))]),
        "invalid_param",
        Some("job1"),
        Some("params.duration"),
    );
}

#[test]
fn duration_must_not_be_negative() {
    only_error(
        &plan(vec![with_param(video_job("job1"), "duration", json!(-5))]),
        "invalid_param",
        Some("job1"),
        Some("params.duration"),
    );
}

#[test]
fn duration_must_be_a_number() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "duration", json!("5"))]),
        "invalid_param",
        Some("job1"),
        Some("params.duration"),
    );
    assert!(err.message.contains("number"), "{}", err.message);
}

#[test]
fn duration_has_an_upper_bound() {
    only_error(
        &plan(vec![with_param(video_job("job1"), "duration", json!(601))]),
        "invalid_param",
        Some("job1"),
        Some("params.duration"),
    );
    let request = parse_ok(&plan(vec![with_param(video_job("job1"), "duration", json!(600))]));
    assert_eq!(provider_params(&request.plan.jobs[0]).duration, Some(600.0));
}

#[test]
fn aspect_ratio_with_a_slash() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "aspectRatio", json!("16/9"))]),
        "invalid_param",
        Some("job1"),
        Some("params.aspectRatio"),
    );
    assert!(err.message.contains("16/9"), "{}", err.message);
}

#[test]
fn aspect_ratio_with_a_zero_side() {
    only_error(
        &plan(vec![with_param(video_job("job1"), "aspectRatio", json!("0:1"))]),
        "invalid_param",
        Some("job1"),
        Some("params.aspectRatio"),
    );
    only_error(
        &plan(vec![
            with_param(reframe_job("r", &["v"]), "aspectRatio", json!("0:1")),
            video_job("v"),
        ]),
        "invalid_param",
        Some("r"),
        Some("params.aspectRatio"),
    );
}

#[test]
fn resolution_must_be_known() {
    let err = only_error(
        &plan(vec![with_param(video_job("job1"), "resolution", json!("huge"))]),
        "invalid_param",
        Some("job1"),
        Some("params.resolution"),
    );
    assert!(err.message.contains("huge"));
    only_error(
        &plan(vec![
            video_job("v"),
            with_param(reframe_job("r", &["v"]), "resolution", json!("huge")),
        ]),
        "invalid_param",
        Some("r"),
        Some("params.resolution"),
    );
}

#[test]
fn merge_item_with_a_bad_type() {
    let errors = parse_err(&plan(vec![
        video_job("v"),
        merge_job("m", json!([{"url": "$v", "type": "gif"}, 5, {"url": "$v", "type": 3}])),
    ]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let gif = find_error(&errors, "invalid_param", Some("m"), Some("params.items[0].type"));
    assert!(gif.message.contains("gif"));
    find_error(&errors, "invalid_param", Some("m"), Some("params.items[1]"));
    find_error(&errors, "invalid_param", Some("m"), Some("params.items[2].type"));
}

#[test]
fn merge_item_without_url() {
    only_error(
        &plan(vec![merge_job("m", json!([{"type": "video"}]))]),
        "invalid_param",
        Some("m"),
        Some("params.items[0].url"),
    );
}

#[test]
fn merge_item_numbers_out_of_range() {
    let errors = parse_err(&plan(vec![
        video_job("v"),
        audio_job("a"),
        merge_job(
            "m",
            json!([
                {"url": "$v", "duration": 0},
                {"url": "$a", "offset": -1, "volume": 11}
            ]),
        ),
    ]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    find_error(&errors, "invalid_param", Some("m"), Some("params.items[0].duration"));
    find_error(&errors, "invalid_param", Some("m"), Some("params.items[1].offset"));
    find_error(&errors, "invalid_param", Some("m"), Some("params.items[1].volume"));
}

#[test]
fn merge_with_audio_only() {
    only_error(
        &plan(vec![audio_job("a"), merge_job("m", json!([{"url": "$a"}]))]),
        "invalid_param",
        Some("m"),
        Some("params.items"),
    );
    only_error(
        &plan(vec![merge_job(
            "m",
            json!([{"url": "https://cdn.example.com/a.mp3", "type": "audio"}]),
        )]),
        "invalid_param",
        Some("m"),
        Some("params.items"),
    );
}

#[test]
fn merge_of_a_transcript() {
    let transcribe = json!({
        "id": "t",
        "type": "transcribe",
        "params": {"provider": "replicate", "modelId": "openai/whisper", "video": "$v"}
    });
    only_error(
        &plan(vec![
            video_job("v"),
            transcribe,
            merge_job("m", json!([{"url": "$v"}, {"url": "$t"}])),
        ]),
        "invalid_param",
        Some("m"),
        Some("params.items[1].url"),
    );
}

#[test]
fn merge_items_not_an_array() {
    only_error(
        &plan(vec![merge_job("m", json!("$v")), video_job("v")]),
        "invalid_param",
        Some("m"),
        Some("params.items"),
    );
}

#[test]
fn merge_with_depends_on_but_no_items() {
    // Not the unwired compose form (it has dependencies), and not a form api-compat.md lists.
    only_error(
        &plan(vec![
            video_job("v"),
            with(merge_job("m", json!([])), "dependsOn", json!(["v"])),
        ]),
        "invalid_param",
        Some("m"),
        Some("params.items"),
    );
}

#[test]
fn reframe_without_aspect_ratio() {
    only_error(
        &plan(vec![
            video_job("v"),
            without_param(reframe_job("r", &["v"]), "aspectRatio"),
        ]),
        "missing_field",
        Some("r"),
        Some("params.aspectRatio"),
    );
}

#[test]
fn reframe_with_no_input() {
    only_error(
        &plan(vec![reframe_job("r", &[])]),
        "missing_input",
        Some("r"),
        Some("params.video"),
    );
    // An image or audio dependency is not a video to reframe.
    only_error(
        &plan(vec![image_job("i"), audio_job("a"), reframe_job("r", &["i", "a"])]),
        "missing_input",
        Some("r"),
        Some("params.video"),
    );
}

#[test]
fn reframe_with_an_unknown_mode() {
    only_error(
        &plan(vec![
            video_job("v"),
            with_param(reframe_job("r", &["v"]), "mode", json!("stretch")),
        ]),
        "invalid_param",
        Some("r"),
        Some("params.mode"),
    );
}

#[test]
fn transition_with_an_unknown_name() {
    let mut merge = merge_job("m", json!([{"url": "$a"}, {"url": "$b"}]));
    merge["params"]["transition"] = json!("spin");
    let err = only_error(
        &plan(vec![video_job("a"), video_job("b"), merge]),
        "invalid_param",
        Some("m"),
        Some("params.transition"),
    );
    assert!(err.message.contains("spin") && err.message.contains("crossfade"));
}

#[test]
fn transition_duration_out_of_range() {
    let mut merge = merge_job("m", json!([{"url": "$a"}, {"url": "$b"}]));
    merge["params"]["addTransitions"] = json!(true);
    merge["params"]["transitionDuration"] = json!(0);
    only_error(
        &plan(vec![video_job("a"), video_job("b"), merge]),
        "invalid_param",
        Some("m"),
        Some("params.transitionDuration"),
    );
}

#[test]
fn bools_must_be_bools() {
    let errors = parse_err(&plan(vec![
        with_param(video_job("a"), "sendJobWebhook", json!("yes")),
        with_param(video_job("b"), "unified", json!(0)),
    ]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    find_error(&errors, "invalid_param", Some("a"), Some("params.sendJobWebhook"));
    find_error(&errors, "invalid_param", Some("b"), Some("params.unified"));
}

#[test]
fn params_must_be_an_object() {
    let errors = parse_err(&plan(vec![with(video_job("job1"), "params", json!(["provider"]))]));
    find_error(&errors, "invalid_field", Some("job1"), Some("params"));
    // The job is then read with no params, so its required params are reported missing too.
    find_error(&errors, "missing_field", Some("job1"), Some("params.provider"));
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

// ---------------------------------------------------------------------------------------------
// Errors: request options
// ---------------------------------------------------------------------------------------------

#[test]
fn webhook_url_must_be_http() {
    only_error(
        &json!({"jobs": [video_job("job1")], "webhook": {"url": "ftp://hooks.example.com"}}),
        "invalid_field",
        None,
        Some("webhook.url"),
    );
    only_error(
        &json!({
            "executionPlan": {"jobs": [video_job("job1")]},
            "options": {"webhook": "hooks.example.com/x"}
        }),
        "invalid_field",
        None,
        Some("webhook.url"),
    );
}

#[test]
fn webhook_of_the_wrong_shape() {
    only_error(
        &json!({"jobs": [video_job("job1")], "webhook": {"secret": "s"}}),
        "invalid_field",
        None,
        Some("webhook.url"),
    );
    only_error(
        &json!({"jobs": [video_job("job1")], "webhook": 42}),
        "invalid_field",
        None,
        Some("webhook"),
    );
}

#[test]
fn webhook_secret_that_is_not_a_string_is_an_error() {
    // Silently dropping it would send unsigned webhooks to a client that expects signatures.
    only_error(
        &json!({
            "jobs": [video_job("job1")],
            "webhook": {"url": "https://hooks.example.com", "secret": 12345}
        }),
        "invalid_field",
        None,
        Some("webhook.secret"),
    );
    only_error(
        &json!({
            "executionPlan": {"jobs": [video_job("job1")]},
            "options": {"webhook": "https://hooks.example.com", "webhookSecret": {"k": "v"}}
        }),
        "invalid_field",
        None,
        Some("options.webhookSecret"),
    );
}

#[test]
fn base_execution_id_must_be_a_string_and_is_reported_once() {
    only_error(
        &json!({"jobs": [video_job("job1")], "baseExecutionId": 7}),
        "invalid_field",
        None,
        Some("baseExecutionId"),
    );
    only_error(
        &json!({
            "executionPlan": {"jobs": [video_job("job1")]},
            "options": {"baseExecutionId": ""}
        }),
        "invalid_field",
        None,
        Some("baseExecutionId"),
    );
}

#[test]
fn provider_api_keys_of_the_wrong_type() {
    only_error(
        &json!({
            "executionPlan": {"jobs": [video_job("job1")]},
            "options": {"providerApiKeys": "r8_all"}
        }),
        "invalid_field",
        None,
        Some("options.providerApiKeys"),
    );
}

// ---------------------------------------------------------------------------------------------
// Every problem at once
// ---------------------------------------------------------------------------------------------

#[test]
fn three_problems_give_three_errors() {
    let errors = parse_err(&plan(vec![
        with(video_job("job1"), "dependsOn", json!(["ghost"])),
        with_param(video_job("job2"), "modelId", json!("nope")),
        with_param(video_job("job3"), "duration", json!(0)),
    ]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    find_error(&errors, "unknown_dependency", Some("job1"), Some("dependsOn[0]"));
    find_error(&errors, "unknown_model", Some("job2"), Some("params.modelId"));
    find_error(&errors, "invalid_param", Some("job3"), Some("params.duration"));
}

#[test]
fn request_level_and_job_level_problems_together() {
    let mut no_id = video_job("x");
    no_id.as_object_mut().unwrap().remove("id");
    let errors = parse_err(&json!({
        "executionPlan": {"jobs": [
            no_id,
            with(video_job("job2"), "type", json!("teleport")),
            with_param(video_job("job3"), "aspectRatio", json!("16/9")),
            with(video_job("job3"), "dependsOn", json!([])),
        ]},
        "options": {"webhook": "ftp://nope", "providerApiKeys": {"fal": 1}}
    }));
    assert_eq!(errors.len(), 6, "{errors:#?}");
    find_error(&errors, "invalid_field", None, Some("webhook.url"));
    find_error(&errors, "invalid_field", None, Some("options.providerApiKeys.fal"));
    find_error(&errors, "missing_field", None, Some("jobs[0].id"));
    find_error(&errors, "unknown_operation", Some("job2"), Some("type"));
    find_error(&errors, "invalid_param", Some("job3"), Some("params.aspectRatio"));
    find_error(&errors, "duplicate_job_id", Some("job3"), Some("id"));
}

#[test]
fn several_param_problems_in_one_job() {
    let mut job1 = video_job("job1");
    job1["params"]["duration"] = json!(-1);
    job1["params"]["aspectRatio"] = json!("0:1");
    job1["params"]["resolution"] = json!("huge");
    job1["params"]["seed"] = json!(1.5);
    let errors = parse_err(&plan(vec![job1]));
    assert_eq!(errors.len(), 4, "{errors:#?}");
    for field in ["duration", "aspectRatio", "resolution", "seed"] {
        find_error(&errors, "invalid_param", Some("job1"), Some(&format!("params.{field}")));
    }
}

#[test]
fn a_bad_operation_does_not_hide_the_job_from_the_others() {
    // job1's operation is wrong; job2 still refers to a job that exists, and job1's own
    // dependencies are still checked.
    let errors = parse_err(&plan(vec![
        with(
            with(video_job("job1"), "type", json!("explode")),
            "dependsOn",
            json!(["ghost"]),
        ),
        with_param(reframe_job("job2", &["job1"]), "video", json!("$job1")),
        with(video_job("job1"), "operation", json!("generate")),
    ]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    find_error(&errors, "unknown_operation", Some("job1"), Some("type"));
    find_error(&errors, "unknown_dependency", Some("job1"), Some("dependsOn[0]"));
    find_error(&errors, "duplicate_job_id", Some("job1"), Some("id"));
}

#[test]
fn a_reframe_after_a_bad_operation_reports_only_the_operation() {
    let errors = parse_err(&plan(vec![
        with(video_job("v"), "type", json!("explode")),
        reframe_job("r", &["v"]),
    ]));
    assert_eq!(codes(&errors), ["unknown_operation"], "{errors:#?}");
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

const PROVIDER_KEY: &str = "r8_PROVIDERKEY_must_not_leak";
const PARAM_KEY: &str = "sk_PARAMKEY_must_not_leak";
const WEBHOOK_SECRET: &str = "whsec_WEBHOOK_must_not_leak";

fn assert_no_secret(text: &str) {
    for secret in [PROVIDER_KEY, PARAM_KEY, WEBHOOK_SECRET] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
}

#[test]
fn secrets_never_reach_error_messages() {
    let body = json!({
        "executionPlan": {"jobs": [
            json!({
                "id": "job1",
                "type": "generate",
                "params": {
                    "provider": "replicate",
                    "modelId": "bytedance/seedance-1-pro",
                    "apiKey": PARAM_KEY,
                    "duration": -1,
                    "aspectRatio": "16/9"
                }
            }),
            with_param(video_job("job2"), "apiKey", json!(format!("${PARAM_KEY}"))),
            with_param(with_param(video_job("job3"), "provider", json!("nope")), "apiKey", json!(PARAM_KEY)),
        ]},
        "options": {
            "webhook": {"url": "gopher://x", "secret": WEBHOOK_SECRET},
            "providerApiKeys": {"replicate": PROVIDER_KEY, "fal": 12345678987654321u64}
        }
    });
    let errors = parse_err(&body);
    // job1: duration, aspect ratio; job3: provider; options: webhook url, fal key. A `$`-shaped
    // apiKey is not a reference.
    assert_eq!(errors.len(), 5, "{errors:#?}");
    find_error(&errors, "invalid_field", None, Some("options.providerApiKeys.fal"));
    for error in &errors {
        assert_no_secret(&error.message);
        assert!(!error.message.contains("12345678987654321"), "{}", error.message);
    }
    assert_no_secret(&format!("{errors:?}"));
    assert_no_secret(&serde_json::to_string(&errors).unwrap());
}

#[test]
fn secrets_never_reach_the_debug_or_serialised_request() {
    let body = json!({
        "executionPlan": {"jobs": [
            with_param(video_job("job1"), "apiKey", json!(PARAM_KEY)),
        ]},
        "options": {
            "webhook": {"url": "https://hooks.example.com", "secret": WEBHOOK_SECRET},
            "providerApiKeys": {"replicate": PROVIDER_KEY}
        }
    });
    let request = parse_ok(&body);
    assert_eq!(request.provider_api_keys["replicate"].expose(), PROVIDER_KEY);
    assert_eq!(
        request
            .webhook
            .as_ref()
            .and_then(|w| w.secret.as_ref())
            .map(Secret::expose),
        Some(WEBHOOK_SECRET)
    );
    assert!(!provider_params(job(&request, "job1")).options.contains_key("apiKey"));
    assert_no_secret(&format!("{request:?}"));
    assert_no_secret(&format!("{request:#?}"));
    assert_no_secret(&serde_json::to_string(&request.plan).unwrap());
    assert_no_secret(&serde_json::to_string(&request.webhook).unwrap());
}

// ---------------------------------------------------------------------------------------------
// The model's own contracts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_parsed_plan_round_trips_through_serde() {
    let mut merge = merge_job(
        "m",
        json!([{"url": "$r"}, {"url": "https://cdn.example.com/s.png", "type": "image", "duration": 2}, {"url": "$a", "volume": 0.5}]),
    );
    merge["params"]["transition"] = json!("wipeleft");
    let request = parse_ok(&plan(vec![
        with_param(
            with_param(video_job("v"), "aspectRatio", json!("9:16")),
            "seed",
            json!(3),
        ),
        audio_job("a"),
        with_param(reframe_job("r", &["v"]), "mode", json!("pad")),
        merge,
    ]));
    let encoded = serde_json::to_value(&request.plan).unwrap();
    let decoded: Plan = serde_json::from_value(encoded).unwrap();
    assert_eq!(decoded, request.plan);
}

#[test]
fn secret_debug_is_redacted() {
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
}

#[test]
fn final_job_of_an_empty_plan() {
    assert_eq!(Plan { jobs: vec![] }.final_job(), None);
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

#[test]
fn five_hundred_job_chain_parses() {
    let mut jobs = vec![video_job("job1")];
    jobs.extend((2..=500).map(|i| reframe_job(&format!("job{i}"), &[&format!("job{}", i - 1)])));
    let request = parse_ok(&plan(jobs));
    assert_eq!(request.plan.jobs.len(), 500);
    assert_eq!(request.plan.final_job().map(|j| j.id.as_str()), Some("job500"));
    assert_eq!(reframe_params(job(&request, "job500")).input, job_ref("job499"));
}

#[test]
fn five_hundred_job_chain_in_reverse_order_parses() {
    // Each job depends on the next one: the cycle search starts at the deepest end.
    let mut jobs: Vec<Value> = (1..500)
        .map(|i| reframe_job(&format!("job{i}"), &[&format!("job{}", i + 1)]))
        .collect();
    jobs.push(video_job("job500"));
    let request = parse_ok(&plan(jobs));
    assert_eq!(request.plan.jobs.len(), 500);
    assert_eq!(deps(job(&request, "job1")), ["job2"]);
}

#[test]
fn five_hundred_job_ring_is_a_cycle() {
    let jobs: Vec<Value> = (1..=500)
        .map(|i| {
            with(
                video_job(&format!("job{i}")),
                "dependsOn",
                json!([format!("job{}", i % 500 + 1)]),
            )
        })
        .collect();
    let errors = parse_err(&plan(jobs));
    assert_eq!(codes(&errors), ["cycle"]);
    assert!(errors[0].message.contains("job250"));
}

#[test]
fn five_hundred_and_one_jobs_are_too_many() {
    let jobs: Vec<Value> = (1..=501).map(|i| video_job(&format!("job{i}"))).collect();
    let errors = parse_err(&plan(jobs));
    assert_eq!(codes(&errors), ["too_many_jobs"]);
    assert!(errors[0].message.contains("501") && errors[0].message.contains("500"));
}

#[test]
fn deeply_nested_params_in_a_body_are_rejected_by_the_json_parser() {
    let depth = 10_000;
    let mut body =
        String::from(r#"{"jobs":[{"id":"job1","type":"generate","params":{"provider":"local","modelId":"video","x":"#);
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push_str("}}]}");
    let errors = parse_request(body.as_bytes(), &TestCatalog, PlanLimits::default()).unwrap_err();
    assert_eq!(codes(&errors), ["invalid_json"]);
}

#[test]
fn moderately_nested_params_in_a_body_pass_through() {
    let job1 = with_param(video_job("job1"), "x", nested_arrays(100, json!("$job0")));
    let request = parse_ok(&plan(vec![video_job("job0"), job1]));
    let job1 = job(&request, "job1");
    assert_eq!(deps(job1), ["job0"], "a reference 100 levels down is still found");
    assert!(provider_params(job1).options.contains_key("x"));
}

#[test]
fn deeply_nested_params_built_in_code_do_not_overflow_the_stack() {
    let deep = nested_arrays(10_000, json!("$job1"));
    let mut body = plan(vec![video_job("job1"), video_job("job2")]);
    body["jobs"][1]["params"]["x"] = deep;
    let result = parse_value(&body, &TestCatalog, PlanLimits::default());
    let errors = result.as_ref().expect_err("params 10,000 levels deep are refused");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    find_error(errors, "invalid_param", Some("job2"), Some("params.x"));
    drop(result);
    drop_iteratively(body);
}

#[test]
fn deeply_nested_model_options_built_in_code_do_not_overflow_the_stack() {
    let mut body = plan(vec![json!({
        "id": "job1",
        "type": "generate",
        "params": {"unified": false, "model": {"provider": "local", "modelId": "video"}}
    })]);
    // Not `json!({"deep": ...})`: interpolating a Value into `json!` serialises it recursively.
    body["jobs"][0]["params"]["model"]["options"] = json!({});
    body["jobs"][0]["params"]["model"]["options"]["deep"] = nested_arrays(10_000, Value::Null);
    let result = parse_value(&body, &TestCatalog, PlanLimits::default());
    let errors = result.as_ref().expect_err("params 10,000 levels deep are refused");
    find_error(errors, "invalid_param", Some("job1"), Some("params.model"));
    drop(result);
    drop_iteratively(body);
}

/// A tiny deterministic xorshift generator: no dependency, same sequence on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FUZZ_KEYS: &[&str] = &[
    "id",
    "type",
    "operation",
    "params",
    "dependsOn",
    "dependencies",
    "jobs",
    "executionPlan",
    "options",
    "webhook",
    "webhookSecret",
    "baseExecutionId",
    "providerApiKeys",
    "url",
    "secret",
    "provider",
    "modelId",
    "model",
    "prompt",
    "duration",
    "resolution",
    "aspectRatio",
    "seed",
    "image",
    "video",
    "audio",
    "audioUrl",
    "videoUrl",
    "unified",
    "items",
    "type",
    "offset",
    "volume",
    "transition",
    "addTransitions",
    "transitionDuration",
    "mode",
    "inputs",
    "apiKey",
    "sendJobWebhook",
    "media",
    "input",
];

const FUZZ_STRINGS: &[&str] = &[
    "",
    " ",
    "job1",
    "job2",
    "job3",
    "$job1",
    "$job2",
    "$job3",
    "$",
    "$ x",
    "_jobDependency:job1",
    "_videoJobDependency:job2",
    "_imageJobDependency:job3",
    "_audioJobDependency:job1",
    "_transcriptJobDependency:job2",
    "_JobDependency:job1",
    "generate",
    "merge",
    "reframe",
    "lipSync",
    "transcribe",
    "generateImage",
    "generateAudio",
    "addSubtitles",
    "layer",
    "pipeline:merge",
    "pipeline:",
    "local",
    "video",
    "image",
    "audio",
    "replicate",
    "fal",
    "bytedance/seedance-1-pro",
    "openai/whisper",
    "veed/fabric-1.0",
    "9:16",
    "16:9",
    "0:1",
    "16/9",
    "720p",
    "4k",
    "huge",
    "fade",
    "crossfade",
    "spin",
    "pad",
    "crop",
    "https://cdn.example.com/a.mp4",
    "http://x",
    "data:,",
    "ftp://x",
    "\u{0}",
    "é🎬",
    "9999999999:1",
];

fn random_string(rng: &mut XorShift) -> String {
    if rng.chance(5) {
        let len = rng.below(12);
        (0..len)
            .map(|_| char::from_u32(rng.below(0x2FF) as u32).unwrap_or('?'))
            .collect()
    } else {
        rng.pick(FUZZ_STRINGS).to_string()
    }
}

fn random_number(rng: &mut XorShift) -> Value {
    match rng.below(3) {
        0 => json!(*rng.pick(&[0i64, 1, -1, 5, 42, 600, 601, i64::MAX, i64::MIN])),
        1 => json!(*rng.pick(&[0.5f64, 1.5, -2.5, 0.0001, 1e300, -1e300, 10.0])),
        _ => json!(u64::MAX),
    }
}

fn random_value(rng: &mut XorShift, depth: usize) -> Value {
    let kinds = if depth == 0 { 5 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => random_number(rng),
        3 | 4 => Value::String(random_string(rng)),
        5 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (rng.pick(FUZZ_KEYS).to_string(), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// Changes one random spot of `value`: replaces a subtree, removes or adds a child.
fn mutate(value: &mut Value, rng: &mut XorShift) {
    let children = match value {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if children == 0 || rng.chance(4) {
        match (rng.below(3), &mut *value) {
            (0, Value::Array(a)) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            (0, Value::Object(o)) if !o.is_empty() => {
                let key = o.keys().nth(rng.below(o.len())).cloned().unwrap();
                o.remove(&key);
            }
            (1, Value::Array(a)) => {
                // Duplicating an element makes duplicate ids and repeated references.
                let extra = match a.first() {
                    Some(first) if rng.chance(2) => first.clone(),
                    _ => random_value(rng, 2),
                };
                a.push(extra);
            }
            (1, Value::Object(o)) => {
                o.insert(rng.pick(FUZZ_KEYS).to_string(), random_value(rng, 2));
            }
            _ => *value = random_value(rng, 3),
        }
        return;
    }
    let i = rng.below(children);
    match value {
        Value::Array(a) => mutate(&mut a[i], rng),
        Value::Object(o) => {
            let key = o.keys().nth(i).cloned().unwrap();
            mutate(o.get_mut(&key).unwrap(), rng);
        }
        _ => unreachable!(),
    }
}

fn fuzz_templates() -> Vec<Value> {
    let mut merge = merge_job(
        "job1",
        json!([{"url": "_jobDependency:job2"}, {"url": "$job3", "type": "video"}]),
    );
    merge["params"]["addTransitions"] = json!(true);
    vec![
        json!({"executionPlan": {"jobs": [video_job("job2"), video_job("job3"), merge]}, "options": {
            "webhook": "https://h.example.com", "webhookSecret": "s", "providerApiKeys": {"fal": "k"}
        }}),
        plan(vec![video_job("job1"), video_job("job2"), merge_job("job3", json!([]))]),
        json!({"jobs": [image_job("job1"), with_param(video_job("job2"), "image", json!("$job1")),
            reframe_job("job3", &["job2"])], "webhook": {"url": "https://h.example.com", "secret": "s"},
            "baseExecutionId": "b"}),
        plan(vec![
            video_job("job1"),
            audio_job("job2"),
            json!({"id": "job3", "type": "lipSync", "params": {"provider": "fal", "modelId": "veed/fabric-1.0",
                "video": "_videoJobDependency:job1", "audioUrl": "_audioJobDependency:job2"}}),
        ]),
        plan(vec![
            json!({"id": "job1", "type": "generate", "params": {"unified": false,
            "model": {"provider": "replicate", "modelId": "bytedance/seedance-1-pro", "options": {"a": [1, "https://cdn.example.com/a.png"]}}}}),
        ]),
    ]
}

fn fuzz_one(body: &[u8]) -> bool {
    match parse_request(body, &TestCatalog, PlanLimits::default()) {
        Ok(request) => {
            check_invariants(&request);
            true
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.code.is_empty() && !e.message.is_empty()));
            false
        }
    }
}

#[test]
fn fuzz_mutated_plans_random_values_and_random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let templates = fuzz_templates();
    for template in &templates {
        assert!(fuzz_one(&body_bytes(template)), "template must parse: {template}");
    }
    let (mut accepted, mut rejected) = (0, 0);
    let mut tally = |ok: bool| if ok { accepted += 1 } else { rejected += 1 };

    // Mutated valid plans.
    for _ in 0..3000 {
        let mut body = rng.pick(&templates).clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut body, &mut rng);
        }
        tally(fuzz_one(&body_bytes(&body)));
    }
    // Random JSON values, as a whole body and as a plan's jobs.
    for _ in 0..1000 {
        let value = random_value(&mut rng, 4);
        tally(fuzz_one(&body_bytes(&value)));
        tally(fuzz_one(&body_bytes(&json!({"jobs": [value]}))));
    }
    // Random bytes, and valid bodies truncated or with a flipped byte.
    for _ in 0..1000 {
        let len = rng.below(80);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        tally(fuzz_one(&bytes));

        let mut bytes = body_bytes(rng.pick(&templates));
        if rng.chance(2) {
            bytes.truncate(rng.below(bytes.len()));
        } else {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        tally(fuzz_one(&bytes));
    }
    // The generator reaches both outcomes, so the invariants were exercised.
    assert!(accepted > 100, "only {accepted} accepted");
    assert!(rejected > 1000, "only {rejected} rejected");
}

#[test]
fn a_chained_lip_sync_takes_the_video_of_its_dependency() {
    let lip_sync = json!({
        "id": "job3",
        "type": "lipSync",
        "params": {"provider": "fal", "modelId": "veed/fabric-1.0", "audioUrl": "$job2"},
        "dependsOn": ["job2", "job1"]
    });
    let request = parse_ok(&plan(vec![video_job("job1"), audio_job("job2"), lip_sync]));
    // The audio dependency is skipped: the input is the video one.
    assert_eq!(
        provider_params(job(&request, "job3")).inputs.get("video"),
        Some(&job_ref("job1"))
    );
}

#[test]
fn provider_keys_leave_the_params_wherever_they_were_put() {
    let mut own = video_job("a");
    own["params"]["apiKey"] = json!("k-own");
    let raw = json!({"id": "b", "type": "generate", "params": {"unified": false,
        "model": {"provider": "local", "modelId": "video", "options": {"apiKey": "k-model", "fps": 24}}}});
    let request = parse_ok(&plan(vec![own, raw]));
    let a = provider_params(job(&request, "a"));
    assert_eq!(a.api_key.as_ref().map(Secret::expose), Some("k-own"));
    let b = provider_params(job(&request, "b"));
    assert_eq!(b.api_key.as_ref().map(Secret::expose), Some("k-model"));
    assert!(!b.options.contains_key("apiKey"), "{:?}", b.options);
    assert_eq!(b.options.get("fps"), Some(&json!(24)));
    // Serialised (as stored), neither key is there.
    let stored = serde_json::to_string(&request.plan).unwrap();
    assert!(!stored.contains("k-own") && !stored.contains("k-model"), "{stored}");
}

fn base() -> BaseJobs {
    BaseJobs {
        kinds: [
            ("scene".to_string(), MediaKind::Video),
            ("voice".to_string(), MediaKind::Audio),
        ]
        .into_iter()
        .collect(),
        final_job: "scene".into(),
    }
}

fn parse_on_base(body: &Value) -> Result<ExecutionRequest, Vec<PlanError>> {
    parse_value_on(body, &TestCatalog, PlanLimits::default(), Some(&base()))
}

#[test]
fn on_a_base_a_root_video_transform_takes_the_final_output() {
    let body = plan(vec![
        json!({"id": "vertical", "type": "reframe", "params": {"aspectRatio": "9:16"}}),
        json!({"id": "synced", "type": "lipSync", "params": {"provider": "fal", "modelId": "veed/fabric-1.0", "audioUrl": "$voice"}}),
    ]);
    let request = parse_on_base(&body).unwrap();
    let vertical = job(&request, "vertical");
    assert_eq!(deps(vertical), ["scene"]);
    assert_eq!(reframe_params(vertical).input, job_ref("scene"));
    let synced = job(&request, "synced");
    // It refers to a base job (`voice`), but names no video: the base's final one.
    assert_eq!(deps(synced), ["voice", "scene"]);
    assert_eq!(provider_params(synced).inputs.get("video"), Some(&job_ref("scene")));
    // Without a base, the same reframe has no input.
    let errors = parse_err(&plan(vec![
        json!({"id": "vertical", "type": "reframe", "params": {"aspectRatio": "9:16"}}),
    ]));
    find_error(&errors, "missing_input", Some("vertical"), Some("params.video"));
}

#[test]
fn on_a_base_only_its_job_ids_are_known() {
    let body = plan(vec![
        json!({"id": "v", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["scene"]}),
        json!({"id": "w", "type": "reframe", "params": {"aspectRatio": "1:1"}, "dependsOn": ["nowhere"]}),
    ]);
    let errors = parse_on_base(&body).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    find_error(&errors, "unknown_dependency", Some("w"), Some("dependsOn[0]"));
}

#[test]
fn the_requested_base_is_found_in_every_place_clients_put_it() {
    for body in [
        json!({"jobs": [], "baseExecutionId": "b1"}),
        json!({"executionPlan": {"jobs": [], "baseExecutionId": "b1"}}),
        json!({"executionPlan": {"jobs": []}, "options": {"baseExecutionId": "b1"}}),
    ] {
        assert_eq!(requested_base(&body).as_deref(), Some("b1"), "{body}");
    }
    assert_eq!(requested_base(&json!({"jobs": [], "baseExecutionId": ""})), None);
}

fn layer_job(params: Value) -> Value {
    json!({"id": "l", "type": "layer", "params": params})
}

#[test]
fn layers_parse_every_media_form_and_imply_their_dependencies() {
    let req = parse_ok(&plan(vec![
        video_job("v"),
        layer_job(json!({"layers": [
            {"media": "_videoJobDependency:v", "main": true},
            {"media": ["$v"], "placement": "w-1/4 bottom-right", "chromaKey": true, "volume": 0.5},
            {"media": [[{"media": "_jobDependency:v", "duration": 1}, "https://e.com/a.png"]], "placement": {"width": "50%", "position": {"x": "(W-w)/2"}}},
        ]})),
    ]));
    let job = &req.plan.jobs[1];
    assert_eq!(job.depends_on, vec!["v".to_string()]);
    let Params::Layer(l) = &job.params else {
        panic!("{job:?}")
    };
    assert_eq!(l.main_layer, Some(0));
    assert_eq!(
        l.layers[1].chroma_key,
        Some(ChromaKey {
            color: 0x00FF00,
            similarity: 0.25,
            blend: 0.05
        })
    );
    assert_eq!(l.layers[1].volume, Some(0.5));
    assert!(
        matches!(&l.layers[2].media, LayerMedia::Timeline(items) if items.len() == 2 && items[1].duration.is_none())
    );
}

#[test]
fn layer_problems_are_reported_naming_job_and_field() {
    let bad = |params: Value, field: &str| {
        let errors = parse_err(&plan(vec![video_job("v"), layer_job(params)]));
        find_error(&errors, "invalid_param", Some("l"), Some(field));
    };
    bad(json!({"layers": []}), "params.layers");
    bad(
        json!({"layers": [{"media": "$v", "placement": "w-2 sideways"}]}),
        "params.layers[0].placement",
    );
    bad(
        json!({"layers": [{"media": "$v", "placement": {"width": "movie=x"}}]}),
        "params.layers[0].placement.width",
    );
    bad(
        json!({"layers": [{"media": "$v", "chromaKey": true, "chromaKeyColor": "#GG0000"}]}),
        "params.layers[0].chromaKeyColor",
    );
    bad(
        json!({"layers": [{"media": "$v", "similarity": 1.5}]}),
        "params.layers[0].similarity",
    );
    bad(
        json!({"layers": [{"media": "$v", "blend": -0.1}]}),
        "params.layers[0].blend",
    );
    bad(json!({"layers": [{"media": "$v"}], "mainLayer": 3}), "params.mainLayer");
    bad(
        json!({"layers": [{"media": "$v"}, {"media": [["$v", {"media": "$v", "duration": 9}]]}], "outputDuration": 5}),
        "params.layers[1].media",
    );
    bad(json!({"layers": [{"media": ["$v", "$v"]}]}), "params.layers[0].media");
}
