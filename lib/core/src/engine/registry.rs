//! The providers a server runs, by name; also the catalog plans are validated against.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plan::{Catalog, ModelLookup, ProviderParams};
use crate::ports::{ModelInfo, Provider};

#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn new() -> Self {
        Providers::default()
    }

    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.by_name.insert(provider.name().to_string(), provider);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// The model a provider declares, if both are configured here.
    pub(super) fn model(&self, provider: &str, model_id: &str) -> Option<&ModelInfo> {
        self.get(provider)?.models().iter().find(|m| m.id == model_id)
    }
}

impl Catalog for Providers {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup {
        let Some(p) = self.by_name.get(provider) else {
            return ModelLookup::UnknownProvider(self.by_name.keys().cloned().collect());
        };
        match p.models().iter().find(|m| m.id == model_id) {
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
}
