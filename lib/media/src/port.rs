//! The engine's `Media` port: runs a `MediaTask` with ffmpeg in a scratch folder and hands
//! the result back as a stream that deletes the scratch folder when it is dropped.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use reelay_core::plan::{MediaKind, ReframeMode as PlanReframeMode};
use reelay_core::ports::{Artifact, Media, MediaError as PortError, MediaInfo, MediaTask};

use crate::{merge, probe, reframe, ItemKind, MediaError, MergeItem, ReframeMode, Transition, TransitionKind};

pub struct FfmpegMedia {
    scratch: PathBuf,
}

impl FfmpegMedia {
    /// `scratch`: where work folders are made (one per task, removed after).
    pub fn new(scratch: impl Into<PathBuf>) -> Self {
        FfmpegMedia {
            scratch: scratch.into(),
        }
    }
}

impl From<MediaError> for PortError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Invalid(m) => PortError::Invalid(m),
            other => PortError::Failed(other.to_string()),
        }
    }
}

/// A local path for a URL ffmpeg should read. Blob URLs of the embedded stack are `file://`.
fn local_path(url: &str) -> Result<PathBuf, PortError> {
    match url.strip_prefix("file://") {
        Some(path) => Ok(PathBuf::from(path)),
        None => Err(PortError::Invalid(format!(
            "cannot read input {url}: this media worker reads blob-store files only"
        ))),
    }
}

#[async_trait]
impl Media for FfmpegMedia {
    async fn run(&self, task: MediaTask) -> Result<Artifact, PortError> {
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| PortError::Failed(e.to_string()))?;
        let dir = tempfile::Builder::new()
            .prefix("task-")
            .tempdir_in(&self.scratch)
            .map_err(|e| PortError::Failed(e.to_string()))?;
        let out = dir.path().join("output.mp4");
        match task {
            MediaTask::Merge { items, transition } => {
                let items = items
                    .iter()
                    .map(|item| {
                        Ok(MergeItem {
                            path: local_path(&item.url)?,
                            kind: match item.kind {
                                MediaKind::Image => ItemKind::Image,
                                MediaKind::Audio => ItemKind::Audio,
                                MediaKind::Video => ItemKind::Video,
                                MediaKind::Transcript => {
                                    return Err(PortError::Invalid("a transcript cannot be merged".into()))
                                }
                            },
                            duration: item.duration,
                            offset: item.offset,
                            volume: item.volume,
                        })
                    })
                    .collect::<Result<Vec<_>, PortError>>()?;
                let transition = match transition {
                    None => None,
                    Some(t) => Some(Transition {
                        kind: TransitionKind::parse(&t.kind)
                            .ok_or_else(|| PortError::Invalid(format!("unknown transition {}", t.kind)))?,
                        duration: t.duration,
                    }),
                };
                let report = merge(&items, transition, &out).await?;
                tracing::debug!(stream_copied = report.stream_copied, "merged");
            }
            MediaTask::Reframe {
                input,
                width,
                height,
                mode,
            } => {
                let mode = match mode {
                    PlanReframeMode::Crop => ReframeMode::Crop,
                    PlanReframeMode::Pad => ReframeMode::Pad,
                };
                reframe(&local_path(&input)?, width, height, mode, &out).await?;
            }
        }
        let info = info_of(&out).await?;
        let file = tokio::fs::File::open(&out)
            .await
            .map_err(|e| PortError::Failed(e.to_string()))?;
        // The scratch folder lives exactly as long as the stream reading from it.
        let body = ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
            let _keep = &dir;
            chunk
        });
        Ok(Artifact {
            body: Box::pin(body),
            content_type: "video/mp4".into(),
            extension: "mp4".into(),
            info,
        })
    }

    async fn probe(&self, url: &str) -> Result<MediaInfo, PortError> {
        info_of(&local_path(url)?).await
    }
}

async fn info_of(path: &Path) -> Result<MediaInfo, PortError> {
    let p = probe(path).await?;
    Ok(MediaInfo {
        duration: (p.duration > 0.0).then_some(p.duration),
        width: p.width,
        height: p.height,
        size_bytes: p.size_bytes,
    })
}
