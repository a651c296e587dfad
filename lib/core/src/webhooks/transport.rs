//! The port client webhooks leave through: one POST, answered or not. The adapter enforces
//! the address policy on the address it actually connects to.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// One POST of a webhook body.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the receiver answered (any status: redirects are not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// `Retry-After`, in seconds or as an HTTP date, turned into a delay.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The address policy refused the URL or every address it resolved to: never retried.
    #[error("refused: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
    /// DNS failure, connection refused or reset, TLS failure: retried.
    #[error("connection failed: {0}")]
    Connect(String),
}

#[async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(&self, request: OutboundRequest) -> Result<HttpAnswer, TransportError>;
}
