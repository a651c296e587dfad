use super::*;
use crate::scenes::SceneBrief;

fn parse(body: serde_json::Value) -> Result<WorkflowRequest, WorkflowError> {
    WorkflowRequest::parse(body.to_string().as_bytes())
}

#[test]
fn a_single_scene_request_becomes_four_chained_steps() {
    let request = parse(serde_json::json!({
        "mode": "single", "prompt": "Explain the unit circle", "sceneName": "unit circle", "context": "for beginners"
    }))
    .expect("valid");
    assert_eq!((request.width, request.height, request.fps), (1920, 1080, 30));
    let small = parse(serde_json::json!({"mode": "single", "prompt": "p", "quality": "480p15", "aspectRatio": "9:16"}))
        .expect("valid");
    assert_eq!((small.width, small.height, small.fps), (480, 854, 15));
    let plan = request.plan(("local", "scene-code"));
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        ["scene-1.code", "scene-1.validate", "scene-1.render", "scene-1.upload"]
    );
    assert_eq!(plan.final_job().map(|j| j.id.as_str()), Some("scene-1.upload"));
    assert_eq!(plan.jobs[2].depends_on, ["scene-1.validate"]);
    let Params::Provider(code) = &plan.jobs[0].params else {
        panic!("code generation is a provider job")
    };
    let brief = SceneBrief::from_params(code).expect("a brief");
    assert_eq!(brief.class_name, "UnitCircleScene");
    assert_eq!(brief.context.as_deref(), Some("for beginners"));
    assert_eq!((brief.width, brief.height), (1920, 1080));
}

#[test]
fn a_multi_scene_request_merges_its_scenes_in_order_with_transitions() {
    let request = parse(serde_json::json!({
        "mode": "multi", "title": "Circles", "aspectRatio": "9:16",
        "scenes": [
            {"name": "Outro", "prompt": "b", "order": 3},
            {"name": "Intro", "prompt": "a", "order": 1},
            {"name": "Middle", "prompt": "c", "order": 2}
        ],
        "mergeOptions": {"addTransitions": true, "transitionDuration": 0.8}
    }))
    .expect("valid");
    assert_eq!((request.width, request.height), (1080, 1920));
    let names: Vec<&str> = request.scenes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Intro", "Middle", "Outro"]);
    let plan = request.plan(("openai", "gpt-4.1"));
    let merge = plan.final_job().expect("a final job");
    assert_eq!(merge.id, MERGE_JOB);
    assert_eq!(merge.depends_on, ["scene-1.upload", "scene-2.upload", "scene-3.upload"]);
    let Params::Merge(params) = &merge.params else {
        panic!("the last job merges")
    };
    let transition = params.transition.as_ref().expect("transitions asked for");
    assert_eq!((transition.kind, transition.duration), (TransitionKind::Crossfade, 0.8));
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (serde_json::json!({"prompt": "x"}), "mode"),
        (serde_json::json!({"mode": "double"}), "mode"),
        (serde_json::json!({"mode": "single"}), "prompt"),
        (serde_json::json!({"mode": "single", "prompt": "  "}), "prompt"),
        (serde_json::json!({"mode": "single", "prompt": 3}), "prompt"),
        (serde_json::json!({"mode": "multi", "scenes": []}), "title"),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": []}),
            "scenes",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a"}]}),
            "scenes[0].prompt",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a", "prompt": "p", "order": 1}, {"name": "b", "prompt": "q", "order": 1}]}),
            "scenes[1].order",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a", "prompt": "p"}], "mergeOptions": {"addTransitions": "yes"}}),
            "mergeOptions.addTransitions",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a", "prompt": "p"}], "mergeOptions": {"addTransitions": true, "transitionDuration": -1}}),
            "mergeOptions.transitionDuration",
        ),
        (
            serde_json::json!({"mode": "single", "prompt": "p", "quality": "8k"}),
            "quality",
        ),
        (
            serde_json::json!({"mode": "single", "prompt": "p", "aspectRatio": "4:3"}),
            "aspectRatio",
        ),
        (
            serde_json::json!({"mode": "single", "prompt": "p", "duration": 600}),
            "duration",
        ),
        (serde_json::json!(["mode"]), "body"),
        (
            serde_json::json!({"mode": "single", "prompt": "p", "promt": "q"}),
            "promt",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a", "prompt": "p", "oder": 1}]}),
            "scenes[0].oder",
        ),
        (
            serde_json::json!({"mode": "multi", "title": "t", "scenes": [{"name": "a", "prompt": "p"}], "mergeOptions": {"addTransition": true}}),
            "mergeOptions.addTransition",
        ),
    ];
    for (body, field) in cases {
        let error = parse(body.clone()).expect_err(&body.to_string());
        assert_eq!(error.field, field, "{body}: {error}");
    }
}

#[test]
fn unknown_and_repeated_keys_are_refused_naming_the_one_meant() {
    let error = parse(serde_json::json!({"mode": "single", "prompt": "p", "scene_name": "x"})).expect_err("a typo");
    assert_eq!(error.field, "scene_name");
    assert!(error.message.contains("did you mean `sceneName`?"), "{error}");
    let error = WorkflowRequest::parse(br#"{"mode": "single", "prompt": "a", "prompt": "b"}"#).expect_err("twice");
    assert_eq!(error.field, "prompt");
}

#[test]
fn class_names_are_python_identifiers() {
    assert_eq!(class_name("intro", 1), "IntroScene");
    assert_eq!(class_name("the big-bang scene", 2), "TheBigBangScene");
    assert_eq!(class_name("3 laws", 3), "Scene3");
    assert_eq!(class_name("日本", 4), "Scene4");
    assert_eq!(class_name("scene", 5), "Scene5");
}
