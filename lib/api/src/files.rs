//! `GET /api/files/{key}?expires=…&signature=…` (and `HEAD`): the outputs a node serves itself
//! (`reelay serve`'s files), at the signed, expiring URLs it hands out
//! (`reelay_core::signed_urls`). No API key: the signature is the authority, as with an S3
//! presigned URL, so a browser or a provider can fetch it. One byte range is answered with 206
//! (players seek); `ETag` with `If-None-Match` answers 304.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use reelay_core::ports::ByteRange;
use reelay_core::signed_urls::UrlRefused;
use reelay_core::OutputRefused;

use crate::routes::{PathId, Queried};
use crate::{ApiError, ApiState};

/// The path as openapi.json documents it; the key spans segments, hence [`ROUTE`].
pub(crate) const PATH: &str = "/api/files/{key}";
pub(crate) const ROUTE: &str = "/api/files/{*key}";

#[derive(Deserialize)]
pub(crate) struct Signed {
    expires: Option<String>,
    signature: Option<String>,
}

pub(crate) async fn file(
    State(state): State<ApiState>,
    PathId(key): PathId,
    Queried(signed): Queried<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A URL missing its signature is refused as a bad one: only a fresh URL helps.
    let expires = signed.expires.and_then(|e| e.parse::<i64>().ok());
    let (Some(expires), Some(signature)) = (expires, signed.signature) else {
        return Err(OutputRefused::Url(UrlRefused::BadSignature).into());
    };
    let range = header_str(&headers, header::RANGE).and_then(parse_range);
    let read = state.engine.open_output(&key, expires, &signature, range).await?;
    let not_modified = header_str(&headers, header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').map(str::trim).any(|t| t == read.etag || t == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let length = read.range.map_or(read.size, |(first, last)| last - first + 1);
        let content_type = read
            .content_type
            .as_deref()
            .and_then(|ct| HeaderValue::from_str(ct).ok());
        let content_range = read
            .range
            .and_then(|(first, last)| HeaderValue::from_str(&format!("bytes {first}-{last}/{}", read.size)).ok());
        let mut response = Response::new(Body::from_stream(read.body));
        let out = response.headers_mut();
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if let Some(content_type) = content_type {
            out.insert(header::CONTENT_TYPE, content_type);
        }
        if let Some(content_range) = content_range {
            out.insert(header::CONTENT_RANGE, content_range);
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        response
    };
    let out = response.headers_mut();
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&read.etag) {
        out.insert(header::ETAG, etag);
    }
    Ok(response)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// One range of `bytes=first-last`, `bytes=first-` or `bytes=-suffix`. Anything else (several
/// ranges, other units) is ignored and the whole file served, as HTTP allows.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => number(last).map(ByteRange::Last),
        (false, true) => number(first).map(ByteRange::From),
        (false, false) => Some(ByteRange::Span(number(first)?, number(last)?)),
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_range_is_read_and_others_ignored() {
        assert_eq!(parse_range("bytes=0-99"), Some(ByteRange::Span(0, 99)));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(parse_range("bytes=-500"), Some(ByteRange::Last(500)));
        for ignored in ["bytes=0-1,5-9", "items=0-1", "bytes=-", "bytes=a-b", "bytes=1"] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }
}
