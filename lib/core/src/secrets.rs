//! Secrets at rest (webhook secrets, provider keys sent with a request): sealed with
//! ChaCha20-Poly1305 under a server key before they reach any store, opened only at the
//! moment of use. The key comes from the deployment (a file the local node creates, or the
//! environment on AWS); a store dump alone reveals nothing.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::plan::Secret;

/// A sealed secret: `v1:` then base64 of nonce ‖ ciphertext ‖ tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the server key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong server key, or the record was altered)")]
    Unreadable,
}

/// Seals and opens secrets under one server key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    /// Kept only to derive keys for other purposes ([`Sealer::derive`]).
    key: [u8; 32],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(***)")
    }
}

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

impl Sealer {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Sealer, SealError> {
        let bytes = B64.decode(key.trim()).map_err(|_| SealError::BadKey)?;
        Sealer::from_bytes(&bytes)
    }

    pub fn from_bytes(key: &[u8]) -> Result<Sealer, SealError> {
        let key: [u8; 32] = key.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            key,
        })
    }

    /// A key for another `purpose` (signing output URLs), derived as HMAC-SHA256 of the
    /// purpose under the server key: one key per purpose, and the sealing key itself is never
    /// used for anything but sealing.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        crate::webhooks::signature::hmac(&self.key, &[purpose.as_bytes()])
    }

    /// A fresh random key, base64-encoded (what `reelay` writes on first start).
    pub fn generate_key() -> String {
        let key: [u8; 32] = rand::rng().random();
        B64.encode(key)
    }

    pub fn seal(&self, secret: &Secret) -> Sealed {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory input.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.expose().as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Sealed(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, sealed: &Sealed) -> Result<Secret, SealError> {
        let raw = sealed.0.strip_prefix(PREFIX).ok_or(SealError::Unreadable)?;
        let bytes = B64.decode(raw).map_err(|_| SealError::Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Unreadable)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_without_revealing() {
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal(&Secret::new("r8_live_key"));
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("r8_live_key"), "{stored}");
        assert_eq!(sealer.open(&sealed).unwrap().expose(), "r8_live_key");
        // A fresh nonce each time: equal secrets do not look equal at rest.
        assert_ne!(sealer.seal(&Secret::new("r8_live_key")), sealed);
        assert_eq!(format!("{sealed:?}"), "Sealed(***)");
    }

    #[test]
    fn another_key_or_a_tampered_record_cannot_open() {
        let a = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let b = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let sealed = a.seal(&Secret::new("s"));
        assert_eq!(b.open(&sealed).err(), Some(SealError::Unreadable));
        let mut tampered = sealed.0.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = Sealed(String::from_utf8(tampered).unwrap());
        assert!(a.open(&tampered).is_err());
        assert_eq!(Sealer::from_base64("c2hvcnQ=").err(), Some(SealError::BadKey));
    }
}
