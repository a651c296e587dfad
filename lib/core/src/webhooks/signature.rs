//! Webhook signatures: the design documents' `X-Webhook-Signature` (hex HMAC-SHA256 of the
//! raw body) and Standard Webhooks' `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `parts` in a row (also derives keys and signs output URLs).
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body, keyed by the secret's bytes.
pub fn body_signature(secret: &str, body: &[u8]) -> String {
    hmac(secret.as_bytes(), &[body])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Standard Webhooks key: a `whsec_` secret is base64 after its prefix (what every
/// Standard Webhooks library expects); any other secret is used as its bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| B64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The Standard Webhooks MAC of `{id}.{timestamp}.{body}`, not yet finalised. The timestamp
/// is signed as it was sent, not as we would print it.
fn standard_mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(&standard_key(secret)).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    mac
}

/// `webhook-signature` for one attempt: `v1,<base64>`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = standard_mac(secret, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", B64.encode(digest))
}

/// Why a received Standard Webhooks message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("webhook-timestamp is not a unix time")]
    BadTimestamp,
    /// Too far from now: an old message replayed, or a clock far off.
    #[error("webhook-timestamp is {off} s from now, more than the {tolerance} s allowed")]
    Stale { off: i64, tolerance: i64 },
    /// No `v1,` entry of the header is the message's signature under this secret.
    #[error("no webhook-signature entry matches")]
    Mismatch,
}

/// Checks a received `webhook-timestamp` against the receiver's clock (before any secret is
/// fetched or MAC computed).
pub fn check_timestamp(timestamp: &str, now_secs: i64, tolerance_secs: i64) -> Result<(), SignatureError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    let off = now_secs.saturating_sub(ts).saturating_abs();
    if off > tolerance_secs {
        return Err(SignatureError::Stale {
            off,
            tolerance: tolerance_secs,
        });
    }
    Ok(())
}

/// Verifies a received Standard Webhooks message: its timestamp within `tolerance_secs` of
/// `now_secs`, and one of the space-separated `v1,<base64>` entries of `signatures` (several
/// while a secret rotates) equal, compared in constant time, to its MAC under `secret`.
/// Entries of other schemes (`v1a,` …) are skipped.
pub fn verify_standard(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    check_timestamp(timestamp, now_secs, tolerance_secs)?;
    let mac = standard_mac(secret, id, timestamp, body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The headers of one delivery attempt. Without a secret, no signature headers are sent.
pub fn headers(secret: Option<&str>, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        headers.push(("x-webhook-signature".into(), body_signature(secret, body)));
        headers.push((
            "webhook-signature".into(),
            standard_signature(secret, id, timestamp, body),
        ));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_vector() {
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = standard_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            body,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn standard_webhooks_verification() {
        let (secret, id, ts) = (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
        );
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let good = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let verify =
            |sigs: &str, body: &[u8], now: i64| verify_standard(secret, id, "1649367553", sigs, body, now, 300);
        assert_eq!(verify(good, body, ts), Ok(()));
        // One entry of several (a rotation), other schemes skipped, in any order.
        assert_eq!(verify(&format!("v1a,xyz v1,AAAA {good}"), body, ts + 300), Ok(()));
        assert_eq!(
            verify("v1,AAAA v1,not-base64!", body, ts),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(good, b"{}", ts), Err(SignatureError::Mismatch), "another body");
        assert_eq!(
            verify_standard(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                id,
                "1649367553",
                good,
                body,
                ts,
                300
            ),
            Err(SignatureError::Mismatch),
            "another secret"
        );
        assert_eq!(
            verify(good, body, ts + 301),
            Err(SignatureError::Stale {
                off: 301,
                tolerance: 300
            })
        );
        assert!(
            matches!(verify(good, body, ts - 301), Err(SignatureError::Stale { .. })),
            "from the future"
        );
        assert_eq!(
            verify_standard(secret, id, "soon", good, body, ts, 300),
            Err(SignatureError::BadTimestamp)
        );
        // What we sign, we verify.
        let ours = standard_signature(secret, "msg_1", 1_700_000_000, b"{}");
        assert_eq!(
            verify_standard(secret, "msg_1", "1700000000", &ours, b"{}", 1_700_000_000, 300),
            Ok(())
        );
    }

    #[test]
    fn body_signature_is_hex_hmac_of_the_raw_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            body_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn no_secret_no_signature_headers() {
        let names = |h: Vec<(String, String)>| h.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        let unsigned = names(headers(None, "msg_1", 1, b"{}"));
        assert!(!unsigned.iter().any(|k| k.contains("signature")), "{unsigned:?}");
        let signed = names(headers(Some("s"), "msg_1", 1, b"{}"));
        assert!(signed.contains(&"x-webhook-signature".to_string()));
        assert!(signed.contains(&"webhook-signature".to_string()));
    }
}
