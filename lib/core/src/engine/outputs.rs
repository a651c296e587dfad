//! Where a job's output lives and what it records: its blob key, the `JobOutput` a job
//! completes with, an execution's outputs and result, how children read their parents'
//! outputs (ffmpeg and `local` as files, hosted providers at a URL they can fetch), and the
//! signed URLs a node that serves its own blobs answers (`/api/files/…`). Used by the stages
//! that make outputs (`provider_output.rs`, `media_jobs.rs`), those that read them
//! (`provider_call.rs`, `media_jobs.rs`), the execution's end (`ending.rs`) and the API.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures::StreamExt;

use super::settle::WorkError;
use super::{Engine, EngineError};
use crate::domain::{Execution, Job, JobOutput};
use crate::plan::{reference, AspectRatio, MediaKind, MediaRef};
use crate::ports::{BlobError, BlobRead, ByteRange, MediaInfo, Provider, StoredBlob};
use crate::signed_urls::UrlRefused;

/// Parents' outputs as a reader of them finds them: by job id, a URL and the kind of media.
pub(super) type InputUrls = HashMap<String, (String, MediaKind)>;

/// Why a request for an output this node serves is refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputRefused {
    #[error(transparent)]
    Url(#[from] UrlRefused),
    #[error("no output at this URL")]
    NotFound,
    #[error("the range asked for lies outside the output's {size} bytes")]
    Range { size: u64 },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Signs the outputs' URLs anew for a reader: a signed URL made when a job ended lapses
    /// with it, or earlier with the temporary credentials that signed it.
    pub async fn fresh_urls(&self, execution: &mut Execution, jobs: &mut [Job]) -> Result<(), EngineError> {
        let outputs = execution
            .result
            .iter_mut()
            .chain(execution.outputs.values_mut())
            .chain(jobs.iter_mut().filter_map(|j| j.output.as_mut()));
        for output in outputs.filter(|o| o.deferred.is_none()) {
            output.url = self.client_url(&output.key).await?;
        }
        Ok(())
    }

    /// The URL an output is reported at: where this node serves it, else where it lies (a
    /// `file://` path under `reelay run`, which serves nothing).
    pub(super) async fn client_url(&self, key: &str) -> Result<String, BlobError> {
        match self.blobs.public_url(key).await? {
            Some(public) => Ok(public.url),
            None => self.blobs.url(key).await,
        }
    }

    /// An output read through a signed URL this node made (`/api/files/{key}?expires=…&signature=…`),
    /// or the `range` of it asked for.
    pub async fn open_output(
        &self,
        key: &str,
        expires: i64,
        signature: &str,
        range: Option<ByteRange>,
    ) -> Result<BlobRead, OutputRefused> {
        self.url_signer.check(key, expires, signature, self.now())?;
        let mut read = self.blobs.read(key, range).await.map_err(|e| match e {
            BlobError::NotFound(_) => OutputRefused::NotFound,
            BlobError::RangeNotSatisfiable { size } => OutputRefused::Range { size },
            other => OutputRefused::Engine(other.into()),
        })?;
        if read.content_type.is_none() {
            read.content_type = Some(
                content_type_by_extension(key)
                    .unwrap_or("application/octet-stream")
                    .into(),
            );
        }
        Ok(read)
    }

    /// The outputs of a job's parents, by job id.
    pub(super) async fn parent_outputs(&self, job: &Job) -> Result<HashMap<String, JobOutput>, WorkError> {
        let parents = self.store.jobs(&job.execution_id, &job.spec.depends_on).await?;
        Ok(parents
            .into_iter()
            .filter_map(|p| p.output.clone().map(|o| (p.id().to_string(), o)))
            .collect())
    }

    /// The parents' outputs (`parent_outputs`) where this node's tools (ffmpeg) read them.
    /// Signed now, so an output of a base execution made long ago reads as well as a fresh one.
    pub(super) async fn node_inputs(&self, outputs: &HashMap<String, JobOutput>) -> Result<InputUrls, WorkError> {
        let mut urls = InputUrls::new();
        // A deferred output has no file: its reader runs its edit as part of its own.
        for (id, output) in outputs.iter().filter(|(_, o)| o.deferred.is_none()) {
            urls.insert(id.clone(), (self.blobs.url(&output.key).await?, output.kind));
        }
        Ok(urls)
    }

    /// The parents' outputs that `wanted` names, as `(input, job id)`, where `provider` can
    /// read them: as files for a provider in this process; for a hosted one, at a public URL,
    /// or inline as a `data:` URI when no public URL serves them and they are small enough.
    pub(super) async fn provider_inputs(
        &self,
        job: &Job,
        provider: &dyn Provider,
        wanted: &[(String, String)],
    ) -> Result<InputUrls, WorkError> {
        let parents = self.parent_outputs(job).await?;
        let mut urls = InputUrls::new();
        for (input, id) in wanted {
            let Some(output) = parents.get(id) else {
                continue; // `resolve` reports it.
            };
            if urls.contains_key(id) {
                continue;
            }
            let url = if provider.reads_files() {
                self.blobs.url(&output.key).await?
            } else {
                self.fetchable_url(job, provider.name(), input, id, output).await?
            };
            urls.insert(id.clone(), (url, output.kind));
        }
        Ok(urls)
    }

    async fn fetchable_url(
        &self,
        job: &Job,
        provider: &str,
        input: &str,
        parent: &str,
        output: &JobOutput,
    ) -> Result<String, WorkError> {
        if let Some(public) = self.blobs.public_url(&output.key).await? {
            if public.anywhere {
                return Ok(public.url);
            }
        }
        let cap = self.settings.inline_input_max_bytes;
        if output.size_bytes > cap {
            return Err(WorkError::Fatal {
                code: "input_unreachable",
                message: format!(
                    "job `{}`: input `{input}` is the output of job `{parent}` ({} bytes), which `{provider}` \
                     cannot fetch: this server has no public URL, and the output is over the {cap} bytes \
                     it may be sent inline (data: URI). Start reelay with --public-url (REELAY_PUBLIC_URL) \
                     set to an address the provider can reach",
                    job.id(),
                    output.size_bytes
                ),
            });
        }
        let mut body = self.blobs.get(&output.key).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(output.size_bytes).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| EngineError::Blob(BlobError::Io(e.to_string())))?;
            bytes.extend_from_slice(&chunk);
            // The recorded size said it fits; a blob that grew since must not fill memory.
            if bytes.len() as u64 > cap {
                return Err(
                    EngineError::Blob(BlobError::Io(format!("output {} is larger than recorded", output.key))).into(),
                );
            }
        }
        Ok(format!("data:{};base64,{}", output.content_type, B64.encode(bytes)))
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
        // The words ride in the job record: beyond this many (a quarter hour of speech) they
        // stay in the file alone, so a record stays well inside DynamoDB's 400 KB.
        transcript: info.words.filter(|words| words.len() <= MAX_RESULT_WORDS),
        background: None,
        deferred: None,
    }
}

