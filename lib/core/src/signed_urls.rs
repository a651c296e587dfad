//! Signed, expiring URLs for blobs the API serves itself (the embedded stack's files), in the
//! manner of S3 presigned URLs: `{base}/api/files/{key}?expires={unix seconds}&signature={sig}`,
//! where `sig` is the base64url HMAC-SHA256 of the key and the expiry under a key derived from
//! the server key. A URL cannot be moved to another blob or a later time, and the sealing key
//! itself signs nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::domain::Millis;
use crate::engine::constant_time_eq;
use crate::secrets::Sealer;
use crate::webhooks::signature::hmac;

/// Where the API serves blobs; the key follows.
pub const FILES_PATH: &str = "/api/files/";

/// Why a signed URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("the URL's signature does not match; ask for a fresh URL (the execution's status)")]
    BadSignature,
    #[error("the URL expired; ask for a fresh one (the execution's status)")]
    Expired,
}

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(***)")
    }
}

impl UrlSigner {
    pub fn new(sealer: &Sealer) -> Self {
        UrlSigner {
            key: sealer.derive("reelay/output-urls/v1"),
        }
    }

    fn signature(&self, key: &str, expires: i64) -> Vec<u8> {
        hmac(&self.key, &[key.as_bytes(), b"\n", expires.to_string().as_bytes()])
    }

    /// The URL of blob `key` under `base` (no trailing `/`), valid until `expires` (unix seconds).
    pub fn url(&self, base: &str, key: &str, expires: i64) -> String {
        let signature = B64.encode(self.signature(key, expires));
        format!("{base}{FILES_PATH}{key}?expires={expires}&signature={signature}")
    }

    /// Checks a request for blob `key` carrying `expires` and `signature`, at `now`.
    pub fn check(&self, key: &str, expires: i64, signature: &str, now: Millis) -> Result<(), UrlRefused> {
        let given = B64.decode(signature).map_err(|_| UrlRefused::BadSignature)?;
        if !constant_time_eq(&given, &self.signature(key, expires)) {
            return Err(UrlRefused::BadSignature);
        }
        // Checked after the signature, so an expiry is only reported for a URL we made.
        if expires.saturating_mul(1000) <= now {
            return Err(UrlRefused::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> UrlSigner {
        UrlSigner::new(&Sealer::from_bytes(&[seed; 32]).unwrap())
    }

    #[test]
    fn a_url_reads_only_its_blob_until_it_expires() {
        let s = signer(1);
        let url = s.url("http://h:1", "executions/e/job1/output.mp4", 1_000);
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, "http://h:1/api/files/executions/e/job1/output.mp4");
        let sig = query.split("signature=").nth(1).unwrap();
        let key = "executions/e/job1/output.mp4";
        assert_eq!(s.check(key, 1_000, sig, 999_999), Ok(()));
        assert_eq!(s.check(key, 1_000, sig, 1_000_000), Err(UrlRefused::Expired));
        assert_eq!(s.check(key, 2_000, sig, 0), Err(UrlRefused::BadSignature));
        assert_eq!(
            s.check("executions/e/job2/output.mp4", 1_000, sig, 0),
            Err(UrlRefused::BadSignature)
        );
        assert_eq!(s.check(key, 1_000, "not base64!", 0), Err(UrlRefused::BadSignature));
        assert_eq!(signer(2).check(key, 1_000, sig, 0), Err(UrlRefused::BadSignature));
    }

    #[test]
    fn the_signing_key_is_not_the_sealing_key() {
        let sealer = Sealer::from_bytes(&[7; 32]).unwrap();
        assert_ne!(UrlSigner::new(&sealer).key, vec![7u8; 32]);
        assert_eq!(UrlSigner::new(&sealer).key.len(), 32);
    }
}
