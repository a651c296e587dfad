//! Stage 3, a scene step: a code-to-video scene's validation, render or upload claimed by
//! dispatch (`dispatch.rs`). Its code comes from the code job (a provider job, `generateSceneCode`);
//! validation and render go through the `SceneRunner` port (a sandbox), the upload through
//! ffmpeg. Next: completion (`completion.rs`); a refused code goes to `repair.rs` by way of
//! `settle.rs`, which also retries the machine's failures.

use futures::StreamExt;

use super::settle::WorkError;
use super::Engine;
use crate::domain::{Job, JobOutput};
use crate::plan::{Operation, Quality, SceneParams};
use crate::ports::{MediaTask, SceneCode, SceneError, SceneFrame};
use crate::worker::Handled;

/// Larger code is refused by the checks anyway; this only bounds the read.
const MAX_CODE_BYTES: usize = 1024 * 1024;

impl Engine {
    /// `None` when the completing write lost a race: the caller re-reads the job.
    pub(super) async fn run_scene_job(&self, job: &Job, params: &SceneParams) -> Result<Option<Handled>, WorkError> {
        let input = self.scene_input(job, params).await?;
        let output = match job.spec.operation {
            Operation::ValidateSceneCode => {
                let code = self.scene_code(&input, params).await?;
                self.scenes.check(&code).await.map_err(|e| refused(e, &input))?;
                // The code, checked: the render reads it from here.
                input
            }
            Operation::RenderScene => {
                let code = self.scene_code(&input, params).await?;
                let frame = SceneFrame {
                    width: params.width,
                    height: params.height,
                    fps: params.fps,
                };
                let artifact = self.scenes.render(&code, frame).await.map_err(|e| refused(e, &input))?;
                self.store_artifact(job, artifact).await?
            }
            Operation::UploadScene => {
                let url = self.blobs.url(&input.key).await?;
                let artifact = self
                    .media
                    .run(MediaTask::FastStart { input: url }, Quality::default())
                    .await
                    .map_err(WorkError::media)?;
                self.store_artifact(job, artifact).await?
            }
            other => {
                return Err(WorkError::Fatal {
                    code: "internal",
                    message: format!("job `{}`: `{other}` is not a scene step", job.id()),
                })
            }
        };
        // Stale (`None`): re-read, as in `run_media_job` (acking stranded the job).
        Ok(self.complete(job, output).await?)
    }

    async fn scene_input(&self, job: &Job, params: &SceneParams) -> Result<JobOutput, WorkError> {
        self.parent_outputs(job)
            .await?
            .remove(&params.input)
            .ok_or_else(|| WorkError::Fatal {
                code: "internal",
                message: format!("job `{}`: its input `{}` has no output", job.id(), params.input),
            })
    }

    /// The scene's code, read from the blob the code job stored.
    pub(super) async fn scene_code(&self, input: &JobOutput, params: &SceneParams) -> Result<SceneCode, WorkError> {
        Ok(SceneCode {
            source: self.read_text(&input.key).await?,
            class_name: params.class_name.clone(),
        })
    }

    pub(super) async fn read_text(&self, key: &str) -> Result<String, WorkError> {
        let mut body = self.blobs.get(key).await?;
        let mut raw = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| WorkError::Passing {
                message: format!("reading `{key}`: {e}"),
                retry_after: None,
            })?;
            if raw.len() + chunk.len() > MAX_CODE_BYTES {
                return Err(WorkError::Fatal {
                    code: "code_too_large",
                    message: format!("`{key}` is over {MAX_CODE_BYTES} bytes"),
                });
            }
            raw.extend_from_slice(&chunk);
        }
        String::from_utf8(raw).map_err(|_| WorkError::Fatal {
            code: "code_unreadable",
            message: format!("`{key}` is not UTF-8 text"),
        })
    }
}

/// The code's fault goes back to code generation; the machine's is retried.
fn refused(e: SceneError, code: &JobOutput) -> WorkError {
    match e {
        SceneError::Code(message) => WorkError::Refused {
            message,
            code_key: code.key.clone(),
        },
        SceneError::Machine(message) => WorkError::Passing {
            message,
            retry_after: None,
        },
    }
}