const MAX_RESULT_WORDS: usize = 2_000;

/// Where a job's output is kept: one key per job, so a repeated upload overwrites itself.
pub(super) fn output_key(job: &Job, extension: &str) -> String {
    // A repair round's output is a new file: the refused round's code stays readable as feedback.
    let round = match job.round {
        0 => String::new(),
        n => format!(".r{n}"),
    };
    format!(
        "executions/{}/{}/output{round}.{extension}",
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
pub(super) fn resolve(source: &MediaRef, parents: &InputUrls) -> Result<(String, MediaKind), WorkError> {
    match source {
        MediaRef::Url(url) => Ok((url.clone(), MediaKind::Video)),
        MediaRef::Job(id) => parents.get(id).cloned().ok_or_else(|| WorkError::Fatal {
            code: "missing_input",
            message: format!("job `{id}` has no output to use"),
        }),
    }
}

/// Calls `visit` with the job id and the string itself for every `$job1` /
/// `_videoJobDependency:job1` string inside raw model params.
pub(super) fn visit_references(value: &mut serde_json::Value, visit: &mut impl FnMut(&str, &mut String)) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(id) = reference(s).map(str::to_string) {
                visit(&id, s);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| visit_references(v, visit)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| visit_references(v, visit)),
        _ => {}
    }
}

/// Replaces the references inside raw model params with the URL of that job's output.
pub(super) fn substitute_references(value: &mut serde_json::Value, parents: &InputUrls) {
    visit_references(value, &mut |id, s| {
        if let Some((url, _)) = parents.get(id) {
            *s = url.clone();
        }
    });
}

/// The content type of a provider's output that came without one: by its URL's extension,
/// else the usual one for its kind.
pub(super) fn guess_content_type(url: &str, kind: MediaKind) -> &'static str {
    if let Some(ct) = content_type_by_extension(url) {
        return ct;
    }
    match kind {
        MediaKind::Video => "video/mp4",
        MediaKind::Image => "image/png",
        MediaKind::Audio => "audio/mp4",
        MediaKind::Transcript => "application/json",
        MediaKind::Code => "text/x-python",
    }
}

/// The content type a URL's or key's extension names, if it is one of ours.
fn content_type_by_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let by_ext = [
        (".mp4", "video/mp4"),
        (".mov", "video/quicktime"),
        (".webm", "video/webm"),
        (".py", "text/x-python"),
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".m4a", "audio/mp4"),
        (".mp3", "audio/mpeg"),
        (".wav", "audio/wav"),
        (".json", "application/json"),
    ];
    by_ext.iter().find(|(ext, _)| path.ends_with(ext)).map(|(_, ct)| *ct)
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
        "text/x-python" => "py",
        _ if url.ends_with(".mp4") => "mp4",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_raw_params_become_urls() {
        let mut parents = InputUrls::new();
        parents.insert("job1".to_string(), ("file:///out.mp4".into(), MediaKind::Video));
        let mut v = serde_json::json!({"a": "$job1", "b": ["_videoJobDependency:job1", "plain"], "c": "$other"});
        substitute_references(&mut v, &parents);
        assert_eq!(
            v,
            serde_json::json!({"a": "file:///out.mp4", "b": ["file:///out.mp4", "plain"], "c": "$other"})
        );
    }

    #[test]
    fn served_outputs_get_their_type_by_extension() {
        assert_eq!(
            content_type_by_extension("executions/e/j/output.mp4"),
            Some("video/mp4")
        );
        assert_eq!(
            content_type_by_extension("https://h/x.PNG?sig=a.mp4"),
            Some("image/png")
        );
        assert_eq!(content_type_by_extension("executions/e/j/output.bin"), None);
    }
}
