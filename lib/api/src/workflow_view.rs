//! The workflow status answer (`GET /api/workflows/status?runId=`): a run's execution read
//! as scenes and their steps, with progress counted in steps across all scenes and each
//! step's history (rounds, attempts, errors, timings).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use reelay_core::domain::{AttemptRecord, Execution, ExecutionStatus, Job, JobStatus, WorkflowRun};
use reelay_core::plan::{Operation, Params};
use reelay_core::scenes::{SceneBrief, SceneStep, WorkflowMode};

use crate::iso8601;
use crate::view::execution_error;

/// The scene step a job is, if it is one.
fn step_of(job: &Job) -> Option<SceneStep> {
    match job.spec.operation {
        Operation::GenerateSceneCode => Some(SceneStep::CodeGeneration),
        Operation::ValidateSceneCode => Some(SceneStep::Validation),
        Operation::RenderScene => Some(SceneStep::Compilation),
        Operation::UploadScene => Some(SceneStep::Upload),
        _ => None,
    }
}

/// The scene a step belongs to: its job id up to the first dot (`scene-2.render`).
fn scene_of(job: &Job) -> &str {
    job.id().split('.').next().unwrap_or(job.id())
}

/// How a step stands, in the words of the workflow API.
fn step_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Waiting | JobStatus::Queued => "pending",
        JobStatus::Running | JobStatus::AwaitingProvider => "running",
        other => other.name(),
    }
}

fn run_status(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Pending | ExecutionStatus::Processing => "running",
        other => other.name(),
    }
}

struct Scene<'a> {
    id: &'a str,
    name: String,
    steps: BTreeMap<SceneStep, &'a Job>,
}

fn scenes(jobs: &[Job]) -> Vec<Scene<'_>> {
    let mut scenes: Vec<Scene> = Vec::new();
    for job in jobs {
        let Some(step) = step_of(job) else { continue };
        let id = scene_of(job);
        let at = match scenes.iter().position(|s| s.id == id) {
            Some(at) => at,
            None => {
                scenes.push(Scene {
                    id,
                    name: id.to_string(),
                    steps: BTreeMap::new(),
                });
                scenes.len() - 1
            }
        };
        if let Params::Provider(params) = &job.spec.params {
            if let Ok(brief) = SceneBrief::from_params(params) {
                scenes[at].name = brief.scene_name;
            }
        }
        scenes[at].steps.insert(step, job);
    }
    scenes
}

fn attempt_view(a: &AttemptRecord) -> Value {
    json!({
        "round": a.round,
        "attempt": a.attempt,
        "outcome": a.outcome,
        "code": a.code,
        "error": a.message,
        "startedAt": a.started_at.map(iso8601),
        "endedAt": iso8601(a.ended_at),
    })
}

/// One step's detail: where it stands and every attempt that did not complete it.
fn step_view(job: &Job) -> Value {
    json!({
        "jobId": job.id(),
        "status": step_status(job.status),
        "round": job.round,
        "attempts": job.attempts,
        "error": job.error.as_ref().map(|e| e.message.clone()),
        "startedAt": job.started_at.map(iso8601),
        "completedAt": job.completed_at.map(iso8601),
        "history": job.history.iter().map(attempt_view).collect::<Vec<_>>(),
    })
}

/// A scene's entry: its video, when uploaded, and its steps' states.
fn scene_view(scene: &Scene) -> Value {
    let upload = scene.steps.get(&SceneStep::Upload).and_then(|j| j.output.as_ref());
    let steps: Map<String, Value> = SceneStep::ALL
        .iter()
        .map(|step| {
            let status = scene.steps.get(step).map_or("pending", |j| step_status(j.status));
            (step.name().to_string(), json!(status))
        })
        .collect();
    json!({
        "success": upload.is_some(),
        "sceneId": scene.id,
        "sceneName": scene.name,
        "videoUrl": upload.map(|o| o.url.clone()),
        "videoId": upload.map(|o| o.key.clone()),
        "duration": upload.and_then(|o| o.duration),
        "steps": steps,
    })
}

/// "scene-2 (Outro): compilation failed: …", or the merge's failure.
fn failure(jobs: &[Job]) -> Option<String> {
    let failed = jobs.iter().find(|j| j.status == JobStatus::Failed)?;
    let why = failed.error.as_ref().map_or("unknown error", |e| e.message.as_str());
    let scenes = scenes(jobs);
    Some(match step_of(failed) {
        Some(step) => {
            let scene = scenes.iter().find(|s| s.id == scene_of(failed));
            let name = scene.map_or(String::new(), |s| format!(" ({})", s.name));
            format!("{}{name}: {} failed: {why}", scene_of(failed), step.name())
        }
        None => format!("{} failed: {why}", failed.id()),
    })
}

pub fn workflow_view(execution: &Execution, run: &WorkflowRun, jobs: &[Job]) -> Value {
    let scenes = scenes(jobs);
    let total = jobs.len();
    let done = jobs.iter().filter(|j| j.status == JobStatus::Completed).count();
    let mut running: Vec<&Job> = jobs
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Running | JobStatus::AwaitingProvider))
        .collect();
    running.sort_by_key(|j| j.attempt_started_at);
    let current = running.first().map(|j| match step_of(j) {
        Some(step) => format!("{}: {}", scene_of(j), step.name()),
        None => j.id().to_string(),
    });
    let status = run_status(execution.status);
    let error = match execution.status {
        ExecutionStatus::Failed => failure(jobs).or_else(|| execution_error(execution)),
        ExecutionStatus::Cancelled => execution_error(execution),
        _ => None,
    };
    let result = match execution.status {
        ExecutionStatus::Completed => Some(completed_result(execution, run, &scenes)),
        ExecutionStatus::Failed | ExecutionStatus::Cancelled => Some(json!({
            "success": false,
            "error": error,
            "scenes": scenes.iter().map(scene_view).collect::<Vec<_>>(),
        })),
        _ => None,
    };
    json!({
        "success": true,
        "runId": execution.id,
        "mode": run.mode.name(),
        "title": run.title,
        "status": status,
        "progress": {
            "currentStep": current,
            "completedSteps": done,
            "totalSteps": total,
            "percentage": (done * 100).checked_div(total).unwrap_or(0),
        },
        "result": result,
        "error": error,
        "history": scenes.iter().map(|s| json!({
            "sceneId": s.id,
            "sceneName": s.name,
            "steps": s.steps.iter().map(|(step, job)| (step.name().to_string(), step_view(job))).collect::<Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "createdAt": iso8601(execution.created_at),
        "completedAt": execution.completed_at.map(iso8601),
    })
}

fn completed_result(execution: &Execution, run: &WorkflowRun, scenes: &[Scene]) -> Value {
    match run.mode {
        WorkflowMode::Single => scenes.first().map(scene_view).unwrap_or(Value::Null),
        WorkflowMode::Multi => {
            let merged = execution.result.as_ref();
            json!({
                "success": merged.is_some(),
                "title": run.title,
                "videoUrl": merged.map(|o| o.url.clone()),
                "videoId": merged.map(|o| o.key.clone()),
                "duration": merged.and_then(|o| o.duration),
                "scenes": scenes.iter().map(scene_view).collect::<Vec<_>>(),
            })
        }
    }
}
