//! reelay on AWS Lambda: the handlers of the seven functions (`functions/*`, whose mains only
//! wire them), their settings, and the node they share.
//!
//! * `execute-api`: [`api::router`] through `lambda_http::run`;
//! * `provider-webhook`: [`api::callback_router`] through `lambda_http::run`;
//! * `job-runner`, `media-runner` and `webhook-sender`: [`sqs::BatchHandler`] over the engine
//!   (forwarding media jobs from the job queue to the media queue: [`AwsNode::job_runner`]),
//!   the engine again (the media queue's, in a function with the memory for ffmpeg) and the
//!   dispatcher, with partial batch failures;
//! * `poller`: [`poller::Poller`], started by EventBridge Scheduler.
//!
//! Each builds one [`AwsNode`] per cold start, after [`start`]. The seventh,
//! `scene-renderer` ([`scene_renderer::SceneRenderer`], a container image with Manim), is
//! invoked by the job runner; it builds no node, after [`start_scene_renderer`].

pub mod api;
pub mod node;
pub mod poller;
pub mod scene_renderer;
pub mod settings;
pub mod sqs;

use std::path::Path;

pub use node::{aws_adapters, AwsNode, StartError};
pub use reelay_node::{Adapters, SettingsError};
pub use settings::{AwsSettings, PollerSettings, SceneRendererSettings};

/// The process's environment, as the settings read it.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What a function's `main` does first, before its runtime starts threads: JSON logs
/// (CloudWatch), the settings, and where ffmpeg is.
pub fn start() -> Result<AwsSettings, SettingsError> {
    init_logging();
    let settings = AwsSettings::from_env(env).inspect_err(|e| tracing::error!(error = %e, "bad settings"))?;
    use_ffmpeg_dir(&settings.ffmpeg_dir);
    Ok(settings)
}

/// What the scene renderer's `main` does first: JSON logs and its own settings.
pub fn start_scene_renderer() -> Result<SceneRendererSettings, SettingsError> {
    init_logging();
    SceneRendererSettings::from_env(env).inspect_err(|e| tracing::error!(error = %e, "bad settings"))
}

/// One JSON object per line, no colours; the level from `REELAY_LOG` (an env-filter), else
/// Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REELAY_LOG").unwrap_or_else(|_| {
        let level = env("AWS_LAMBDA_LOG_LEVEL").map_or_else(|| "info".to_string(), |l| l.to_ascii_lowercase());
        tracing_subscriber::EnvFilter::new(level)
    });
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_current_span(true)
        .try_init();
}

/// The media crate runs `REELAY_FFMPEG`/`REELAY_FFPROBE`, else what `PATH` finds: point them
/// at the layer's binaries when they are there and not set otherwise. Only call this while
/// the process has one thread (it changes the environment).
fn use_ffmpeg_dir(dir: &Path) {
    for (var, binary) in [("REELAY_FFMPEG", "ffmpeg"), ("REELAY_FFPROBE", "ffprobe")] {
        let path = dir.join(binary);
        if env(var).is_none() && path.is_file() {
            std::env::set_var(var, path);
        }
    }
}
