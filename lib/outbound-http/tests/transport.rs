//! HttpTransport against real loopback receivers: delivery, the address guard, redirects,
//! Retry-After, timeouts and connection failures.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use reelay_core::outbound::AddressPolicy;
use reelay_core::webhooks::transport::{HttpAnswer, OutboundRequest, TransportError, WebhookTransport};
use reelay_outbound_http::HttpTransport;
use tokio::net::TcpListener;

const SIGNATURE: &str = "t=1700000000,v1=5f2b0c9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A loopback HTTP server that records every request and answers with `respond(path)`.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(respond: fn(&str) -> Response) -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let recorded = hits.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let path = uri.path().to_owned();
                let answer = respond(&path);
                recorded.lock().unwrap().push(Hit { path, headers, body });
                answer
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn loopback_allowed(timeout: Duration) -> HttpTransport {
    HttpTransport::new(AddressPolicy::with_allowed("127.0.0.0/8, ::1").unwrap(), timeout).unwrap()
}

fn strict() -> HttpTransport {
    HttpTransport::new(AddressPolicy::strict(), Duration::from_secs(2)).unwrap()
}

fn webhook(url: String) -> OutboundRequest {
    OutboundRequest {
        url,
        headers: vec![
            ("x-reelay-signature".into(), SIGNATURE.into()),
            ("x-reelay-event".into(), "execution.completed".into()),
        ],
        body: Bytes::from_static(br#"{"executionId":"ex-1","status":"completed"}"#),
    }
}

fn refused(result: Result<HttpAnswer, TransportError>) -> String {
    match result {
        Err(TransportError::Refused(msg)) => msg,
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn delivers_to_an_allow_listed_loopback_receiver() {
    let receiver = Receiver::start(|_| StatusCode::ACCEPTED.into_response()).await;
    let transport = loopback_allowed(Duration::from_secs(5));

    let answer = transport.post(webhook(receiver.url("/hooks/reelay"))).await.unwrap();

    assert_eq!(
        answer,
        HttpAnswer {
            status: 202,
            retry_after: None
        }
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.path, "/hooks/reelay");
    assert_eq!(&hit.body[..], br#"{"executionId":"ex-1","status":"completed"}"#);
    assert_eq!(hit.headers["x-reelay-signature"], SIGNATURE);
    assert_eq!(hit.headers["x-reelay-event"], "execution.completed");
    assert_eq!(hit.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        hit.headers[header::USER_AGENT],
        concat!("reelay-webhooks/", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn keeps_the_callers_content_type() {
    let receiver = Receiver::start(|_| StatusCode::OK.into_response()).await;
    let mut request = webhook(receiver.url("/"));
    request
        .headers
        .push(("Content-Type".into(), "application/cloudevents+json".into()));

    let answer = loopback_allowed(Duration::from_secs(5)).post(request).await.unwrap();

    assert_eq!(answer.status, 200);
    let hit = &receiver.hits()[0];
    let content_types: Vec<_> = hit.headers.get_all(header::CONTENT_TYPE).iter().collect();
    assert_eq!(content_types, ["application/cloudevents+json"]);
}

#[tokio::test]
async fn a_hostname_resolving_to_an_allow_listed_address_is_delivered() {
    let receiver = Receiver::start(|_| StatusCode::OK.into_response()).await;
    // Only the IPv4 loopback is allowed, so the resolver must drop ::1 if the system returns it.
    let transport = HttpTransport::new(
        AddressPolicy::with_allowed("127.0.0.0/8").unwrap(),
        Duration::from_secs(5),
    );
    let url = format!("http://localhost:{}/by-name", receiver.addr.port());

    let answer = transport.unwrap().post(webhook(url)).await.unwrap();

    assert_eq!(answer.status, 200);
    assert_eq!(receiver.hits()[0].path, "/by-name");
}

#[tokio::test]
async fn strict_policy_refuses_a_literal_loopback_ip_before_sending() {
    let receiver = Receiver::start(|_| StatusCode::OK.into_response()).await;

    let msg = refused(strict().post(webhook(receiver.url("/"))).await);

    assert_eq!(msg, "webhook host 127.0.0.1 is a loopback address");
    assert!(receiver.hits().is_empty());
}

#[tokio::test]
async fn strict_policy_refuses_localhost() {
    let receiver = Receiver::start(|_| StatusCode::OK.into_response()).await;
    let url = format!("http://localhost:{}/", receiver.addr.port());

    let msg = refused(strict().post(webhook(url)).await);

    assert_eq!(msg, "webhook host localhost is a loopback address");
    assert!(receiver.hits().is_empty());
}

#[tokio::test]
async fn redirects_are_answered_not_followed() {
    let receiver = Receiver::start(|path| match path {
        "/hook" => (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response(),
        _ => StatusCode::OK.into_response(),
    })
    .await;

    let answer = loopback_allowed(Duration::from_secs(5))
        .post(webhook(receiver.url("/hook")))
        .await
        .unwrap();

    assert_eq!(
        answer,
        HttpAnswer {
            status: 302,
            retry_after: None
        }
    );
    let paths: Vec<_> = receiver.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn retry_after_in_seconds() {
    let receiver =
        Receiver::start(|_| (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "7")]).into_response()).await;

    let answer = loopback_allowed(Duration::from_secs(5))
        .post(webhook(receiver.url("/")))
        .await
        .unwrap();

    assert_eq!(
        answer,
        HttpAnswer {
            status: 429,
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let receiver = Receiver::start(|path| {
        let at = match path {
            "/future" => SystemTime::now() + Duration::from_secs(120),
            _ => SystemTime::now() - Duration::from_secs(3600),
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, httpdate::fmt_http_date(at))],
        )
            .into_response()
    })
    .await;
    let transport = loopback_allowed(Duration::from_secs(5));

    let future = transport.post(webhook(receiver.url("/future"))).await.unwrap();
    let past = transport.post(webhook(receiver.url("/past"))).await.unwrap();

    assert_eq!(future.status, 503);
    // HTTP dates have one-second resolution, and a little time passes on the way back.
    let delay = future.retry_after.unwrap();
    assert!(
        delay > Duration::from_secs(110) && delay <= Duration::from_secs(120),
        "{delay:?}"
    );
    assert_eq!(
        past,
        HttpAnswer {
            status: 503,
            retry_after: Some(Duration::ZERO)
        }
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without ever writing a response.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();

    let result = loopback_allowed(Duration::from_millis(200))
        .post(webhook(format!("http://{addr}/")))
        .await;

    assert_eq!(result, Err(TransportError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_without_the_headers() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };

    let result = loopback_allowed(Duration::from_secs(5))
        .post(webhook(format!("http://{addr}/")))
        .await;

    match result {
        Err(TransportError::Connect(msg)) => {
            assert!(msg.contains(&addr.to_string()), "{msg}");
            assert!(!msg.contains(SIGNATURE), "{msg}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_and_mapped_private_addresses_are_refused() {
    // A short timeout: if the guard failed, the test must fail quickly rather than hang on a dead address.
    for transport in [strict(), loopback_allowed(Duration::from_millis(500))] {
        assert_eq!(
            refused(
                transport
                    .post(webhook("http://169.254.169.254/latest/meta-data/".into()))
                    .await
            ),
            "webhook host 169.254.169.254 is a link-local address"
        );
        assert_eq!(
            refused(transport.post(webhook("http://[::ffff:10.0.0.1]/".into())).await),
            "webhook host [::ffff:a00:1] is a private address (it embeds the IPv4 address 10.0.0.1)"
        );
        assert_eq!(
            refused(transport.post(webhook("http://0xa9fea9fe/".into())).await),
            "webhook host 169.254.169.254 is a link-local address"
        );
    }
}

#[tokio::test]
async fn urls_that_are_not_http_are_refused() {
    let msg = refused(strict().post(webhook("file:///etc/passwd".into())).await);
    assert_eq!(msg, "webhook URL scheme must be http or https, not file");
}
