//! Outbound HTTP(S) with reqwest: client webhooks ([`HttpTransport`]) and the guarded client
//! that provider downloads and media inputs use ([`guarded_client`]). The address policy is
//! enforced on the address actually connected to: a DNS resolver that drops non-public addresses (so a name cannot
//! be re-pointed at the internal network between submission and delivery), plus a check of
//! the URL itself for literal IPs, which reqwest connects to without resolving.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reelay_core::outbound::{AddressPolicy, PolicyError};
use reelay_core::time::parse_retry_after;
use reelay_core::webhooks::transport::{HttpAnswer, OutboundRequest, TransportError, WebhookTransport};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

const USER_AGENT: &str = concat!("reelay-webhooks/", env!("CARGO_PKG_VERSION"));

/// Posts webhooks with reqwest: no redirects, no proxies, only addresses the policy permits.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct TransportBuildError(#[from] reqwest::Error);

impl HttpTransport {
    /// `timeout` bounds a whole delivery: resolving, connecting, sending, and reading the answer.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, TransportBuildError> {
        let client = guarded_client(&policy)
            // A redirect could point anywhere, and the receiver's answer is all the caller needs.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self {
            client,
            policy: Arc::new(policy),
        })
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, request: OutboundRequest) -> Result<HttpAnswer, TransportError> {
        self.policy.check_url(&request.url).map_err(|e| match e {
            PolicyError::Forbidden(msg) => TransportError::Refused(msg),
            // Submission validates URLs, so these are unusual; still never worth retrying.
            PolicyError::BadUrl(msg) | PolicyError::BadAllowEntry(msg) => TransportError::Refused(msg),
        })?;
        let headers = header_map(&request.headers)?;
        let response = self
            .client
            .post(&request.url)
            .headers(headers)
            .body(request.body)
            .send()
            .await
            .map_err(classify_error)?;
        Ok(HttpAnswer {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        })
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, TransportError> {
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        // Name the header only: values carry signatures.
        let invalid = || TransportError::Connect(format!("invalid webhook header {name:?}"));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.append(name, value);
    }
    if !map.contains_key(CONTENT_TYPE) {
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(map)
}

fn classify_error(err: reqwest::Error) -> TransportError {
    if let Some(why) = refusal(&err) {
        return TransportError::Refused(why);
    }
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    // reqwest's messages name the URL and the cause, never the request headers.
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::Connect(msg)
}

/// The guard's refusal inside a reqwest error (a host resolving only to forbidden
/// addresses), as its message: such a failure is final, not a network hiccup.
pub fn refusal(err: &reqwest::Error) -> Option<String> {
    find_source::<NonPublicHost>(err).map(|r| r.to_string())
}

fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A client builder that reaches only the addresses `policy` permits: names resolve through
/// [`GuardedResolver`], and no proxy is used (it would resolve past the guard). A URL with a
/// literal address is not resolved: callers check URLs with `policy.check_url` as well.
pub fn guarded_client(policy: &AddressPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .no_proxy()
}

/// Resolves with the system resolver and keeps only the addresses the policy permits. Any
/// client that fetches a URL a client gave (webhooks here, input media in the providers)
/// resolves through it.
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: AddressPolicy) -> GuardedResolver {
        GuardedResolver {
            policy: Arc::new(policy),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (permitted, refused): (Vec<_>, Vec<_>) = resolved.into_iter().partition(|a| policy.permits(a.ip()));
            if permitted.is_empty() && !refused.is_empty() {
                return Err(Box::new(NonPublicHost { host, addrs: refused }) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, found again in reqwest's error chain to tell it from a network failure.
#[derive(Debug)]
struct NonPublicHost {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl fmt::Display for NonPublicHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.ip().to_string()).collect();
        write!(
            f,
            "host {} resolves only to non-public addresses ({})",
            self.host,
            addrs.join(", ")
        )
    }
}

impl StdError for NonPublicHost {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_drops_non_public_addresses() {
        let strict = GuardedResolver {
            policy: Arc::new(AddressPolicy::strict()),
        };
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        let refusal = err.downcast_ref::<NonPublicHost>().expect("a NonPublicHost error");
        assert!(refusal.addrs.iter().all(|a| a.ip().is_loopback()), "{refusal}");
        let msg = refusal.to_string();
        assert!(
            msg.starts_with("host localhost resolves only to non-public addresses ("),
            "{msg}"
        );
        assert!(refusal.addrs.iter().all(|a| msg.contains(&a.ip().to_string())), "{msg}");

        let v4_loopback = GuardedResolver {
            policy: Arc::new(AddressPolicy::with_allowed("127.0.0.0/8").unwrap()),
        };
        let addrs: Vec<_> = match v4_loopback.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => addrs.collect(),
            Err(err) => panic!("{err}"),
        };
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_ipv4() && a.ip().is_loopback()),
            "{addrs:?}"
        );
    }
}
