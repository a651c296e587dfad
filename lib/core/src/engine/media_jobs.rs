//! Stage 3, a media job: a merge or reframe claimed by dispatch (`dispatch.rs`) is done here
//! with ffmpeg (through the `Media` port): inputs resolved to parents' outputs, the artifact
//! streamed into the blob store, probed, recorded. Next: completion (`completion.rs`), or
//! `settle.rs` when it did not finish.

use super::fusion::{deferred_output, then};
use super::outputs::{job_output, output_key, resolve, InputUrls};
use super::settle::WorkError;
use super::Engine;
use crate::domain::{Job, JobOutput};
use crate::plan::{MediaRef, Params, TranscriptSource};
use crate::ports::{Artifact, CaptionWords, MediaError, MediaStep, MediaTask, ResolvedItem};
use crate::worker::Handled;

impl Engine {
    /// `None` when the completing write lost a race: the caller re-reads the job.
    pub(super) async fn run_media_job(&self, job: &Job) -> Result<Option<Handled>, WorkError> {
        if let Some(reader) = self.fused_reader(job).await? {
            return Ok(self.complete(job, deferred_output(job, reader)).await?);
        }
        let task = self.media_task(job).await?;
        let fused = matches!(task, MediaTask::Chain { .. });
        let artifact = self.media.run(task, job.spec.quality).await.map_err(|e| {
            // The failure may lie in a parent's edit: say that it ran here.
            let e = if fused {
                let said = |m: String| format!("{m} (in one encode with the edits fused into this job)");
                match e {
                    MediaError::Invalid(m) => MediaError::Invalid(said(m)),
                    MediaError::Failed(m) => MediaError::Failed(said(m)),
                }
            } else {
                e
            };
            WorkError::media(e)
        })?;
        let output = self.store_artifact(job, artifact).await?;
        // Stale (`None`): re-read and decide again, as the port asks. Acking here instead
        // (as this did) stranded the job when the write that beat ours left it unfinished
        // (or a store reported a race nobody won): `running`, with no message and no sweep
        // to bring one. Re-read, it is finished (repeats complete what follows), held by
        // another runner's lease (retried after it), or ours to run again.
        Ok(self.complete(job, output).await?)
    }

    /// What ffmpeg does for a job: its own edit, or, when the parent it reads was fused into
    /// it (`fusion.rs`), that parent's edit and its own as one chain.
    pub(super) async fn media_task(&self, job: &Job) -> Result<MediaTask, WorkError> {
        let outputs = self.parent_outputs(job).await?;
        let parents = self.node_inputs(&outputs).await?;
        Ok(match &job.spec.params {
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
                let mode = reframe.mode;
                match self.deferred_input(&reframe.input, &outputs).await? {
                    Some(before) => then(before, MediaStep::Reframe { width, height, mode }),
                    None => MediaTask::Reframe {
                        input: resolve(&reframe.input, &parents)?.0,
                        width,
                        height,
                        mode,
                    },
                }
            }
            Params::Subtitles(subtitles) => {
                let words = self.caption_words(job, &subtitles.transcript, &parents).await?;
                let style = Box::new(subtitles.style.clone());
                match self.deferred_input(&subtitles.video, &outputs).await? {
                    Some(before) => then(before, MediaStep::Captions { words, style }),
                    None => MediaTask::Captions {
                        video: resolve(&subtitles.video, &parents)?.0,
                        words,
                        style,
                    },
                }
            }
            Params::Layer(layer) => {
                MediaTask::Layer(layer.try_map(|source| resolve(source, &parents).map(|(url, _)| url))?)
            }
            Params::Provider(_) | Params::Base(_) | Params::Scene(_) => unreachable_shape(job)?,
        })
    }

    /// A caption job's words: inline, the word timings a speech parent recorded, or else the
    /// file to read them from (a transcript, or speech too long for its record to hold them).
    async fn caption_words(
        &self,
        job: &Job,
        source: &TranscriptSource,
        parents: &InputUrls,
    ) -> Result<CaptionWords, WorkError> {
        match source {
            TranscriptSource::Words(words) => Ok(CaptionWords::Words(words.clone())),
            TranscriptSource::Media(MediaRef::Job(id)) => {
                let recorded = self.parent_outputs(job).await?.remove(id).and_then(|o| o.transcript);
                match recorded {
                    Some(words) => Ok(CaptionWords::Words(words)),
                    None => Ok(CaptionWords::File(resolve(&MediaRef::Job(id.clone()), parents)?.0)),
                }
            }
            TranscriptSource::Media(url) => Ok(CaptionWords::File(resolve(url, parents)?.0)),
        }
    }

    /// Streams an artifact into the blob store under the job's key.
    pub(super) async fn store_artifact(&self, job: &Job, artifact: Artifact) -> Result<JobOutput, WorkError> {
        let key = output_key(job, &artifact.extension);
        let stored = self.blobs.put(&key, &artifact.content_type, artifact.body).await?;
        let url = self.client_url(&key).await?;
        let info = artifact.info;
        Ok(job_output(job, key, url, artifact.content_type, &stored, info))
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
