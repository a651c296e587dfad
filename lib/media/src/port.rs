//! The engine's `Media` port: runs a `MediaTask` with ffmpeg in a scratch folder and hands
//! the result back as a stream that deletes the scratch folder when it is dropped.
//!
//! Inputs are `file://` URLs (the embedded stack's blobs) and, once enabled with
//! [`FfmpegMedia::with_http`], http(s) URLs (presigned S3 URLs on AWS, a client's URLs), which
//! are streamed into the task's scratch folder, up to a size cap, before ffmpeg reads them.
//! Other schemes are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use reelay_core::domain::TimedWord;
use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::{MediaKind, Quality};
use reelay_core::ports::{Artifact, CaptionWords, Media, MediaError, MediaInfo, MediaStep, MediaTask, ResolvedItem};
use reelay_outbound_http::guarded_client;

use crate::{
    burn_captions, fast_start, layer, merge, probe, reframe, replace_background, run_chain, words_in_file, ChainStart,
    ChainStep, FfmpegError, ItemKind, MergeItem, Replacement, WorkPool,
};

pub struct FfmpegMedia {
    scratch: PathBuf,
    /// Fetches http(s) inputs; `None`: `file://` inputs only.
    http: Option<Fetcher>,
    /// Bounds the ffmpeg runs (downloads of inputs take no slot).
    pool: WorkPool,
}

/// Redirects an input download follows.
const MAX_REDIRECTS: usize = 10;

impl FfmpegMedia {
    /// `scratch`: where work folders are made (one per task, removed after).
    pub fn new(scratch: impl Into<PathBuf>) -> Self {
        FfmpegMedia {
            scratch: scratch.into(),
            http: None,
            pool: WorkPool::per_core(),
        }
    }

    /// Runs its ffmpeg work in `pool`'s slots (shared with the node's other media work).
    pub fn with_pool(mut self, pool: WorkPool) -> Self {
        self.pool = pool;
        self
    }

    /// Also reads http(s) inputs of at most `max_bytes` each. Input URLs may come from clients,
    /// so a download reaches only the addresses `policy` permits, checked on the resolved
    /// address and on every redirect (and ignores proxies, which would resolve past the check).
    pub fn with_http(mut self, policy: AddressPolicy, max_bytes: u64) -> Result<Self, FfmpegError> {
        let policy = Arc::new(policy);
        let hops = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(e) = hops.check_url(attempt.url().as_str()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let client = guarded_client(&policy)
            .redirect(redirects)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("reelay-media/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FfmpegError::Invalid(format!("cannot build the input download client: {e}")))?;
        self.http = Some(Fetcher {
            client,
            policy,
            max_bytes,
        });
        Ok(self)
    }

    /// A fresh work folder in the scratch folder, removed when dropped.
    async fn task_dir(&self) -> Result<tempfile::TempDir, MediaError> {
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| MediaError::Failed(e.to_string()))?;
        tempfile::Builder::new()
            .prefix("task-")
            .tempdir_in(&self.scratch)
            .map_err(|e| MediaError::Failed(e.to_string()))
    }

    /// A local file for input `url`: its path, or (http) a download into `dir` named `name`.
    async fn input(&self, url: &str, dir: &Path, name: &str) -> Result<PathBuf, MediaError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(PathBuf::from(path));
        }
        let is_http = url.starts_with("http://") || url.starts_with("https://");
        match &self.http {
            Some(fetcher) if is_http => fetcher.download(url, dir, name).await,
            _ => Err(MediaError::Invalid(format!(
                "cannot read input {}: this media worker reads {} only",
                redacted(url),
                if self.http.is_some() {
                    "file and http(s) URLs"
                } else {
                    "blob-store files"
                }
            ))),
        }
    }
}

