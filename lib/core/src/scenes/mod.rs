//! Code-to-video workflows: a prompt becomes Manim code, checked, rendered per scene and
//! merged. A workflow run is an execution like any other; this module turns a workflow
//! request into its plan (`request.rs`) and carries what a code-writing model is asked
//! (`brief.rs`). The engine runs the steps (`engine/scene_jobs.rs`, `engine/repair.rs`).

mod brief;
mod request;

pub use brief::{Repair, SceneBrief, SceneStep};
pub use request::{SceneJobIds, SceneSpec, WorkflowError, WorkflowMode, WorkflowRequest, MERGE_JOB};
