//! What every HTTP provider client shares: one client, the classification of failures the
//! engine acts on (fatal, retryable, rate-limited), and streaming downloads (`data:` URIs
//! included), so that an output is never held whole in memory.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use reelay_core::ports::{ByteStream, ProviderError};
use reelay_core::time::parse_retry_after;

/// One HTTP client for a provider (connection pool, timeouts).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

/// How long one provider call may take (downloads stream, so only their start counts).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpClient {
    pub fn new() -> Result<HttpClient, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(CALL_TIMEOUT)
            .user_agent(concat!("reelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Fatal(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpClient { client })
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request`; any answer but 2xx becomes the matching `ProviderError`. `what` names
    /// the call in messages ("replicate create").
    pub async fn send(&self, request: RequestBuilder, what: &str) -> Result<Response, ProviderError> {
        let response = request.send().await.map_err(|e| transport_error(what, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        Err(classify(what, status, retry_after, &body))
    }

    /// `send`, then the body as JSON.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder, what: &str) -> Result<T, ProviderError> {
        let response = self.send(request, what).await?;
        let bytes = response.bytes().await.map_err(|e| transport_error(what, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Retryable {
            message: format!("{what}: unreadable answer: {e}"),
            retry_after: None,
        })
    }

    /// Streams an output: an http(s) URL (with `headers`, e.g. a key some providers need to
    /// serve their files) or a `data:` URI.
    pub async fn download(&self, url: &str, headers: HeaderMap) -> Result<ByteStream, ProviderError> {
        if let Some(data) = url.strip_prefix("data:") {
            let bytes = decode_data_uri(data)?;
            return Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })));
        }
        let response = self
            .send(self.client.get(url).headers(headers), "output download")
            .await?;
        Ok(Box::pin(
            response
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        ))
    }
}

/// Connection failures and timeouts pass; nothing else can happen before an answer.
fn transport_error(what: &str, e: &reqwest::Error) -> ProviderError {
    let kind = if e.is_timeout() { "timed out" } else { "failed" };
    // reqwest's message names the URL, never headers (keys travel in headers).
    ProviderError::Retryable {
        message: format!("{what} {kind}: {e}"),
        retry_after: None,
    }
}

pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A non-2xx answer as the engine should treat it: 429 waits (without using an attempt),
/// 408/5xx are retried, any other 4xx is the provider refusing for good, with its message.
pub fn classify(what: &str, status: StatusCode, retry_after: Option<Duration>, body: &str) -> ProviderError {
    let message = format!("{what}: {} {}", status.as_u16(), error_message(body));
    match status.as_u16() {
        429 => ProviderError::RateLimited { retry_after },
        408 | 500..=599 => ProviderError::Retryable { message, retry_after },
        _ => ProviderError::Fatal(message),
    }
}

/// The human part of a provider's error body: RFC 7807 `detail`/`title` (Replicate),
/// `{"error": {"message"}}` (Google), `detail` as a string or a list of `{msg}` (fal), or
/// the text itself, shortened.
pub fn error_message(body: &str) -> String {
    let text = || {
        let t = body.trim();
        if t.chars().count() > 300 {
            format!("{}…", t.chars().take(300).collect::<String>())
        } else {
            t.to_string()
        }
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return text();
    };
    let detail = &json["detail"];
    if let Some(s) = detail.as_str() {
        return s.to_string();
    }
    if let Some(items) = detail.as_array() {
        let msgs: Vec<String> = items
            .iter()
            .map(|i| {
                let at = i["loc"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|p| p.to_string().trim_matches('"').to_string())
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                let msg = i["msg"].as_str().unwrap_or("invalid");
                if at.is_empty() {
                    msg.to_string()
                } else {
                    format!("{at}: {msg}")
                }
            })
            .collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    for pointer in ["/error/message", "/title", "/error", "/message"] {
        if let Some(s) = json.pointer(pointer).and_then(|v| v.as_str()) {
            return s.to_string();
        }
    }
    text()
}

/// `<mediatype>[;base64],<data>` (what follows `data:`).
fn decode_data_uri(data: &str) -> Result<Bytes, ProviderError> {
    let bad = |why: &str| ProviderError::Fatal(format!("the provider's output is not a usable data: URI ({why})"));
    let (meta, payload) = data.split_once(',').ok_or_else(|| bad("no comma"))?;
    if meta.ends_with(";base64") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|_| bad("bad base64"))?;
        Ok(Bytes::from(bytes))
    } else {
        Ok(Bytes::from(percent_decode(payload)))
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The content type a `data:` URI declares.
pub fn data_uri_type(url: &str) -> Option<String> {
    let meta = url.strip_prefix("data:")?.split(',').next()?;
    let media = meta.split(';').next().unwrap_or_default();
    (!media.is_empty()).then(|| media.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_for_the_engine() {
        let c = |code: u16, body: &str| classify("x", StatusCode::from_u16(code).unwrap(), None, body);
        assert!(matches!(c(429, ""), ProviderError::RateLimited { .. }));
        assert!(matches!(c(503, ""), ProviderError::Retryable { .. }));
        assert!(matches!(c(408, ""), ProviderError::Retryable { .. }));
        match c(
            422,
            r#"{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"missing"}]}"#,
        ) {
            ProviderError::Fatal(m) => assert_eq!(m, "x: 422 body.prompt: field required"),
            other => panic!("{other:?}"),
        }
        match c(
            401,
            r#"{"title":"Unauthenticated","detail":"Invalid token.","status":401}"#,
        ) {
            ProviderError::Fatal(m) => assert_eq!(m, "x: 401 Invalid token."),
            other => panic!("{other:?}"),
        }
        match c(
            400,
            r#"{"error":{"code":400,"message":"bad aspect ratio","status":"INVALID_ARGUMENT"}}"#,
        ) {
            ProviderError::Fatal(m) => assert_eq!(m, "x: 400 bad aspect ratio"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn data_uris_stream_their_bytes() {
        let client = HttpClient::new().unwrap();
        for (uri, expected) in [
            ("data:text/plain;base64,aGVsbG8=", "hello"),
            ("data:application/json,%7B%22a%22%3A1%7D", "{\"a\":1}"),
        ] {
            let mut stream = client.download(uri, HeaderMap::new()).await.unwrap();
            let mut got = Vec::new();
            while let Some(chunk) = stream.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(String::from_utf8(got).unwrap(), expected);
        }
        assert_eq!(
            data_uri_type("data:audio/wav;base64,AAAA").as_deref(),
            Some("audio/wav")
        );
        assert!(client.download("data:nothing", HeaderMap::new()).await.is_err());
    }
}
