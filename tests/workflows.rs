//! Code-to-video workflows end to end on a served embedded node, offline: the `local` writer
//! fills a template, the sandbox renders it with Manim, and the video is fetched by its URL
//! and probed. Also the workflow API's answers for bad bodies and unknown runs; every answer
//! and the shipped request bodies (`examples/workflows/`) match the OpenAPI document.

#[path = "support/openapi_doc.rs"]
mod openapi_doc;
#[path = "support/pixels.rs"]
mod pixels;
mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};

use openapi_doc::{assert_answer, assert_valid, document};
use support::{spawn_served_app_with, App, ACME, GLOBEX};

const START: &str = "/api/workflows/generate-video";
const STATUS: &str = "/api/workflows/status";

async fn app() -> App {
    let (app, _) = spawn_served_app_with(|s, _| {
        s.node.providers.local_python = support::python().display().to_string();
    })
    .await;
    app
}

/// The run's status once it has ended.
async fn ended(app: &App, run_id: &str) -> Value {
    for _ in 0..1200 {
        let answer = app.get(ACME, &format!("{STATUS}?runId={run_id}")).await;
        assert_answer(&document(), &answer, "get", STATUS, StatusCode::OK);
        if answer.body["status"] != "running" {
            return answer.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("run {run_id} did not end");
}

async fn start(app: &App, body: Value) -> String {
    let answer = app.post(ACME, START, &body).await;
    assert_answer(&document(), &answer, "post", START, StatusCode::ACCEPTED);
    assert_eq!(answer.body["success"], true);
    answer.body["runId"].as_str().expect("a run id").to_string()
}

/// Fetches a video by its URL, as any HTTP client would, into a file.
async fn fetch(url: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let response = reqwest::get(url).await.expect("the video URL answers");
    assert_eq!(response.status(), 200, "{url}");
    let bytes = response.bytes().await.expect("a body");
    let (_, path) = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile_in(dir)
        .expect("a file")
        .keep()
        .expect("kept");
    std::fs::write(&path, &bytes).expect("written");
    path
}

fn probe(path: &std::path::Path) -> (f64, u64, u64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let stream = &v["streams"][0];
    (
        duration,
        stream["width"].as_u64().unwrap_or(0),
        stream["height"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn a_single_scene_prompt_becomes_a_video_any_client_can_fetch() {
    let app = app().await;
    let run_id = start(
        &app,
        json!({"mode": "single", "prompt": "Show a blue circle turning into a square", "sceneName": "Shapes", "quality": "480p15", "duration": 3}),
    )
    .await;
    let status = ended(&app, &run_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["progress"]["completedSteps"], 4);
    assert_eq!(status["progress"]["totalSteps"], 4);
    assert_eq!(status["progress"]["percentage"], 100);
    let result = &status["result"];
    assert_eq!(result["success"], true);
    assert_eq!(result["sceneId"], "scene-1");
    assert_eq!(result["sceneName"], "Shapes");
    for step in ["codeGeneration", "validation", "compilation", "upload"] {
        assert_eq!(result["steps"][step], "completed", "{step}: {status}");
    }
    let path = fetch(result["videoUrl"].as_str().expect("a URL"), app.dir.path()).await;
    let (duration, width, height) = probe(&path);
    assert_eq!((width, height), (854, 480));
    assert!((duration - 3.0).abs() < 1.0, "duration {duration}");
    for at in [0.5, duration / 2.0, duration - 0.3] {
        assert!(
            pixels::drawn(&pixels::grey_frame(&path, at)) > 0.002,
            "a blank frame at {at}s"
        );
    }
    // A run is an execution: the execution routes serve it too.
    let execution = app.status(ACME, &run_id).await;
    assert_eq!(execution["status"], "completed");
    assert_eq!(execution["jobs"].as_array().map(Vec::len), Some(4));
    app.stop().await;
}

#[tokio::test]
async fn three_scenes_render_in_parallel_and_merge_with_transitions() {
    let app = app().await;
    let run_id = start(
        &app,
        json!({
            "mode": "multi", "title": "Geometry", "quality": "480p15", "duration": 2, "aspectRatio": "9:16",
            "scenes": [
                {"name": "Outro", "prompt": "Thanks for watching", "order": 3},
                {"name": "Intro", "prompt": "Geometry basics: points, lines, circles", "order": 1},
                {"name": "Graph", "prompt": "Plot the sine function", "order": 2}
            ],
            "mergeOptions": {"addTransitions": true, "transitionDuration": 0.5}
        }),
    )
    .await;
    let status = ended(&app, &run_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["progress"]["totalSteps"], 13, "4 steps a scene and the merge");
    let result = &status["result"];
    let scenes = result["scenes"].as_array().expect("scenes");
    let names: Vec<&str> = scenes.iter().map(|s| s["sceneName"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["Intro", "Graph", "Outro"]);
    let mut sum = 0.0;
    for scene in scenes {
        assert_eq!(scene["success"], true, "{scene}");
        let path = fetch(scene["videoUrl"].as_str().expect("a scene URL"), app.dir.path()).await;
        let (duration, width, height) = probe(&path);
        assert_eq!((width, height), (480, 854));
        sum += duration;
    }
    let merged = fetch(result["videoUrl"].as_str().expect("the merged URL"), app.dir.path()).await;
    let (duration, width, height) = probe(&merged);
    assert_eq!((width, height), (480, 854));
    // Two crossfades of 0.5 s overlap the scenes.
    assert!((duration - (sum - 1.0)).abs() < 0.5, "merged {duration}, scenes {sum}");
    assert!(pixels::drawn(&pixels::grey_frame(&merged, duration / 2.0)) > 0.002);
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_and_unknown_runs_answer_in_the_workflow_shape() {
    let doc = document();
    let app = app().await;
    let answer = app.post(ACME, START, &json!({"mode": "single"})).await;
    assert_answer(&doc, &answer, "post", START, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["success"], false);
    assert_eq!(answer.body["code"], "invalid_request");
    assert!(
        answer.body["error"].as_str().unwrap_or("").contains("prompt"),
        "{}",
        answer.body
    );

    let answer = app
        .post(
            ACME,
            START,
            &json!({"mode": "multi", "title": "t", "scenes": [{"name": "a"}]}),
        )
        .await;
    assert_answer(&doc, &answer, "post", START, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["error"].as_str().unwrap_or("").contains("scenes[0].prompt"),
        "{}",
        answer.body
    );

    let answer = app.get(ACME, &format!("{STATUS}?runId=no-such-run")).await;
    assert_answer(&doc, &answer, "get", STATUS, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["error"], "Workflow run not found");
    let answer = app.get(ACME, STATUS).await;
    assert_answer(&doc, &answer, "get", STATUS, StatusCode::BAD_REQUEST);

    // Another tenant's run, and an execution that is not a run, read as not found too.
    let run_id = start(
        &app,
        json!({"mode": "single", "prompt": "A dot", "quality": "480p15", "duration": 1}),
    )
    .await;
    let answer = app.get(GLOBEX, &format!("{STATUS}?runId={run_id}")).await;
    assert_answer(&doc, &answer, "get", STATUS, StatusCode::NOT_FOUND);
    let execution = app.submit(ACME, &json!({"jobs": [support::image_job("img")]})).await;
    let answer = app.get(ACME, &format!("{STATUS}?runId={execution}")).await;
    assert_answer(&doc, &answer, "get", STATUS, StatusCode::NOT_FOUND);
    let answer = app.call(axum::http::Method::POST, START, None, Some("{}".into())).await;
    assert_answer(&doc, &answer, "post", START, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn the_example_requests_match_the_document_and_can_be_cancelled() {
    let doc = document();
    let schema = &doc["paths"][START]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let app = app().await;
    for name in ["single.json", "multi.json"] {
        let path = format!("{}/examples/workflows/{name}", env!("CARGO_MANIFEST_DIR"));
        let body: Value = serde_json::from_slice(&std::fs::read(&path).expect("an example")).expect("JSON");
        assert_valid(&doc, schema, &body, &path);
        let answer = app.post(ACME, START, &body).await;
        assert_answer(&doc, &answer, "post", START, StatusCode::ACCEPTED);
        let run_id = answer.body["runId"].as_str().expect("a run id");
        let cancel = app
            .post(ACME, &format!("/api/executions/{run_id}/cancel"), &json!({}))
            .await;
        assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
        let status = ended(&app, run_id).await;
        assert_eq!(status["status"], "cancelled", "{status}");
        assert_eq!(status["result"]["success"], false);
    }
    app.stop().await;
}

/// `make bench-scenes`: the wall time of a three-scene run (1080p30, 5 s scenes, merged with
/// crossfades) against the slowest of the same scenes run alone. Prints the figures.
#[tokio::test]
#[ignore = "a benchmark: make bench-scenes"]
async fn bench_three_scenes_against_the_slowest_alone() {
    let app = app().await;
    let scenes = [
        ("Intro", "Geometry basics: points, lines, circles"),
        ("Graph", "Plot the sine function"),
        ("Shape", "A circle turns into a square"),
    ];
    let timed = |body: Value| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let run_id = start(app, body).await;
            let status = ended(app, &run_id).await;
            assert_eq!(status["status"], "completed", "{status}");
            started.elapsed().as_secs_f64()
        }
    };
    let mut alone = Vec::new();
    for (name, prompt) in scenes {
        alone.push(timed(json!({"mode": "single", "prompt": prompt, "sceneName": name})).await);
    }
    let scenes: Vec<Value> = scenes
        .iter()
        .enumerate()
        .map(|(i, (name, prompt))| json!({"name": name, "prompt": prompt, "order": i + 1}))
        .collect();
    let together = timed(json!({
        "mode": "multi", "title": "Bench", "scenes": scenes,
        "mergeOptions": {"addTransitions": true, "transitionDuration": 0.5}
    }))
    .await;
    let slowest = alone.iter().cloned().fold(0.0, f64::max);
    println!("single-scene runs (1080p30, 5 s, each alone): {alone:.2?} s");
    println!(
        "three-scene run: {together:.2} s = {:.2} x the slowest single scene ({slowest:.2} s)",
        together / slowest
    );
    app.stop().await;
}
