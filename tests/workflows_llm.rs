//! Code-to-video workflows whose code comes from the LLM fakes (tests/fakes/openai.rs and
//! anthropic.rs, which the official clients drive in tests/providers_llm.rs): refused code
//! repaired round by round on a served node, each attempt visible in the status; code that
//! never passes fails the run naming its step; and, on the engine with a controlled clock, a
//! 500 retried after the step's backoff and a 401 failing at once.

mod support;

#[path = "engine_harness.rs"]
mod engine_harness;
#[path = "fakes/anthropic.rs"]
mod fake_anthropic;
#[path = "fakes/openai.rs"]
mod fake_openai;
#[path = "fakes/llm.rs"]
mod llm;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use engine_harness::{harness_on, Delivery};
use llm::{Answer, FakeLlm};
use reelay_core::domain::{ExecutionStatus, JobStatus};
use reelay_core::plan::Secret;
use reelay_core::ports::Clock;
use reelay_core::scenes::WorkflowRequest;
use reelay_core::EngineSettings;
use reelay_local::FileBlobs;
use reelay_providers::scene_code::{ChatSettings, OpenAiProvider};
use reelay_testkit::instant::{InstantProvider, InstantScenes};
use support::{spawn_served_app_with, App, ACME};

const GOOD: &str = "from manim import *\n\nclass IntroScene(Scene):\n    def construct(self):\n        \
                    circle = Circle(color=BLUE)\n        self.play(Create(circle), run_time=1)\n        self.wait(1)\n";
const FORBIDDEN_IMPORT: &str =
    "import os\nfrom manim import *\n\nclass IntroScene(Scene):\n    def construct(self):\n        \
                                self.wait(1)\n";
const RAISES: &str = "from manim import *\n\nclass IntroScene(Scene):\n    def construct(self):\n        \
                      self.play(Create(Sqare()))\n";

/// A served node whose scene code Anthropic's fake writes.
async fn app_writing_with(fake: &FakeLlm) -> App {
    let (base_url, key) = (fake.base_url.clone(), fake.key.clone());
    let (app, _) = spawn_served_app_with(move |s, _| {
        s.node.providers.local_python = support::python().display().to_string();
        s.node.providers.anthropic = Some(ChatSettings {
            base_url,
            ..ChatSettings::anthropic(Some(Secret::new(key)))
        });
    })
    .await;
    app
}

