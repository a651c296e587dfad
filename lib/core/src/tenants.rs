//! Tenants and their API keys. A key is shown once, when it is made; only its SHA-256 is
//! stored (keys are 256 random bits, so a fast hash is enough: there is nothing to guess).

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::domain::Millis;
use crate::ports::{ApiKeyRecord, KeyStore, StoreError};

/// Keys look like `rl_live_<64 hex>`.
const KEY_PREFIX: &str = "rl_live_";

pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new key and its record. The key itself is returned once and kept nowhere.
pub fn new_key(tenant_id: &str, name: &str, now: Millis) -> (String, ApiKeyRecord) {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let secret: [u8; 32] = rand::rng().random();
    let id: [u8; 8] = rand::rng().random();
    let key = format!("{KEY_PREFIX}{}", hex(&secret));
    let record = ApiKeyRecord {
        id: format!("key_{}", hex(&id)),
        tenant_id: tenant_id.to_string(),
        name: name.to_string(),
        hash: hash_key(&key),
        prefix: key[..KEY_PREFIX.len() + 6].to_string(),
        created_at: now,
        revoked_at: None,
    };
    (key, record)
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing `Authorization: Bearer <api key>`")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key was revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant a bearer key acts for.
pub async fn authenticate(keys: &dyn KeyStore, bearer: Option<&str>) -> Result<ApiKeyRecord, AuthError> {
    let key = bearer
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Missing)?;
    let record = keys.key_by_hash(&hash_key(key)).await?.ok_or(AuthError::Invalid)?;
    if record.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_stored_only_as_its_hash() {
        let (key, record) = new_key("acme", "ci", 1);
        assert!(key.starts_with("rl_live_") && key.len() == 8 + 64, "{key}");
        assert_eq!(record.hash, hash_key(&key));
        assert_ne!(record.hash, key);
        assert!(key.starts_with(&record.prefix));
        assert_eq!(record.tenant_id, "acme");
        let (other, _) = new_key("acme", "ci", 1);
        assert_ne!(key, other);
    }
}
