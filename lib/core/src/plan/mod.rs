//! Execution plans: the canonical model, parsing of every wire form, and validation.
//!
//! Parsing runs in stages, one module each: `parse` reads the request around the plan, `draft`
//! reads each job as sent, `dag` checks the jobs' ids and dependencies, and `params` types each
//! job's params, one module per operation.

mod captions;
mod catalog;
mod colour;
mod dag;
mod draft;
mod frame;
mod layer;
mod model;
mod params;
mod parse;
mod references;
mod strict;
pub(crate) use strict::{duplicate_keys, suggest};

pub use captions::{parse_alignment, ActiveWordEffect, AssColour, CaptionPreset, CaptionStyle};
pub use catalog::{Catalog, Completion, ModelInfo, ModelLookup, DEFAULT_DEADLINE};
pub use colour::hex_rgb;
pub use dag::BaseJobs;
pub use frame::{parse_resolution, AspectRatio};
pub use layer::*;
pub use model::*;
pub use parse::{parse_request, parse_value, parse_value_on, read_body, requested_base, PlanLimits};
pub use references::reference;

use std::fmt;

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

    /// A problem in one job's `field`, the message led by the job (`` job `a`: … ``): the form
    /// of most problems found while reading a job.
    fn in_job(code: &str, job: &str, field: impl Into<String>, detail: impl fmt::Display) -> Self {
        PlanError::new(code, format!("job `{job}`: {detail}"))
            .job(job)
            .field(field)
    }
}

#[cfg(test)]
mod strict_tests;
#[cfg(test)]
mod tests;
