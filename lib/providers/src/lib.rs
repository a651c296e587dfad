//! AI providers behind the engine's `Provider` port.

pub mod local;

pub use local::{LocalProvider, LocalProviderSettings, ProviderWebhook};