impl FfmpegMedia {
    /// A merge's items as local files.
    async fn merge_items(&self, items: &[ResolvedItem], dir: &Path) -> Result<Vec<MergeItem>, MediaError> {
        let mut merged = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            let kind = match item.kind {
                MediaKind::Image => ItemKind::Image,
                MediaKind::Audio => ItemKind::Audio,
                MediaKind::Video => ItemKind::Video,
                MediaKind::Transcript => return Err(MediaError::Invalid("a transcript cannot be merged".into())),
                MediaKind::Code => return Err(MediaError::Invalid("scene code cannot be merged".into())),
            };
            merged.push(MergeItem {
                path: self.input(&item.url, dir, &format!("input-{n}")).await?,
                kind,
                duration: item.duration,
                offset: item.offset,
                volume: item.volume,
            });
        }
        Ok(merged)
    }

    /// A caption task's words, read from their file if need be.
    async fn words(&self, words: CaptionWords, dir: &Path) -> Result<Vec<TimedWord>, MediaError> {
        Ok(match words {
            CaptionWords::Words(words) => words,
            CaptionWords::File(url) => words_in_file(&self.input(&url, dir, "transcript").await?).await?,
        })
    }

    /// A chain's start and steps on local files: a reframe or captions that starts it is
    /// the chain's first step, on its input file.
    async fn chain(
        &self,
        start: MediaTask,
        then: Vec<MediaStep>,
        dir: &Path,
    ) -> Result<(ChainStart, Vec<ChainStep>), MediaError> {
        let mut steps = Vec::with_capacity(then.len() + 1);
        let start = match start {
            MediaTask::Merge { items, transition } => ChainStart::Merge {
                items: self.merge_items(&items, dir).await?,
                transition,
            },
            MediaTask::Reframe {
                input,
                width,
                height,
                mode,
            } => {
                steps.push(MediaStep::Reframe { width, height, mode });
                ChainStart::File(self.input(&input, dir, "input").await?)
            }
            MediaTask::Captions { video, words, style } => {
                steps.push(MediaStep::Captions { words, style });
                ChainStart::File(self.input(&video, dir, "input").await?)
            }
            _ => {
                return Err(MediaError::Invalid(
                    "a chain starts with a merge, a reframe or captions".into(),
                ))
            }
        };
        steps.extend(then);
        let mut local = Vec::with_capacity(steps.len());
        for step in steps {
            local.push(match step {
                MediaStep::Reframe { width, height, mode } => ChainStep::Reframe { width, height, mode },
                MediaStep::Captions { words, style } => ChainStep::Captions {
                    words: self.words(words, dir).await?,
                    style,
                },
            });
        }
        Ok((start, local))
    }
}

struct Fetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    /// The largest input downloaded; a larger one fails its job.
    max_bytes: u64,
}

impl Fetcher {
    /// Streams `url` into `dir/name` (keeping the URL's extension, which some demuxers use).
    async fn download(&self, url: &str, dir: &Path, name: &str) -> Result<PathBuf, MediaError> {
        let shown = redacted(url);
        let invalid = |why: String| MediaError::Invalid(format!("cannot read input {shown}: {why}"));
        // A literal address skips the resolver: check the URL too.
        self.policy.check_url(url).map_err(|e| invalid(e.to_string()))?;
        // reqwest's errors name the URL, query (signature, session token) included: strip it.
        let failed = |e: reqwest::Error| match reelay_outbound_http::refusal(&e) {
            Some(why) => invalid(why),
            None => MediaError::Failed(format!("cannot read input {shown}: {}", e.without_url())),
        };
        let response = self.client.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            let why = format!("the server answered {status}");
            // A missing or forbidden input stays so; a server error may pass.
            return Err(if status.is_client_error() {
                invalid(why)
            } else {
                MediaError::Failed(format!("cannot read input {shown}: {why}"))
            });
        }
        // Named by host only: the path and query may carry a client's secrets.
        let too_large = || {
            let host = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            MediaError::Invalid(format!(
                "a media input from {host} is larger than the {} bytes allowed \
                 (REELAY_MEDIA_INPUT_MAX_BYTES)",
                self.max_bytes
            ))
        };
        if response.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(too_large());
        }
        let path = dir.join(format!("{name}{}", extension(url)));
        let write_failed = |e: std::io::Error| MediaError::Failed(format!("cannot store input {shown}: {e}"));
        let mut file = tokio::fs::File::create(&path).await.map_err(write_failed)?;
        let mut body = response.bytes_stream();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(failed)?;
            // A server may send no length, or a wrong one: count what arrives.
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(write_failed)?;
        }
        file.flush().await.map_err(write_failed)?;
        Ok(path)
    }
}

/// A URL as shown in errors: without its query, which may carry a signature and credentials.
fn redacted(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The URL path's extension (`.mp4`), if it is a short plain one.
fn extension(url: &str) -> String {
    let path = redacted(url);
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext)) if (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!(".{ext}")
        }
        _ => String::new(),
    }
}

