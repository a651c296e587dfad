//! The blobs port on an S3 bucket.
//!
//! * `put` reads the stream into parts of [`PART_SIZE`] (8 MiB; the last may be smaller). A
//!   body shorter than one part is one `PutObject`; a longer one is a multipart upload, which
//!   is aborted on any failure (the stream's or S3's), so a failed put leaves no object and no
//!   upload behind, and an existing object under the key is untouched until the put completes.
//!   The content type is stored with the object.
//! * `get` streams the object; a missing key is [`BlobError::NotFound`]. `read` streams it, or
//!   one range of it, with its size, type and ETag.
//! * `url` is a presigned GET URL valid for [`S3Settings::url_expiry`], or `{cdn_base}/{key}`
//!   when a CDN base is configured; `public_url` is the same URL, which reads from anywhere.
//! * Keys are relative paths of plain segments: empty keys, a leading `/`, and empty, `.` or
//!   `..` segments are refused (as by the file blobs), so keys stay meaningful as paths.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use reelay_core::ports::{BlobError, BlobRead, Blobs, ByteRange, ByteStream, PublicUrl, StoredBlob};

use crate::sdk_message;

/// The size of every multipart part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where blobs live and how they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// How long a presigned URL stays valid (at most 7 days on S3).
    pub url_expiry: Duration,
    /// A CDN in front of the bucket: `url` is then `{cdn_base}/{key}`, unsigned.
    pub cdn_base: Option<String>,
    /// Another S3 endpoint (moto, MinIO); path-style addressing is used with it.
    pub endpoint_url: Option<String>,
}

/// The [`Blobs`] port on one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: Client,
    settings: S3Settings,
}

fn io<E: std::error::Error>(err: E) -> BlobError {
    BlobError::Io(sdk_message(&err))
}

/// Refuses keys that are not plain relative paths.
fn check_key(key: &str) -> Result<(), BlobError> {
    let safe = !key.is_empty() && key.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if safe {
        Ok(())
    } else {
        Err(BlobError::Io(format!("invalid blob key {key:?}")))
    }
}

