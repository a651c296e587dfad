//! The providers a server runs, by name; also the catalog plans are validated against.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plan::{Catalog, ModelLookup, Operation, ProviderParams};
use crate::ports::{ModelInfo, Provider};

#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    /// The model a job of an operation runs when it names none: `(provider, model id)`.
    defaults: BTreeMap<Operation, (String, String)>,
    /// The provider that runs a model named under another: by `(provider, model id)`.
    routes: BTreeMap<(String, String), String>,
}

impl Providers {
    pub fn new() -> Self {
        Providers::default()
    }

    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.by_name.insert(provider.name().to_string(), provider);
        self
    }

    /// Makes `provider`'s `model_id` the model of `operation`'s jobs that name none.
    pub fn with_default(mut self, operation: Operation, provider: &str, model_id: &str) -> Self {
        self.defaults
            .insert(operation, (provider.to_string(), model_id.to_string()));
        self
    }

    /// Sends jobs naming `model_id` under `provider` to the provider `runs_at`.
    pub fn with_route(mut self, provider: &str, model_id: &str, runs_at: &str) -> Self {
        self.routes
            .insert((provider.to_string(), model_id.to_string()), runs_at.to_string());
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// The model a provider declares, if both are configured here.
    pub(super) fn model(&self, provider: &str, model_id: &str) -> Option<&ModelInfo> {
        self.get(provider)?.model(model_id)
    }
}

impl Catalog for Providers {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup {
        let Some(p) = self.by_name.get(provider) else {
            return ModelLookup::UnknownProvider(self.by_name.keys().cloned().collect());
        };
        match p.model(model_id) {
            Some(model) => ModelLookup::Found(model.clone()),
            None => ModelLookup::UnknownModel(p.models().iter().map(|m| m.id.clone()).collect()),
        }
    }

    fn check(&self, params: &ProviderParams) -> Vec<(String, String)> {
        self.by_name
            .get(&params.provider)
            .map(|p| p.check_params(params))
            .unwrap_or_default()
    }

    fn default_model(&self, operation: Operation) -> Option<(String, String)> {
        self.defaults.get(&operation).cloned()
    }

    fn route(&self, provider: &str, model_id: &str) -> Option<String> {
        self.routes.get(&(provider.to_string(), model_id.to_string())).cloned()
    }
}
