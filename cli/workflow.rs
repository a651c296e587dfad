//! `reelay workflow`: a prompt (or a request file, as the workflow API takes it) becomes a
//! video on the embedded stack: each scene's code written, checked, rendered and uploaded,
//! then merged, a line per step as it moves.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use reelay_core::scenes::WorkflowRequest;

#[derive(Args)]
pub struct WorkflowArgs {
    /// What the video shows (a single scene). Or give `--request`.
    #[arg(required_unless_present = "request", conflicts_with = "request")]
    prompt: Option<String>,
    /// A request body as `POST /api/workflows/generate-video` takes it (single or multi).
    #[arg(long)]
    request: Option<PathBuf>,
    #[arg(long)]
    scene_name: Option<String>,
    /// Background the code writer is given.
    #[arg(long)]
    context: Option<String>,
    /// `16:9` or `9:16`.
    #[arg(long)]
    aspect_ratio: Option<String>,
    /// `1080p30` (default), `1080p60`, `720p30` or `480p15`.
    #[arg(long)]
    quality: Option<String>,
    /// Target length of each scene, in seconds (default 5).
    #[arg(long)]
    duration: Option<f64>,
}

impl WorkflowArgs {
    /// The request, read and checked as the API would.
    pub fn request(&self) -> anyhow::Result<WorkflowRequest> {
        let body = match (&self.request, &self.prompt) {
            (Some(path), _) => {
                std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
            }
            (None, prompt) => {
                let mut body = json!({"mode": "single", "prompt": prompt});
                let options = [
                    ("sceneName", self.scene_name.clone().map(Value::from)),
                    ("context", self.context.clone().map(Value::from)),
                    ("aspectRatio", self.aspect_ratio.clone().map(Value::from)),
                    ("quality", self.quality.clone().map(Value::from)),
                    ("duration", self.duration.map(Value::from)),
                ];
                for (name, value) in options {
                    if let Some(value) = value {
                        body[name] = value;
                    }
                }
                serde_json::to_vec(&body)?
            }
        };
        WorkflowRequest::parse(&body).map_err(|e| anyhow::anyhow!("the request is invalid: {e}"))
    }
}
