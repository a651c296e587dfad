//! Execution plans: the canonical model, parsing of every wire form, and validation.

mod model;
mod parse;

pub use model::*;
pub use parse::{
    parse_request, parse_value, parse_value_on, read_body, reference, requested_base, BaseJobs, PlanLimits,
};

use serde::Serialize;

/// One problem with a submitted plan. Validation reports all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl PlanError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        PlanError {
            code: code.to_string(),
            message: message.into(),
            job_id: None,
            field: None,
        }
    }
    pub fn job(mut self, id: &str) -> Self {
        self.job_id = Some(id.to_string());
        self
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// What validation needs to know about the models the server can run.
pub trait Catalog: Send + Sync {
    fn lookup(&self, provider: &str, model_id: &str) -> ModelLookup;
    /// Problems of a job's params against its model's own input schema, as `(field, message)`
    /// (`field` relative to `params`).
    fn check(&self, _params: &ProviderParams) -> Vec<(String, String)> {
        Vec::new()
    }
}

pub enum ModelLookup {
    /// The names of the providers that do exist.
    UnknownProvider(Vec<String>),
    /// The provider's model ids.
    UnknownModel(Vec<String>),
    Found(crate::ports::ModelInfo),
}

#[cfg(test)]
mod tests;
