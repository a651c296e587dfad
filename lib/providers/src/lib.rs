//! AI providers behind the engine's `Provider` port: the HTTP clients share `http` (one
//! client, failure classification, streaming downloads), `rate` (per-account budgets) and
//! `registry` (models, their schemas, and the unified params' mapping).

pub mod http;
pub mod local;
pub mod rate;
pub mod registry;

pub use local::{LocalProvider, LocalProviderSettings, ProviderWebhook};
