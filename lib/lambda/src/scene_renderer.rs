//! The scene-renderer function: the job runner's `SceneRunner` calls
//! (`reelay_aws::LambdaScenes`), answered by the same sandbox the embedded node runs
//! (`reelay_media::ManimSandbox`), in a container image that has Python and Manim.
//!
//! The protocol is `reelay_aws::scenes::{SceneRequest, SceneAnswer}`. A render is streamed
//! into the bucket at the key the invoker chose, which must lie under
//! [`RENDER_PREFIX`]. Every refusal is an answer, never a function error: the code's fault
//! goes back to code generation, the machine's is retried by the job runner.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use reelay_aws::scenes::{SceneAnswer, SceneRequest, RENDER_PREFIX};
use reelay_aws::{S3Blobs, S3Settings};
use reelay_core::ports::{Blobs, SceneError, SceneFrame, SceneRunner};
use reelay_media::ManimSandbox;

use crate::settings::SceneRendererSettings;

pub struct SceneRenderer {
    scenes: Arc<dyn SceneRunner>,
    blobs: Arc<dyn Blobs>,
}

impl SceneRenderer {
    pub fn new(scenes: Arc<dyn SceneRunner>, blobs: Arc<dyn Blobs>) -> SceneRenderer {
        SceneRenderer { scenes, blobs }
    }

    /// The function's: the SDK's configuration from the Lambda environment.
    pub async fn load(settings: &SceneRendererSettings) -> SceneRenderer {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        SceneRenderer::connect(&config, settings)
    }

    /// The sandbox of `settings`, writing to its bucket on the AWS of `config` (or its
    /// endpoint's).
    pub fn connect(config: &SdkConfig, settings: &SceneRendererSettings) -> SceneRenderer {
        let blobs = S3Blobs::new(
            config,
            S3Settings {
                bucket: settings.bucket.clone(),
                // The renderer makes no URLs.
                url_expiry: std::time::Duration::from_secs(60),
                cdn_base: None,
                endpoint_url: settings.endpoint_url.clone(),
            },
        );
        SceneRenderer::new(Arc::new(ManimSandbox::new(settings.manim.clone())), Arc::new(blobs))
    }

    /// The Lambda handler.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<SceneAnswer, Error> {
        Ok(self.answer(event.payload).await)
    }

    /// The answer to one request, whatever it holds.
    pub async fn answer(&self, request: Value) -> SceneAnswer {
        let request: SceneRequest = match serde_json::from_value(request) {
            Ok(r) => r,
            Err(e) => {
                return SceneAnswer::refused(&SceneError::Machine(format!("not a scene request: {e}")));
            }
        };
        let outcome = match &request {
            SceneRequest::Check { .. } => self
                .scenes
                .check(&request.code())
                .await
                .map(|()| SceneAnswer::checked()),
            SceneRequest::Render {
                width,
                height,
                fps,
                output_key,
                ..
            } => {
                let frame = SceneFrame {
                    width: *width,
                    height: *height,
                    fps: *fps,
                };
                self.render(&request, frame, output_key).await
            }
        };
        outcome.unwrap_or_else(|e| {
            tracing::info!(fault = ?SceneAnswer::refused(&e).fault, error = %e, "scene refused");
            SceneAnswer::refused(&e)
        })
    }

    async fn render(&self, request: &SceneRequest, frame: SceneFrame, key: &str) -> Result<SceneAnswer, SceneError> {
        // The role may write nowhere else either; this says so before any work is done.
        if key.strip_prefix(RENDER_PREFIX).is_none_or(str::is_empty) {
            return Err(SceneError::Machine(format!(
                "outputKey {key:?} is not under {RENDER_PREFIX}"
            )));
        }
        let artifact = self.scenes.render(&request.code(), frame).await?;
        let stored = self
            .blobs
            .put(key, &artifact.content_type, artifact.body)
            .await
            .map_err(|e| SceneError::Machine(format!("storing the render at {key}: {e}")))?;
        let mut info = artifact.info;
        info.size_bytes = stored.size;
        tracing::info!(key, size = stored.size, duration = ?info.duration, "scene rendered");
        Ok(SceneAnswer::rendered(&stored.key, &info))
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use reelay_core::ports::{Artifact, MediaInfo, SceneCode};
    use reelay_local::FileBlobs;

    use super::*;

    /// Refuses code that says `refuse`, fails the machine on `crash`, renders three bytes.
    struct Stub;

    #[async_trait]
    impl SceneRunner for Stub {
        async fn check(&self, code: &SceneCode) -> Result<(), SceneError> {
            if code.source.contains("refuse") {
                return Err(SceneError::Code(format!("line 1: `{}` refused", code.class_name)));
            }
            if code.source.contains("crash") {
                return Err(SceneError::Machine("no python".into()));
            }
            Ok(())
        }

        async fn render(&self, code: &SceneCode, frame: SceneFrame) -> Result<Artifact, SceneError> {
            self.check(code).await?;
            let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"mp4"))]);
            Ok(Artifact {
                body: Box::pin(body),
                content_type: "video/mp4".into(),
                extension: "mp4".into(),
                info: MediaInfo {
                    duration: Some(1.0),
                    width: Some(frame.width),
                    height: Some(frame.height),
                    size_bytes: 0,
                    words: None,
                },
            })
        }
    }

    fn render(code: &str, key: &str) -> Value {
        json!({"action": "render", "code": code, "className": "Intro", "width": 64, "height": 48,
               "fps": 15, "outputKey": key})
    }

    #[tokio::test]
    async fn every_request_gets_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(FileBlobs::new(dir.path()).unwrap());
        let renderer = SceneRenderer::new(Arc::new(Stub), blobs.clone());
        let answer = |request: Value| async { serde_json::to_value(renderer.answer(request).await).unwrap() };

        let check = |code: &str| json!({"action": "check", "code": code, "className": "Intro"});
        assert_eq!(answer(check("ok")).await, json!({"ok": true}));
        assert_eq!(
            answer(check("refuse")).await,
            json!({"ok": false, "fault": "code", "message": "line 1: `Intro` refused"})
        );
        assert_eq!(
            answer(check("crash")).await,
            json!({"ok": false, "fault": "machine", "message": "no python"})
        );

        let key = "scratch/renders/r1.mp4";
        assert_eq!(
            answer(render("ok", key)).await,
            json!({"ok": true, "key": key, "sizeBytes": 3, "duration": 1.0, "width": 64, "height": 48})
        );
        assert_eq!(std::fs::read(dir.path().join(key)).unwrap(), b"mp4");
        assert_eq!(answer(render("refuse", key)).await["fault"], "code");

        for outside in ["executions/e/job/output.mp4", "scratch/renders/", "scratch/other/a.mp4"] {
            let refused = answer(render("ok", outside)).await;
            assert_eq!(refused["fault"], "machine", "{outside}: {refused}");
            assert!(!dir.path().join(outside).is_file(), "{outside}");
        }
        let unknown = answer(json!({"action": "paint", "code": "ok"})).await;
        assert_eq!(unknown["fault"], "machine", "{unknown}");
        assert!(
            unknown["message"].as_str().unwrap().starts_with("not a scene request"),
            "{unknown}"
        );
    }
}
