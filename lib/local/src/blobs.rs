//! The `Blobs` port on the filesystem: one file per key under a root folder, written through
//! a temporary name and renamed, so a reader never sees half a file. This node's tools read
//! them as `file://` paths; under `reelay serve` everyone else reads them over HTTP, at signed,
//! expiring URLs the API answers (`/api/files/…`, `lib/api/src/files.rs`).

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use reelay_core::ports::{BlobError, BlobRead, Blobs, ByteRange, ByteStream, PublicUrl, StoredBlob};
use reelay_core::signed_urls::UrlSigner;

pub struct FileBlobs {
    root: PathBuf,
    served: Option<Served>,
}

/// How a server hands out its blobs: at signed URLs under its base, valid for `expiry`.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// `--public-url`, or else the address the server listens on.
    pub base: String,
    /// Whether `base` is the public URL, which hosts anywhere can reach.
    pub anywhere: bool,
    pub signer: UrlSigner,
    pub expiry: Duration,
}

/// The size of the chunks a file is streamed in.
const CHUNK: usize = 256 * 1024;

impl FileBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        Ok(FileBlobs { root, served: None })
    }

    /// Blobs a server hands out over HTTP.
    pub(crate) fn served(self, served: Served) -> Self {
        FileBlobs {
            served: Some(served),
            ..self
        }
    }

    /// The file behind a key; keys cannot climb out of the root.
    pub fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        let relative = Path::new(key);
        let safe = !key.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(BlobError::Io(format!("invalid blob key {key:?}")));
        }
        Ok(self.root.join(relative))
    }
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Io(e.to_string())
}

#[async_trait]
impl Blobs for FileBlobs {
    async fn put(&self, key: &str, content_type: &str, mut body: ByteStream) -> Result<StoredBlob, BlobError> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let temp = path.with_extension(format!("part-{}", rand::random::<u32>()));
        let written = async {
            let mut file = tokio::fs::File::create(&temp).await?;
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            Ok::<u64, std::io::Error>(size)
        }
        .await;
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(io(e));
            }
        };
        tokio::fs::rename(&temp, &path).await.map_err(io)?;
        Ok(StoredBlob {
            key: key.to_string(),
            size,
            content_type: content_type.to_string(),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        Ok(self.read(key, None).await?.body)
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        let missing = || BlobError::NotFound(key.to_string());
        let mut file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => f,
            // `a/b/c` where `a/b` is a blob: no blob either.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(missing())
            }
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().await.map_err(io)?;
        // A folder (the prefix of other keys) opens fine but is no blob.
        if !meta.is_file() {
            return Err(missing());
        }
        let size = meta.len();
        // A put renames a new file into place, so size and time change with the content.
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let etag = format!("\"{size:x}-{modified:x}\"");
        let span = range
            .map(|r| r.within(size).ok_or(BlobError::RangeNotSatisfiable { size }))
            .transpose()?;
        let body: ByteStream = match span {
            Some((first, last)) => {
                file.seek(SeekFrom::Start(first)).await.map_err(io)?;
                Box::pin(ReaderStream::with_capacity(file.take(last - first + 1), CHUNK))
            }
            None => Box::pin(ReaderStream::with_capacity(file, CHUNK)),
        };
        Ok(BlobRead {
            body,
            size,
            range: span,
            content_type: None,
            etag,
        })
    }

    async fn url(&self, key: &str) -> Result<String, BlobError> {
        Ok(format!("file://{}", self.path(key)?.display()))
    }

    async fn public_url(&self, key: &str) -> Result<Option<PublicUrl>, BlobError> {
        let Some(served) = &self.served else {
            return Ok(None);
        };
        self.path(key)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = (now + served.expiry).as_secs() as i64;
        Ok(Some(PublicUrl {
            url: served.signer.url(&served.base, key, expires),
            anywhere: served.anywhere,
        }))
    }
}