impl From<FfmpegError> for MediaError {
    fn from(e: FfmpegError) -> Self {
        match e {
            FfmpegError::Invalid(m) => MediaError::Invalid(m),
            other => MediaError::Failed(other.to_string()),
        }
    }
}

#[async_trait]
impl Media for FfmpegMedia {
    async fn run(&self, task: MediaTask, quality: Quality) -> Result<Artifact, MediaError> {
        let dir = self.task_dir().await?;
        let (extension, content_type) = match &task {
            MediaTask::Background { still, key, fill, .. } => Replacement {
                still: *still,
                key: *key,
                fill: *fill,
            }
            .format(),
            _ => ("mp4", "video/mp4"),
        };
        let out = dir.path().join(format!("output.{extension}"));
        // Inputs are `file://` on the embedded node (no wait); an http download holds the
        // slot too, which only matters on AWS, where a function runs one task anyway.
        let slot = self.pool.slot().await;
        match task {
            MediaTask::Merge { items, transition } => {
                let merged = self.merge_items(&items, dir.path()).await?;
                let report = merge(&merged, transition, &out, quality).await?;
                tracing::debug!(stream_copied = report.stream_copied, "merged");
            }
            MediaTask::Reframe {
                input,
                width,
                height,
                mode,
            } => {
                let input = self.input(&input, dir.path(), "input").await?;
                reframe(&input, width, height, mode, &out, quality).await?;
            }
            MediaTask::Layer(task) => {
                let mut paths = Vec::new();
                for (n, url) in task.sources().into_iter().enumerate() {
                    paths.push(self.input(url, dir.path(), &format!("layer-{n}")).await?);
                }
                let mut paths = paths.into_iter();
                let local = task.try_map(|_| {
                    paths
                        .next()
                        .ok_or_else(|| MediaError::Failed("a layer lost its input".into()))
                })?;
                layer(&local, &out, quality).await?;
            }
            MediaTask::Captions { video, words, style } => {
                let video = self.input(&video, dir.path(), "input").await?;
                let words = self.words(words, dir.path()).await?;
                burn_captions(&video, &words, &style, &out, quality).await?;
            }
            MediaTask::Background {
                input,
                still,
                key,
                fill,
            } => {
                let input = self.input(&input, dir.path(), "input").await?;
                replace_background(&input, Replacement { still, key, fill }, &out).await?;
            }
            MediaTask::Chain { start, then } => {
                let (start, steps) = self.chain(*start, then, dir.path()).await?;
                run_chain(&start, &steps, &out, quality).await?;
            }
            MediaTask::FastStart { input } => {
                let input = self.input(&input, dir.path(), "input").await?;
                fast_start(&input, &out).await?;
            }
        }
        let info = info_of(&out).await?;
        drop(slot);
        let file = tokio::fs::File::open(&out)
            .await
            .map_err(|e| MediaError::Failed(e.to_string()))?;
        // The scratch folder lives exactly as long as the stream reading from it.
        let body = ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
            let _keep = &dir;
            chunk
        });
        Ok(Artifact {
            body: Box::pin(body),
            content_type: content_type.into(),
            extension: extension.into(),
            info,
        })
    }

    async fn probe(&self, url: &str) -> Result<MediaInfo, MediaError> {
        let dir = self.task_dir().await?;
        info_of(&self.input(url, dir.path(), "probed").await?).await
    }
}

