//! What the provider stages (`provider_submit.rs`, `provider_wait.rs`, `provider_output.rs`)
//! and cancellation share about a job's call to its provider: the provider itself, the key
//! to call it with, its model's deadline, the request it was submitted with, its token, and
//! what its answer means.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::outputs::{resolve, substitute_references, visit_references};
use super::settle::WorkError;
use super::Engine;
use crate::domain::{Completion, Job, ProviderCall, ProviderOutcome};
use crate::plan::{MediaRef, Operation, ProviderParams, Secret};
use crate::ports::{Provider, ProviderRequest, ProviderStatus, DEFAULT_DEADLINE};
use crate::scenes::SceneBrief;

impl Engine {
    /// The job's provider; one not configured on this server fails the job.
    pub(super) fn provider_of(&self, call: &ProviderCall) -> Result<&Arc<dyn Provider>, WorkError> {
        self.providers.get(&call.provider).ok_or_else(|| WorkError::Fatal {
            code: "provider_unavailable",
            message: format!("provider `{}` is not configured on this server", call.provider),
        })
    }

    /// How long the job's model may keep it waiting at its provider.
    pub(super) fn model_deadline(&self, call: &ProviderCall) -> Duration {
        self.providers
            .model(&call.provider, &call.model_id)
            .map_or(DEFAULT_DEADLINE, |m| m.deadline)
    }

    /// The request a provider job makes: inputs resolved to URLs the provider can read, its
    /// key, and where to call back.
    pub(super) async fn provider_request(
        &self,
        job: &Job,
        params: &ProviderParams,
        call: &ProviderCall,
    ) -> Result<ProviderRequest, WorkError> {
        let mut resolved = params.clone();
        // Which parents' outputs the request carries, and under which input, so only those are
        // made readable (a data: URI costs a read of the blob).
        let mut wanted: Vec<(String, String)> = resolved
            .inputs
            .iter()
            .filter_map(|(input, source)| match source {
                MediaRef::Job(id) => Some((input.clone(), id.clone())),
                MediaRef::Url(_) => None,
            })
            .collect();
        for (option, value) in resolved.options.iter_mut() {
            visit_references(value, &mut |id, _| wanted.push((option.clone(), id.to_string())));
        }
        let parents = self
            .provider_inputs(job, self.provider_of(call)?.as_ref(), &wanted)
            .await?;
        for source in resolved.inputs.values_mut() {
            *source = MediaRef::Url(resolve(source, &parents)?.0);
        }
        for value in resolved.options.values_mut() {
            substitute_references(value, &parents);
        }
        if job.spec.operation == Operation::GenerateSceneCode && !job.repairs.is_empty() {
            // The refused rounds' code and errors: what the model is to fix this time.
            let mut brief = SceneBrief::from_params(&resolved).map_err(|message| WorkError::Fatal {
                code: "invalid_params",
                message,
            })?;
            brief.repairs = self.repairs_of(job).await?;
            brief.put_into(&mut resolved);
        }
        let callback_url = match (&self.settings.callback_base, &call.completion) {
            (Some(base), Completion::Webhook) => Some(format!(
                "{}/api/webhooks/job/{}?token={}",
                base.trim_end_matches('/'),
                job.key().record_id(),
                call.token
            )),
            _ => None,
        };
        Ok(ProviderRequest {
            job: job.key(),
            operation: job.spec.operation,
            params: resolved,
            token: call.token.clone(),
            api_key: self.api_key_for(job, &call.provider).await?,
            callback_url,
        })
    }

    /// The provider key to submit with: the job's own, else the one sent with the request for
    /// that provider, else none (the provider adapter's configured key).
    pub(super) async fn api_key_for(&self, job: &Job, provider: &str) -> Result<Option<Secret>, WorkError> {
        let sealed = match &job.api_key {
            Some(sealed) => Some(sealed.clone()),
            None => self
                .store
                .execution(&job.execution_id)
                .await?
                .and_then(|e| e.provider_keys.get(provider).cloned()),
        };
        sealed
            .map(|s| self.sealer.open(&s))
            .transpose()
            .map_err(|e| WorkError::Fatal {
                code: "unreadable_secret",
                message: e.to_string(),
            })
    }
}

/// The outcome a terminal status records; `None` while the provider is still working.
pub(super) fn outcome_of(status: ProviderStatus) -> Option<ProviderOutcome> {
    match status {
        ProviderStatus::Pending => None,
        ProviderStatus::Succeeded {
            output_url,
            content_type,
        } => Some(ProviderOutcome::Succeeded {
            output_url,
            content_type,
        }),
        ProviderStatus::Failed { message } => Some(ProviderOutcome::Failed { message }),
    }
}

/// A job's callback token: 128 random bits, in hex.
pub(super) fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares tokens in time that does not tell a guesser how much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(new_token().len(), 32);
    }
}
