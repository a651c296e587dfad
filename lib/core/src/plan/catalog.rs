//! What validation knows of the models the server can run. The plan side owns these types so
//! that the ports, which name them in `Provider`, depend on plans and never the reverse.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{MediaKind, Operation, ProviderParams};

/// What validation needs to know about the models the server can run.
pub trait Catalog: Send + Sync {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup;
    /// Problems of a job's params against its model's own input schema, as `(field, message)`
    /// (`field` relative to `params`).
    fn check(&self, _params: &ProviderParams) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The `(provider, model id)` a job of `operation` runs when it names no model (the
    /// SDK's `lipSync()` and `removeBackground()` name none).
    fn default_model(&self, _operation: Operation) -> Option<(String, String)> {
        None
    }
    /// The provider that runs a model the client named under another provider (the SDK lists
    /// ElevenLabs' `elevenlabs/turbo-v2.5` under `replicate`).
    fn route(&self, _provider: &str, _model_id: &str) -> Option<String> {
        None
    }
}

pub enum ModelLookup {
    /// The names of the providers that do exist.
    UnknownProvider(Vec<String>),
    /// The provider's model ids.
    UnknownModel(Vec<String>),
    Found(ModelInfo),
}

/// What the catalog knows of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    pub operations: Vec<Operation>,
    pub output: MediaKind,
    pub completion: Completion,
    /// How long a job may wait for the provider before it fails (and is cancelled there).
    pub deadline: Duration,
}

/// A model's deadline unless its registry entry says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);

/// How the end of a model's job reaches us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Completion {
    /// The provider calls us back; polling stays on as a slower fallback.
    Webhook,
    Polling,
}