impl S3Blobs {
    pub fn new(config: &aws_config::SdkConfig, settings: S3Settings) -> S3Blobs {
        let mut builder = aws_sdk_s3::config::Builder::from(config);
        if let Some(endpoint) = &settings.endpoint_url {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        S3Blobs::from_client(Client::from_conf(builder.build()), settings)
    }

    pub fn from_client(client: Client, settings: S3Settings) -> S3Blobs {
        S3Blobs { client, settings }
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// Reads from the stream until `buf` holds a whole part or the stream ends (`false`).
    async fn fill(body: &mut ByteStream, buf: &mut BytesMut) -> Result<bool, BlobError> {
        while buf.len() < PART_SIZE {
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(BlobError::Io(format!("reading the body: {e}"))),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn put_object(&self, key: &str, content_type: &str, body: Bytes) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .content_type(content_type)
            .body(S3Body::from(body))
            .send()
            .await
            .map_err(io)?;
        Ok(())
    }

    /// Uploads `buf` (at least one whole part) and the rest of the stream as parts.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: &mut ByteStream,
        mut buf: BytesMut,
    ) -> Result<(Vec<CompletedPart>, u64), BlobError> {
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut more = true;
        loop {
            // Every part but the last is exactly PART_SIZE; overflow waits for the next one.
            while buf.len() >= PART_SIZE {
                let part = buf.split_to(PART_SIZE).freeze();
                size += part.len() as u64;
                parts.push(self.upload_part(key, upload_id, parts.len() as i32 + 1, part).await?);
            }
            if !more {
                if !buf.is_empty() {
                    let part = std::mem::take(&mut buf).freeze();
                    size += part.len() as u64;
                    parts.push(self.upload_part(key, upload_id, parts.len() as i32 + 1, part).await?);
                }
                return Ok((parts, size));
            }
            more = Self::fill(body, &mut buf).await?;
        }
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<CompletedPart, BlobError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.settings.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(S3Body::from(body))
            .send()
            .await
            .map_err(io)?;
        Ok(CompletedPart::builder()
            .set_e_tag(out.e_tag().map(str::to_string))
            .part_number(number)
            .build())
    }

    async fn multipart(
        &self,
        key: &str,
        content_type: &str,
        body: &mut ByteStream,
        first: BytesMut,
    ) -> Result<u64, BlobError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(io)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| BlobError::Io("S3 returned no upload id".into()))?
            .to_string();
        let result = async {
            let (parts, size) = self.upload_parts(key, &upload_id, body, first).await?;
            self.client
                .complete_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(io)?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::error!(key, upload_id, error = %sdk_message(&e), "aborting a failed multipart upload failed");
            }
        }
        result
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, key: &str, content_type: &str, mut body: ByteStream) -> Result<StoredBlob, BlobError> {
        check_key(key)?;
        let mut buf = BytesMut::new();
        let size = if Self::fill(&mut body, &mut buf).await? {
            self.multipart(key, content_type, &mut body, buf).await?
        } else {
            let size = buf.len() as u64;
            self.put_object(key, content_type, buf.freeze()).await?;
            size
        };
        Ok(StoredBlob {
            key: key.to_string(),
            size,
            content_type: content_type.to_string(),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        Ok(body_stream(self.object(key, None).await?.body))
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        // A range is resolved against the object's size first, so that one outside it answers
        // as the port says (S3's own 416 does not tell the size).
        let span = match range {
            None => None,
            Some(range) => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.settings.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                        Some(404) => BlobError::NotFound(key.to_string()),
                        _ => io(e),
                    })?;
                let size = head.content_length.unwrap_or(0).max(0) as u64;
                Some(range.within(size).ok_or(BlobError::RangeNotSatisfiable { size })?)
            }
        };
        let out = self
            .object(key, span.map(|(first, last)| format!("bytes={first}-{last}")))
            .await?;
        let size = match (span, out.content_range.as_deref()) {
            // `bytes first-last/size`
            (Some(_), Some(content_range)) => content_range
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| BlobError::Io(format!("unreadable Content-Range {content_range:?}")))?,
            _ => out.content_length.unwrap_or(0).max(0) as u64,
        };
        Ok(BlobRead {
            size,
            range: span,
            content_type: out.content_type.clone(),
            etag: out.e_tag.clone().unwrap_or_default(),
            body: body_stream(out.body),
        })
    }

    async fn url(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        if let Some(cdn) = &self.settings.cdn_base {
            return Ok(format!("{}/{key}", cdn.trim_end_matches('/')));
        }
        let presigning = PresigningConfig::expires_in(self.settings.url_expiry).map_err(io)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(io)?;
        Ok(request.uri().to_string())
    }

    /// Presigned URLs (and a CDN's) read from anywhere already.
    async fn public_url(&self, key: &str) -> Result<Option<PublicUrl>, BlobError> {
        Ok(Some(PublicUrl {
            url: self.url(key).await?,
            anywhere: true,
        }))
    }
}

impl S3Blobs {
    /// Deletes the object under `key` (not part of the port: only handed-over renders are
    /// deleted, `crate::scenes`). A missing key is no error, as on S3.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(io)?;
        Ok(())
    }

    /// The object under `key`, or the bytes of it `range` names; a missing key is `NotFound`.
    async fn object(&self, key: &str, range: Option<String>) -> Result<GetObjectOutput, BlobError> {
        check_key(key)?;
        self.client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| {
                let missing = e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                match e.into_service_error() {
                    GetObjectError::NoSuchKey(_) => BlobError::NotFound(key.to_string()),
                    _ if missing => BlobError::NotFound(key.to_string()),
                    other => io(other),
                }
            })
    }
}

fn body_stream(body: S3Body) -> ByteStream {
    Box::pin(futures::stream::unfold(body, |mut body| async move {
        body.next()
            .await
            .map(|chunk| (chunk.map_err(std::io::Error::other), body))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        for good in ["a", "a/b.mp4", "executions/ex-1/jobs/a/output.mp4", "a.b/..c"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "..", "../a", "a/../b", "a/./b", "a//b", "a/"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
