//! Jobs done here with ffmpeg (through the `Media` port): inputs resolved to parents'
//! outputs, the artifact streamed into the blob store, probed, recorded.

use std::collections::HashMap;

use super::lifecycle::WorkError;
use super::{Engine, Handled};
use crate::domain::{Job, JobOutput};
use crate::plan::{AspectRatio, MediaKind, MediaRef, Params};
use crate::ports::{Artifact, MediaError, MediaInfo, MediaTask, ResolvedItem, StoredBlob};

impl Engine {
    pub(super) async fn run_media_job(&self, job: &Job) -> Result<Handled, WorkError> {
        let parents = self.parent_outputs(job).await?;
        let task = match &job.spec.params {
            Params::Merge(merge) => MediaTask::Merge {
                items: merge
                    .items
                    .iter()
                    .map(|item| {
                        let (url, kind) = resolve(&item.source, &parents)?;
                        Ok(ResolvedItem {
                            url,
                            kind: item.kind.unwrap_or(kind),
                            duration: item.duration,
                            offset: item.offset,
                            volume: item.volume,
                        })
                    })
                    .collect::<Result<_, WorkError>>()?,
                transition: merge.transition.clone(),
            },
            Params::Reframe(reframe) => {
                let (width, height) = reframe.aspect_ratio.frame(reframe.short_side);
                MediaTask::Reframe {
                    input: resolve(&reframe.input, &parents)?.0,
                    width,
                    height,
                    mode: reframe.mode,
                }
            }
            Params::Provider(_) | Params::Base(_) => unreachable_shape(job)?,
        };
        let artifact = self.media.run(task).await.map_err(|e| match e {
            MediaError::Invalid(message) => WorkError::Fatal {
                code: "media_invalid",
                message,
            },
            MediaError::Failed(message) => WorkError::Passing {
                message,
                retry_after: None,
            },
        })?;
        let output = self.store_artifact(job, artifact).await?;
        match self.complete(job, output).await? {
            Some(handled) => Ok(handled),
            // Lost the job while working (our lease lapsed and another runner took it).
            None => Ok(Handled::Done),
        }
    }

    /// Streams an artifact into the blob store under the job's key.
    async fn store_artifact(&self, job: &Job, artifact: Artifact) -> Result<JobOutput, WorkError> {
        let key = output_key(job, &artifact.extension);
        let stored = self.blobs.put(&key, &artifact.content_type, artifact.body).await?;
        let url = self.blobs.url(&key).await?;
        let info = artifact.info;
        Ok(job_output(job, key, url, artifact.content_type, &stored, info))
    }

    /// The outputs of a job's parents, by job id.
    pub(super) async fn parent_outputs(&self, job: &Job) -> Result<HashMap<String, JobOutput>, WorkError> {
        let parents = self.store.jobs(&job.execution_id, &job.spec.depends_on).await?;
        Ok(parents
            .into_iter()
            .filter_map(|p| p.output.clone().map(|o| (p.id().to_string(), o)))
            .collect())
    }
}

/// A stored output as the job records it: where it is and what probing found.
pub(super) fn job_output(
    job: &Job,
    key: String,
    url: String,
    content_type: String,
    stored: &StoredBlob,
    info: MediaInfo,
) -> JobOutput {
    JobOutput {
        url,
        key,
        kind: job.spec.operation.output_kind(),
        content_type,
        size_bytes: stored.size,
        duration: info.duration,
        width: info.width,
        height: info.height,
        aspect_ratio: info
            .width
            .zip(info.height)
            .and_then(|(w, h)| AspectRatio::of_frame(w, h))
            .map(|r| r.to_string()),
    }
}

/// Where a job's output is kept: one key per job, so a repeated upload overwrites itself.
pub(super) fn output_key(job: &Job, extension: &str) -> String {
    format!(
        "executions/{}/{}/output.{extension}",
        job.execution_id,
        sanitize(job.id())
    )
}

/// Job ids are free strings; keys get a safe spelling that stays one-to-one.
fn sanitize(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02x}"));
        }
    }
    out
}

pub(super) fn resolve(
    source: &MediaRef,
    parents: &HashMap<String, JobOutput>,
) -> Result<(String, MediaKind), WorkError> {
    match source {
        MediaRef::Url(url) => Ok((url.clone(), MediaKind::Video)),
        MediaRef::Job(id) => parents
            .get(id)
            .map(|o| (o.url.clone(), o.kind))
            .ok_or_else(|| WorkError::Fatal {
                code: "missing_input",
                message: format!("job `{id}` has no output to use"),
            }),
    }
}

fn unreachable_shape<T>(job: &Job) -> Result<T, WorkError> {
    Err(WorkError::Fatal {
        code: "internal",
        message: format!(
            "job `{}`: `{}` is not an ffmpeg job but was sent to ffmpeg",
            job.id(),
            job.spec.operation
        ),
    })
}
