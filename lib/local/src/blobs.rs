//! The `Blobs` port on the filesystem: one file per key under a root folder, written through
//! a temporary name and renamed, so a reader never sees half a file.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use reelay_core::ports::{BlobError, Blobs, ByteStream, StoredBlob};

pub struct FileBlobs {
    root: PathBuf,
}

impl FileBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        Ok(FileBlobs { root })
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
        let missing = || BlobError::NotFound(key.to_string());
        let file = match tokio::fs::File::open(self.path(key)?).await {
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
        // A folder (the prefix of other keys) opens fine but is no blob.
        if !file.metadata().await.map_err(io)?.is_file() {
            return Err(missing());
        }
        Ok(Box::pin(ReaderStream::with_capacity(file, 256 * 1024)))
    }

    async fn url(&self, key: &str) -> Result<String, BlobError> {
        Ok(format!("file://{}", self.path(key)?.display()))
    }
}
