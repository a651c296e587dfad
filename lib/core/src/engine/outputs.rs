//! Where a job's output lives and what it records: its blob key, the `JobOutput` a job
//! completes with, an execution's outputs and result, and how children read their parents'
//! outputs. Used by the stages that make outputs (`provider_output.rs`, `media_jobs.rs`),
//! those that read them (`provider_call.rs`, `media_jobs.rs`), and the execution's end
//! (`ending.rs`).

use std::collections::{BTreeMap, HashMap};

use super::settle::WorkError;
use super::{Engine, EngineError};
use crate::domain::{Execution, Job, JobOutput};
use crate::plan::{reference, AspectRatio, MediaKind, MediaRef};
use crate::ports::{MediaInfo, StoredBlob};

impl Engine {
    /// Signs the outputs' URLs anew for a reader: a presigned URL made when a job ended lapses
    /// with it, or earlier with the temporary credentials that signed it.
    pub async fn fresh_urls(&self, execution: &mut Execution, jobs: &mut [Job]) -> Result<(), EngineError> {
        let outputs = execution
            .result
            .iter_mut()
            .chain(execution.outputs.values_mut())
            .chain(jobs.iter_mut().filter_map(|j| j.output.as_mut()));
        for output in outputs {
            output.url = self.blobs.url(&output.key).await?;
        }
        Ok(())
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

/// The outputs an execution reports: those of its leaf jobs, by job id.
pub(super) fn execution_outputs(jobs: &[Job]) -> BTreeMap<String, JobOutput> {
    jobs.iter()
        .filter(|j| j.children.is_empty())
        .filter_map(|j| j.output.clone().map(|o| (j.id().to_string(), o)))
        .collect()
}

/// An execution's result: its final job's output.
pub(super) fn execution_result(jobs: &[Job], final_job: &str) -> Option<JobOutput> {
    jobs.iter().find(|j| j.id() == final_job).and_then(|j| j.output.clone())
}

/// A job input as a URL, with the kind of media it is (a parent's output, or a URL given).
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

/// Replaces `$job1` / `_videoJobDependency:job1` strings inside raw model params with the
/// URL of that job's output.
pub(super) fn substitute_references(value: &mut serde_json::Value, parents: &HashMap<String, JobOutput>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(output) = reference(s).and_then(|id| parents.get(id)) {
                *s = output.url.clone();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| substitute_references(v, parents)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| substitute_references(v, parents)),
        _ => {}
    }
}

/// The content type of a provider's output that came without one: by its URL's extension,
/// else the usual one for its kind.
pub(super) fn guess_content_type(url: &str, kind: MediaKind) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let by_ext = [
        (".mp4", "video/mp4"),
        (".mov", "video/quicktime"),
        (".webm", "video/webm"),
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".m4a", "audio/mp4"),
        (".mp3", "audio/mpeg"),
        (".wav", "audio/wav"),
        (".json", "application/json"),
    ];
    if let Some((_, ct)) = by_ext.iter().find(|(ext, _)| path.ends_with(ext)) {
        return ct;
    }
    match kind {
        MediaKind::Video => "video/mp4",
        MediaKind::Image => "image/png",
        MediaKind::Audio => "audio/mp4",
        MediaKind::Transcript => "application/json",
    }
}

/// The extension of an output's blob key.
pub(super) fn extension_for(content_type: &str, url: &str) -> &'static str {
    match content_type {
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/webm" => "webm",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "audio/mp4" => "m4a",
        "audio/mpeg" => "mp3",
        "audio/wav" => "wav",
        "application/json" => "json",
        _ if url.ends_with(".mp4") => "mp4",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_raw_params_become_urls() {
        let mut parents = std::collections::HashMap::new();
        parents.insert(
            "job1".to_string(),
            JobOutput {
                url: "file:///out.mp4".into(),
                key: "k".into(),
                kind: crate::plan::MediaKind::Video,
                content_type: "video/mp4".into(),
                size_bytes: 1,
                duration: None,
                width: None,
                height: None,
                aspect_ratio: None,
            },
        );
        let mut v = serde_json::json!({"a": "$job1", "b": ["_videoJobDependency:job1", "plain"], "c": "$other"});
        substitute_references(&mut v, &parents);
        assert_eq!(
            v,
            serde_json::json!({"a": "file:///out.mp4", "b": ["file:///out.mp4", "plain"], "c": "$other"})
        );
    }
}
