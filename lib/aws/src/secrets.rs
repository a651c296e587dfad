//! The server's secrets from AWS Secrets Manager, read once when a Lambda starts cold.
//!
//! The secret's `SecretString` is a JSON object:
//! * `serverKey` (required): the base64 32-byte key that seals secrets at rest;
//! * optional provider keys, by the names the providers' configuration reads:
//!   [`PROVIDER_KEYS`].
//!
//! Values never appear in errors, logs or `Debug` output; only field names do.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_secretsmanager::Client;
use serde_json::Value;

use reelay_core::plan::Secret;
use reelay_core::secrets::Sealer;

use crate::sdk_message;

/// The provider keys a secret may carry. `GOOGLE_APPLICATION_CREDENTIALS_JSON` is a Vertex AI
/// service-account key itself (not a path to one).
pub const PROVIDER_KEYS: [&str; 6] = [
    "REPLICATE_API_TOKEN",
    "FAL_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "ELEVENLABS_API_KEY",
    "HUME_API_KEY",
];

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secret {id}: {message}")]
    Unavailable { id: String, message: String },
    #[error("secret {id} has no SecretString (a binary secret is not supported)")]
    NotAString { id: String },
    /// Carries the parser's position only, never the text.
    #[error("the secret is not a JSON object: {0}")]
    NotJson(String),
    #[error("the secret has no `serverKey`")]
    MissingServerKey,
    #[error("the secret's `{0}` must be a string")]
    NotText(String),
    #[error("the secret's `serverKey` must be 32 bytes, base64-encoded")]
    BadServerKey,
}

/// What the secret holds: the sealing key and the provider keys it gives.
#[derive(Clone)]
pub struct ServerSecrets {
    sealer: Sealer,
    provider_keys: BTreeMap<&'static str, Secret>,
}

impl fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSecrets")
            .field("sealer", &self.sealer)
            .field("provider_keys", &self.provider_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ServerSecrets {
    /// Reads the secret `id` (name or ARN). `endpoint_url`: another endpoint (moto).
    pub async fn load(
        config: &aws_config::SdkConfig,
        id: &str,
        endpoint_url: Option<&str>,
    ) -> Result<ServerSecrets, SecretsError> {
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
        if let Some(endpoint) = endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        let out = Client::from_conf(builder.build())
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable {
                id: id.to_string(),
                message: sdk_message(&e),
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| SecretsError::NotAString { id: id.to_string() })?;
        ServerSecrets::parse(text)
    }

    /// Reads the secret's JSON text. Unknown fields are ignored (named in a warning), so a
    /// secret can carry more than this version reads.
    pub fn parse(text: &str) -> Result<ServerSecrets, SecretsError> {
        let fields: BTreeMap<String, Value> = serde_json::from_str(text).map_err(|e| {
            // serde_json's messages quote no input, but say where it went wrong.
            SecretsError::NotJson(format!("{} at line {} column {}", kind(&e), e.line(), e.column()))
        })?;
        let text_field = |name: &str| -> Result<Option<&str>, SecretsError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                // Blank counts as absent (a template's placeholder left empty).
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(SecretsError::NotText(name.to_string())),
            }
        };
        let server_key = text_field("serverKey")?.ok_or(SecretsError::MissingServerKey)?;
        let sealer = Sealer::from_base64(server_key).map_err(|_| SecretsError::BadServerKey)?;
        let mut provider_keys = BTreeMap::new();
        for name in PROVIDER_KEYS {
            if let Some(value) = text_field(name)? {
                provider_keys.insert(name, Secret::new(value));
            }
        }
        let unknown: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "serverKey" && !PROVIDER_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            tracing::warn!(fields = ?unknown, "the server secret has fields this version does not read");
        }
        Ok(ServerSecrets { sealer, provider_keys })
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// A provider key by its name in [`PROVIDER_KEYS`], if the secret gives it.
    pub fn provider_key(&self, name: &str) -> Option<&Secret> {
        self.provider_keys.get(name)
    }
}

fn kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "not an object of fields",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn reads_the_server_key_and_the_provider_keys_it_gives() {
        let secrets = ServerSecrets::parse(&format!(
            r#"{{"serverKey":"{KEY}","REPLICATE_API_TOKEN":"r8_abc","FAL_KEY":"","other":1}}"#
        ))
        .unwrap();
        assert_eq!(secrets.provider_key("REPLICATE_API_TOKEN").unwrap().expose(), "r8_abc");
        // An empty value counts as absent.
        assert!(secrets.provider_key("FAL_KEY").is_none());
        assert!(secrets.provider_key("other").is_none());
        // Sealed with the given key: another sealer with it opens the result.
        let sealed = secrets.sealer().seal(&Secret::new("x"));
        let again = Sealer::from_base64(KEY).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose(), "x");
    }

    #[test]
    fn errors_name_fields_never_values() {
        let cases = [
            ("not json at all r8_secret", "malformed JSON at line 1"),
            (r#"["r8_secret"]"#, "not an object"),
            (r#"{"FAL_KEY":"fal_secret"}"#, "no `serverKey`"),
            (r#"{"serverKey":"c2hvcnQ="}"#, "`serverKey` must be 32 bytes"),
            (
                &format!(r#"{{"serverKey":"{KEY}","GEMINI_API_KEY":["g_secret"]}}"#),
                "`GEMINI_API_KEY` must be a string",
            ),
        ];
        for (text, expected) in cases {
            let message = ServerSecrets::parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("secret\""), "{message}");
            assert!(!message.contains("_secret"), "{message}");
        }
        let secrets = ServerSecrets::parse(&format!(r#"{{"serverKey":"{KEY}","FAL_KEY":"fal_secret"}}"#)).unwrap();
        let debug = format!("{secrets:?}");
        assert!(
            debug.contains("FAL_KEY") && !debug.contains("fal_secret") && !debug.contains(KEY),
            "{debug}"
        );
    }
}
