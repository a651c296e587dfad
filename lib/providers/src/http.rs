//! What every HTTP provider client shares: one client, the classification of failures the
//! engine acts on (fatal, retryable, rate-limited), and streaming downloads (`data:` URIs
//! included), so that an output is never held whole in memory.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use reelay_core::outbound::AddressPolicy;
use reelay_core::ports::{ByteStream, ProviderError};
use reelay_core::time::parse_retry_after;
use reelay_outbound_http::guarded_client;

/// One HTTP client for a provider (connection pool, timeouts).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    /// Follows no redirect itself: downloads follow them hop by hop (see `fetch`).
    no_redirects: reqwest::Client,
    /// For URLs a client gave: every hop must be an address this permits.
    guard: Option<AddressPolicy>,
}

/// Redirects a download follows.
const MAX_REDIRECTS: usize = 10;

/// How long one provider call may take (downloads stream, so only their start counts).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpClient {
    /// A client for the provider's own API.
    pub fn new() -> Result<HttpClient, ProviderError> {
        Self::build(None)
    }

    /// A client for URLs a client gave (input media fetched here): it reaches only the
    /// addresses `policy` permits, checked on the resolved address and on every redirect, and
    /// ignores proxies (which would resolve past the guard).
    pub fn guarded(policy: AddressPolicy) -> Result<HttpClient, ProviderError> {
        Self::build(Some(policy))
    }

    fn build(guard: Option<AddressPolicy>) -> Result<HttpClient, ProviderError> {
        let build = |redirects: reqwest::redirect::Policy| {
            guard
                .as_ref()
                .map_or_else(reqwest::Client::builder, guarded_client)
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(CALL_TIMEOUT)
                .user_agent(concat!("reelay/", env!("CARGO_PKG_VERSION")))
                .redirect(redirects)
                .build()
                .map_err(|e| ProviderError::Fatal(format!("cannot build an HTTP client: {e}")))
        };
        Ok(HttpClient {
            client: build(reqwest::redirect::Policy::default())?,
            no_redirects: build(reqwest::redirect::Policy::none())?,
            guard,
        })
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request`; any answer but 2xx becomes the matching `ProviderError`. `what` names
    /// the call in messages ("replicate create").
    pub async fn send(&self, request: RequestBuilder, what: &str) -> Result<Response, ProviderError> {
        let response = request.send().await.map_err(|e| transport_error(what, &e))?;
        accepted(response, what).await
    }

    /// Sends `request` and hands back any answer, 2xx or not, for calls whose other answers
    /// mean something (fal's cancel says `ALREADY_COMPLETED` with a 400); only a failed
    /// exchange is an error. `Answer::error` classifies the rest as `send` would.
    pub async fn answer(&self, request: RequestBuilder, what: &str) -> Result<Answer, ProviderError> {
        let response = request.send().await.map_err(|e| transport_error(what, &e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| transport_error(what, &e))?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
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
        self.fetch(url, headers, "output download").await
    }

    /// `download` of any media (`what` names it in messages: "input image download").
    /// `headers` go to `url`'s origin only: redirects (Google's file URIs answer one, to
    /// storage on another host) are followed without them elsewhere, so a key never leaves.
    pub async fn fetch(&self, url: &str, headers: HeaderMap, what: &str) -> Result<ByteStream, ProviderError> {
        if let Some(data) = url.strip_prefix("data:") {
            let bytes = decode_data_uri(data)?;
            return Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })));
        }
        let mut next =
            reqwest::Url::parse(url).map_err(|e| ProviderError::Fatal(format!("{what}: bad URL {url}: {e}")))?;
        let origin = next.origin();
        let mut hops = 0;
        let response = loop {
            // A literal address skips the resolver: check every hop's URL too.
            if let Some(policy) = &self.guard {
                policy
                    .check_url(next.as_str())
                    .map_err(|e| ProviderError::Fatal(format!("{what}: refused: {e}")))?;
            }
            let mut request = self.no_redirects.get(next.clone());
            if next.origin() == origin {
                request = request.headers(headers.clone());
            }
            let response = request.send().await.map_err(|e| transport_error(what, &e))?;
            let location = response
                .status()
                .is_redirection()
                .then(|| response.headers().get(LOCATION)?.to_str().ok())
                .flatten()
                .and_then(|l| response.url().join(l).ok());
            match location {
                Some(target) if hops < MAX_REDIRECTS => {
                    hops += 1;
                    next = target;
                }
                _ => break accepted(response, what).await?,
            }
        };
        Ok(Box::pin(
            response
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        ))
    }
}

/// A provider's answer, read whole (`HttpClient::answer`).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// This answer as the error the engine acts on (see `classify`).
    pub fn error(&self, what: &str) -> ProviderError {
        classify(
            what,
            self.status,
            self.retry_after,
            &String::from_utf8_lossy(&self.body),
        )
    }
}

/// `response` if it is a 2xx, else the error `classify` makes of it.
async fn accepted(response: Response, what: &str) -> Result<Response, ProviderError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(classify(what, status, retry_after, &body))
}

/// A call that got no answer. Never connected: safe to try again. Connected but unanswered
/// (a timeout, a reset): the provider may have acted on it.
fn transport_error(what: &str, e: &reqwest::Error) -> ProviderError {
    // reqwest's message names the URL, never headers (keys travel in headers).
    if let Some(why) = reelay_outbound_http::refusal(e) {
        return ProviderError::Fatal(format!("{what}: refused: {why}"));
    }
    if e.is_connect() {
        return ProviderError::Retryable {
            message: format!("{what} failed: {e}"),
            retry_after: None,
        };
    }
    let kind = if e.is_timeout() { "timed out" } else { "failed" };
    ProviderError::Uncertain(format!("{what} {kind}: {e}"))
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
    // `error_description`: OAuth token endpoints (`{"error":"invalid_grant","error_description":..}`).
    for pointer in ["/error/message", "/error_description", "/title", "/error", "/message"] {
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
