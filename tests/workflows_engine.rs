//! The code-to-video workflow on the engine, message by message: the repair loop (refused
//! code written again with the error as feedback), its budget, retries with backoff on a
//! controlled clock, and duplicate delivery, with a scripted code writer and an instant
//! scene runner (the real sandbox and LLM protocols have tests of their own).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use reelay_core::domain::{AttemptOutcome, ExecutionStatus, JobStatus};
use reelay_core::ports::{Clock, Message};
use reelay_core::scenes::{SceneStep, WorkflowRequest};
use reelay_core::worker::{HandleError, MessageHandler};
use reelay_core::{Engine, EngineSettings, Handled};
use reelay_local::FileBlobs;
use reelay_testkit::instant::{InstantProvider, InstantScenes};
use reelay_testkit::writer::{ScriptedWriter, Written};

#[path = "engine_harness.rs"]
mod engine_harness;
use engine_harness::{harness_on, Delivery, Harness};

const GOOD: &str = "from manim import *\nclass IntroScene(Scene):\n    def construct(self):\n        self.wait(1)\n";

fn code(marker: &str) -> Written {
    Written::Code(format!("{GOOD}# {marker}\n"))
}

struct Run {
    h: Harness,
    writer: Arc<ScriptedWriter>,
    scenes: Arc<InstantScenes>,
    _dir: tempfile::TempDir,
}

fn run_with(script: Vec<Written>) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(FileBlobs::new(dir.path()).expect("blobs"));
    let writer = Arc::new(ScriptedWriter::new(script));
    let scenes = Arc::new(InstantScenes::default());
    let settings = EngineSettings {
        scene_writer: ("writer".into(), "code".into()),
        ..EngineSettings::default()
    };
    let h = harness_on(
        Arc::new(InstantProvider::new([])),
        vec![writer.clone()],
        scenes.clone(),
        blobs,
        settings,
    );
    Run {
        h,
        writer,
        scenes,
        _dir: dir,
    }
}

impl Run {
    async fn start(&self, body: serde_json::Value) -> String {
        let request = WorkflowRequest::parse(body.to_string().as_bytes()).expect("valid request");
        self.h.engine.start_workflow("t", &request).await.expect("started").id
    }
}

fn single() -> serde_json::Value {
    serde_json::json!({"mode": "single", "prompt": "A circle grows", "sceneName": "Intro"})
}

#[tokio::test]
async fn refused_code_is_written_again_with_the_error_until_it_renders() {
    for mode in [Delivery::Once, Delivery::TwiceLater, Delivery::TwiceAtOnce] {
        let run = run_with(vec![
            code("REFUSE: line 1: import of `os` is not allowed"),
            code("RAISE: NameError: name 'Sqare' is not defined (line 4)"),
            code("fine"),
        ]);
        let id = run.start(single()).await;
        run.h.drain(mode).await;
        let (execution, jobs) = run.h.execution(&id).await;
        let states: Vec<_> = jobs
            .values()
            .map(|j| (j.id(), j.status, j.round, j.rewind.is_some()))
            .collect();
        assert_eq!(execution.status, ExecutionStatus::Completed, "{mode:?}: {states:?}");

        // Three rounds of code, each after the first told what was wrong with the last.
        let briefs = run.writer.briefs();
        assert_eq!(briefs.len(), 3, "the writer is asked once per round");
        assert!(briefs[0].repairs.is_empty());
        assert_eq!(briefs[1].repairs.len(), 1);
        assert_eq!(briefs[1].repairs[0].step, SceneStep::Validation);
        assert!(briefs[1].repairs[0].error.contains("import of `os`"));
        assert!(
            briefs[1].repairs[0].code.contains("REFUSE:"),
            "the refused code goes back"
        );
        assert_eq!(briefs[2].repairs.len(), 2);
        assert_eq!(briefs[2].repairs[1].step, SceneStep::Compilation);
        assert!(briefs[2].repairs[1].error.contains("NameError"));
        assert!(briefs[2].repairs[1].code.contains("RAISE:"));
        // Round 1 never reached the renderer; rounds 2 and 3 each rendered once.
        assert_eq!(run.scenes.renders(), 2);

        let code_job = &jobs["scene-1.code"];
        assert_eq!((code_job.round, code_job.repairs.len()), (2, 2));
        let validate = &jobs["scene-1.validate"];
        assert_eq!(validate.history.len(), 1);
        assert_eq!(validate.history[0].outcome, AttemptOutcome::Repaired);
        let render = &jobs["scene-1.render"];
        assert_eq!(render.round, 2);
        assert_eq!(render.history.len(), 1);
        assert!(render.history[0].message.contains("NameError"));
        let upload = &jobs["scene-1.upload"];
        assert_eq!(upload.status, JobStatus::Completed);
        assert_eq!(execution.completed_jobs, 4);
        // Each round's code is its own file: the refused rounds stay readable.
        let keys: Vec<&str> = code_job.repairs.iter().map(|n| n.code_key.as_str()).collect();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert_ne!(code_job.output.as_ref().map(|o| o.key.as_str()), Some(keys[1]));
    }
}