async fn info_of(path: &Path) -> Result<MediaInfo, MediaError> {
    let p = probe(path).await?;
    Ok(MediaInfo {
        duration: (p.duration > 0.0).then_some(p.duration),
        width: p.width,
        height: p.height,
        size_bytes: p.size_bytes,
        words: p.words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get;
    use reelay_core::ports::ResolvedItem;

    use crate::render_video;

    /// Serves `clip` at `/clip.mp4` (any query), 404 at `/missing.mp4`, 500 at `/broken.mp4`,
    /// on a loopback port; returns the base URL.
    async fn serve(clip: Vec<u8>) -> String {
        let app = axum::Router::new()
            .route("/clip.mp4", get(move || async move { clip.clone() }))
            .route("/missing.mp4", get(|| async { StatusCode::NOT_FOUND }))
            .route("/broken.mp4", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    fn loopback() -> AddressPolicy {
        AddressPolicy::with_allowed("127.0.0.0/8").unwrap()
    }

    #[tokio::test]
    async fn http_inputs_are_downloaded_then_probed_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        render_video("served", 1.0, 160, 90, &clip).await.unwrap();
        let base = serve(std::fs::read(&clip).unwrap()).await;
        let scratch = dir.path().join("scratch");
        let media = FfmpegMedia::new(&scratch).with_http(loopback(), 1 << 30).unwrap();
        // As a presigned URL: the query is the server's business.
        let url = format!("{base}/clip.mp4?X-Amz-Signature=abc");

        let info = media.probe(&url).await.unwrap();
        assert!((info.duration.unwrap() - 1.0).abs() < 0.15, "{info:?}");
        assert_eq!((info.width, info.height), (Some(160), Some(90)));

        let item = |url: &str| ResolvedItem {
            url: url.to_string(),
            kind: MediaKind::Video,
            duration: None,
            offset: None,
            volume: None,
        };
        let file_url = format!("file://{}", clip.display());
        let artifact = media
            .run(
                MediaTask::Merge {
                    items: vec![item(&url), item(&file_url)],
                    transition: None,
                },
                Quality::default(),
            )
            .await
            .unwrap();
        assert!(
            (artifact.info.duration.unwrap() - 2.0).abs() < 0.15,
            "{:?}",
            artifact.info
        );
        drop(artifact);
        // Downloads live in the task's folder, gone with it.
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn other_inputs_are_refused_and_errors_hide_queries() {
        let base = serve(b"not a video".to_vec()).await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/clip.mp4?X-Amz-Security-Token=session-token");

        // Without `with_http`, as before: blob-store files only.
        let files_only = FfmpegMedia::new(dir.path());
        let err = files_only.probe(&url).await.unwrap_err();
        assert!(
            matches!(&err, MediaError::Invalid(m) if m.contains("blob-store files")),
            "{err:?}"
        );

        // Loopback is not public: refused unless allowed, whatever the answer would be.
        let strict = FfmpegMedia::new(dir.path())
            .with_http(AddressPolicy::strict(), 1 << 30)
            .unwrap();
        let err = strict.probe(&url).await.unwrap_err();
        assert!(matches!(&err, MediaError::Invalid(_)), "{err:?}");
        assert!(!err.to_string().contains("session-token"), "{err}");
        let named = url.replace("127.0.0.1", "localhost");
        let err = strict.probe(&named).await.unwrap_err();
        assert!(matches!(&err, MediaError::Invalid(_)), "{err:?}");

        let media = FfmpegMedia::new(dir.path()).with_http(loopback(), 1 << 30).unwrap();
        let err = media.probe("ftp://127.0.0.1/clip.mp4").await.unwrap_err();
        assert!(
            matches!(&err, MediaError::Invalid(m) if m.contains("file and http(s)")),
            "{err:?}"
        );
        let err = media.probe(&format!("{base}/missing.mp4?t=secret")).await.unwrap_err();
        assert!(
            matches!(&err, MediaError::Invalid(m) if m.contains("404") && !m.contains("secret")),
            "{err:?}"
        );
        let err = media.probe(&format!("{base}/broken.mp4")).await.unwrap_err();
        assert!(matches!(&err, MediaError::Failed(m) if m.contains("500")), "{err:?}");
        // Downloaded, but not media: ffprobe's verdict.
        assert!(media.probe(&url).await.is_err());
    }

    #[tokio::test]
    async fn inputs_over_the_cap_are_refused_naming_the_host_only() {
        let base = serve(vec![7u8; 4096]).await;
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let media = FfmpegMedia::new(&scratch).with_http(loopback(), 1000).unwrap();
        let err = media.probe(&format!("{base}/clip.mp4?token=secret")).await.unwrap_err();
        let MediaError::Invalid(message) = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains("from 127.0.0.1 ") && message.contains("1000 bytes"),
            "{message}"
        );
        assert!(message.contains("REELAY_MEDIA_INPUT_MAX_BYTES"), "{message}");
        assert!(
            !message.contains("secret") && !message.contains("clip.mp4"),
            "{message}"
        );
        // Nothing of the download is left behind.
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[test]
    fn extensions_come_from_the_path_only() {
        assert_eq!(
            extension("https://b.s3.amazonaws.com/x/output.mp4?X-Amz-Date=1.2"),
            ".mp4"
        );
        assert_eq!(extension("https://h/x/noext?a=b.c"), "");
        assert_eq!(extension("https://h/x.tar/y"), "");
        assert_eq!(redacted("https://h/p.mp4?sig=1#f"), "https://h/p.mp4");
    }
}