async fn ended(app: &App, run_id: &str) -> Value {
    for _ in 0..1200 {
        let answer = app.get(ACME, &format!("/api/workflows/status?runId={run_id}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        if answer.body["status"] != "running" {
            return answer.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("run {run_id} did not end");
}

async fn start(app: &App) -> String {
    let body =
        json!({"mode": "single", "prompt": "A blue circle", "sceneName": "Intro", "quality": "480p15", "duration": 2});
    let answer = app.post(ACME, "/api/workflows/generate-video", &body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    answer.body["runId"].as_str().expect("a run id").to_string()
}

#[tokio::test]
async fn a_forbidden_import_then_a_render_error_are_repaired_and_each_attempt_shows() {
    let fake = fake_anthropic::start(vec![
        Answer::Code(FORBIDDEN_IMPORT.into()),
        Answer::Code(RAISES.into()),
        Answer::Code(GOOD.into()),
    ])
    .await;
    let app = app_writing_with(&fake).await;
    let run_id = start(&app).await;
    let status = ended(&app, &run_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["steps"]["compilation"], "completed");

    // The history: validation refused round 0, compilation refused round 1.
    let steps = &status["history"][0]["steps"];
    let validation = steps["validation"]["history"].as_array().expect("validation history");
    assert_eq!(validation.len(), 1, "{status}");
    assert_eq!(validation[0]["outcome"], "repaired");
    assert!(validation[0]["error"].as_str().unwrap_or("").contains("os"), "{status}");
    let compilation = steps["compilation"]["history"].as_array().expect("compilation history");
    assert_eq!(compilation.len(), 1, "{status}");
    assert_eq!(compilation[0]["round"], 1);
    assert!(
        compilation[0]["error"].as_str().unwrap_or("").contains("Sqare"),
        "{status}"
    );
    assert_eq!(steps["codeGeneration"]["round"], 2);

    // Each round after the first told the model what was wrong, with the code it wrote.
    let played = fake.played();
    assert_eq!(played.len(), 3);
    let second = played[1].prompt_text();
    assert!(
        second.contains("import os") && second.contains("not allowed"),
        "{second}"
    );
    let third = played[2].prompt_text();
    assert!(third.contains("Sqare") && third.contains("NameError"), "{third}");
    app.stop().await;
}

#[tokio::test]
async fn code_that_never_passes_fails_the_run_naming_the_step_and_the_reason() {
    let fake = fake_anthropic::start(vec![Answer::Code(FORBIDDEN_IMPORT.into())]).await;
    let app = app_writing_with(&fake).await;
    let run_id = start(&app).await;
    let status = ended(&app, &run_id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().expect("an error");
    assert!(error.starts_with("scene-1 (Intro): validation failed"), "{error}");
    assert!(error.contains("`os`"), "{error}");
    assert_eq!(status["result"]["success"], false);
    assert_eq!(status["result"]["error"], status["error"]);
    assert_eq!(fake.played().len(), 3, "the first round and two repairs");
    assert_eq!(status["result"]["scenes"][0]["steps"]["compilation"], "skipped");
    app.stop().await;
}

/// The engine on a controlled clock, its code written by OpenAI's provider against the fake.
async fn run_on_clock(script: Vec<Answer>) -> (engine_harness::Harness, FakeLlm, String, tempfile::TempDir) {
    let fake = fake_openai::start(script).await;
    let writer = OpenAiProvider::new(ChatSettings {
        base_url: fake.base_url.clone(),
        ..ChatSettings::openai(Some(Secret::new(fake.key.clone())))
    })
    .expect("a provider");
    let model = writer_model(&writer);
    let dir = tempfile::tempdir().expect("tempdir");
    let h = harness_on(
        Arc::new(InstantProvider::new([])),
        vec![Arc::new(writer)],
        Arc::new(InstantScenes::default()),
        Arc::new(FileBlobs::new(dir.path()).expect("blobs")),
        EngineSettings {
            scene_writer: ("openai".into(), model),
            ..EngineSettings::default()
        },
    );
    let body = json!({"mode": "single", "prompt": "A blue circle", "sceneName": "Intro"});
    let request = WorkflowRequest::parse(body.to_string().as_bytes()).expect("valid");
    let id = h.engine.start_workflow("t", &request).await.expect("started").id;
    h.drain(Delivery::Once).await;
    (h, fake, id, dir)
}

fn writer_model(writer: &OpenAiProvider) -> String {
    use reelay_core::ports::Provider;
    writer.models()[0].id.clone()
}

#[tokio::test]
async fn a_500_is_retried_after_the_backoff_and_a_401_fails_at_once() {
    let (h, fake, id, _dir) = run_on_clock(vec![Answer::Status(500), Answer::Code(GOOD.into())]).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed, "{:?}", execution.error);
    assert_eq!(fake.requests().len(), 2);
    let code = &jobs["scene-1.code"];
    assert_eq!(code.attempts, 2);
    assert_eq!(code.history.len(), 1);
    assert!(code.history[0].message.contains("500"), "{:?}", code.history);
    // The retry came after the first backoff (30 s) on the test's clock, not before.
    let retried_at = code.attempt_started_at.expect("the second attempt's start");
    assert!(retried_at - code.history[0].ended_at >= 30_000);
    assert!(h.clock.now() - code.history[0].ended_at >= 30_000);

    let (h, fake, id, _dir) = run_on_clock(vec![Answer::Status(401)]).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(fake.requests().len(), 1, "a refused key is not tried again");
    let code = &jobs["scene-1.code"];
    assert_eq!(code.status, JobStatus::Failed);
    assert!(
        code.error.as_ref().is_some_and(|e| e.message.contains("401")),
        "{:?}",
        code.error
    );
}