#[tokio::test]
async fn code_refused_past_the_repair_budget_fails_the_run_naming_the_step() {
    let run = run_with(vec![code("REFUSE: line 2: `open` is not allowed")]);
    let id = run.start(single()).await;
    run.h.drain(Delivery::Once).await;
    let (execution, jobs) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    // The first round and two repairs.
    assert_eq!(run.writer.briefs().len(), 3);
    let validate = &jobs["scene-1.validate"];
    assert_eq!(validate.status, JobStatus::Failed);
    let error = validate.error.as_ref().expect("an error");
    assert_eq!(error.code, "code_refused");
    assert!(error.message.contains("`open` is not allowed"), "{}", error.message);
    assert!(error.message.contains("written again 2 times"), "{}", error.message);
    assert_eq!(jobs["scene-1.render"].status, JobStatus::Skipped);
    assert_eq!(run.scenes.renders(), 0);
    let message = execution.error.expect("an execution error").message;
    assert!(message.contains("scene-1.validate"), "{message}");
}

#[tokio::test]
async fn a_passing_writer_failure_is_retried_after_the_step_backoff() {
    let run = run_with(vec![
        Written::Passing("HTTP 500".into()),
        Written::Passing("HTTP 503".into()),
        code("fine"),
    ]);
    let started = run.h.clock.now();
    let id = run.start(single()).await;
    run.h.drain(Delivery::Once).await;
    let (execution, jobs) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    let code_job = &jobs["scene-1.code"];
    assert_eq!(code_job.attempts, 3);
    let waits: Vec<i64> = code_job.history.iter().map(|a| a.ended_at).collect();
    assert_eq!(waits.len(), 2);
    // 30 s, then 60 s: the workflow's backoff, on the test's clock.
    assert_eq!(waits[1] - waits[0], 30_000);
    assert!(run.h.clock.now() - started >= 90_000);
}

#[tokio::test]
async fn a_writer_that_keeps_failing_gives_up_after_its_three_attempts_and_a_fatal_one_at_once() {
    let run = run_with(vec![Written::Passing("HTTP 500".into())]);
    let id = run.start(single()).await;
    run.h.drain(Delivery::Once).await;
    let (execution, jobs) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(run.writer.briefs().len(), 3);
    assert_eq!(
        jobs["scene-1.code"].error.as_ref().map(|e| e.code.as_str()),
        Some("retries_exhausted")
    );

    let run = run_with(vec![Written::Fatal("401: the API key was refused".into())]);
    let id = run.start(single()).await;
    run.h.drain(Delivery::Once).await;
    let (execution, jobs) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(run.writer.briefs().len(), 1, "a refusal is not retried");
    assert!(jobs["scene-1.code"]
        .error
        .as_ref()
        .is_some_and(|e| e.message.contains("401")));
}

#[tokio::test]
async fn scenes_of_a_multi_run_repair_alone_and_the_merge_waits_for_all() {
    let run = run_with(vec![
        code("fine"),
        code("REFUSE: line 1: two Scene classes"),
        code("fine"),
        code("fine"),
    ]);
    let id = run
        .start(serde_json::json!({
            "mode": "multi", "title": "Shapes",
            "scenes": [{"name": "A", "prompt": "a", "order": 1}, {"name": "B", "prompt": "b", "order": 2}, {"name": "C", "prompt": "c", "order": 3}],
            "mergeOptions": {"addTransitions": true}
        }))
        .await;
    run.h.drain(Delivery::Once).await;
    let (execution, jobs) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed, "{:?}", execution.error);
    assert_eq!(run.writer.briefs().len(), 4, "one scene was written twice");
    let rounds: u32 = ["scene-1.code", "scene-2.code", "scene-3.code"]
        .iter()
        .map(|id| jobs[*id].round)
        .sum();
    assert_eq!(rounds, 1);
    assert_eq!(jobs["merge"].status, JobStatus::Completed);
    assert_eq!(execution.final_job, "merge");
}

/// The media runner's engine, noting the jobs whose messages it is given.
struct NotingMediaRunner {
    engine: Arc<Engine>,
    jobs: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl MessageHandler for NotingMediaRunner {
    async fn handle(&self, message: &Message) -> Result<Handled, HandleError> {
        if let Message::Job(key) = message {
            self.jobs.lock().unwrap().insert(key.job_id.clone());
        }
        Ok(self.engine.handle(message).await?)
    }
}

#[tokio::test]
async fn on_split_runners_only_uploads_and_the_merge_are_media_work() {
    // Scene 2's first code is refused: its repair runs on the provider runner.
    let run = run_with(vec![
        code("fine"),
        code("REFUSE: line 1: two Scene classes"),
        code("fine"),
    ]);
    let id = run
        .start(serde_json::json!({
            "mode": "multi", "title": "Shapes",
            "scenes": [{"name": "A", "prompt": "a", "order": 1}, {"name": "B", "prompt": "b", "order": 2}],
            "mergeOptions": {"addTransitions": true}
        }))
        .await;
    let media_queue = run.h.another_queue();
    let media_runner = NotingMediaRunner {
        engine: run.h.engine.clone(),
        jobs: Mutex::default(),
    };
    run.h.run_split(&media_queue, &media_runner, Delivery::TwiceLater).await;
    let (execution, _) = run.h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed, "{:?}", execution.error);
    assert_eq!(run.writer.briefs().len(), 3, "one scene was written twice");
    // Code, checks and renders (in the scene renderer, on AWS) stay with the provider runner.
    let hopped = media_runner.jobs.into_inner().unwrap();
    assert_eq!(
        hopped,
        BTreeSet::from(["merge".to_string(), "scene-1.upload".into(), "scene-2.upload".into()])
    );
}
