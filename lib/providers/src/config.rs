//! Which hosted providers a server runs, and with what settings, from its environment.
//! Every provider is on by default: a client may bring its own key with each request
//! (`providerApiKeys`), so a server without keys still serves them.

use std::sync::Arc;

use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::Secret;
use reelay_core::ports::{Provider, RateBudget};

use crate::fal::{FalProvider, FalSettings};
use crate::google::{GoogleProvider, GoogleSettings};
use crate::replicate::{ReplicateProvider, ReplicateSettings};

/// The variables read (documented in the README).
pub const VARIABLES: [&str; 10] = [
    "REELAY_PROVIDERS",
    "REPLICATE_API_TOKEN",
    "REELAY_REPLICATE_BASE_URL",
    "FAL_KEY",
    "REELAY_FAL_QUEUE_URL",
    "REELAY_FAL_JWKS_URL",
    "GEMINI_API_KEY",
    "REELAY_GEMINI_BASE_URL",
    "REELAY_VERTEX_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// The providers `lookup` (the environment, or a test's map) configures. `REELAY_PROVIDERS`
/// (comma-separated names, or `none`) picks them; all by default.
/// `media_addresses`: where providers that fetch a client's input media themselves may reach.
/// `budget`: where their rate limits are counted (shared by all processes on AWS).
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
    media_addresses: &AddressPolicy,
    budget: Arc<dyn RateBudget>,
) -> Result<Vec<Arc<dyn Provider>>, String> {
    let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let secret = |name: &str| var(name).map(Secret::new);
    let chosen = var("REELAY_PROVIDERS").unwrap_or_else(|| "replicate,fal,google-cloud".into());
    let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
    for name in chosen
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "none")
    {
        let failed = |e: &dyn std::fmt::Display| format!("provider {name}: {e}");
        let provider: Arc<dyn Provider> = match name {
            "replicate" => {
                let mut settings = ReplicateSettings::new(secret("REPLICATE_API_TOKEN"));
                if let Some(base) = var("REELAY_REPLICATE_BASE_URL") {
                    settings.base_url = base;
                }
                Arc::new(
                    ReplicateProvider::new(settings)
                        .map_err(|e| failed(&e))?
                        .with_budget(budget.clone()),
                )
            }
            "fal" => {
                let mut settings = FalSettings::new(secret("FAL_KEY"));
                if let Some(base) = var("REELAY_FAL_QUEUE_URL") {
                    settings.queue_base = base;
                }
                if let Some(jwks) = var("REELAY_FAL_JWKS_URL") {
                    settings.jwks_url = jwks;
                }
                Arc::new(
                    FalProvider::new(settings)
                        .map_err(|e| failed(&e))?
                        .with_budget(budget.clone()),
                )
            }
            "google-cloud" => {
                let settings = match var("REELAY_VERTEX_LOCATION") {
                    Some(location) => {
                        let key = match var("GOOGLE_APPLICATION_CREDENTIALS") {
                            Some(path) => Some(Secret::new(
                                std::fs::read_to_string(&path)
                                    .map_err(|e| failed(&format!("cannot read {path}: {e}")))?,
                            )),
                            None => None,
                        };
                        GoogleSettings::vertex(&location, key)
                    }
                    None => {
                        let mut settings = GoogleSettings::gemini(secret("GEMINI_API_KEY"));
                        if let (Some(base), crate::google::GoogleApi::Gemini { base: b }) =
                            (var("REELAY_GEMINI_BASE_URL"), &mut settings.api)
                        {
                            *b = base;
                        }
                        settings
                    }
                };
                let settings = GoogleSettings {
                    media_addresses: media_addresses.clone(),
                    ..settings
                };
                Arc::new(
                    GoogleProvider::new(settings)
                        .map_err(|e| failed(&e))?
                        .with_budget(budget.clone()),
                )
            }
            other => {
                return Err(format!(
                    "REELAY_PROVIDERS names `{other}`; known: replicate, fal, google-cloud (or none)"
                ))
            }
        };
        providers.push(provider);
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let env: std::collections::HashMap<String, String> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_env(
            |k| env.get(k).cloned(),
            &AddressPolicy::strict(),
            Arc::new(crate::InProcessBudget::default()),
        )
        .map(|ps| ps.iter().map(|p| p.name().to_string()).collect())
    }

    #[test]
    fn all_providers_by_default_or_the_ones_named() {
        assert_eq!(names(&[]).unwrap(), ["replicate", "fal", "google-cloud"]);
        assert_eq!(names(&[("REELAY_PROVIDERS", "fal")]).unwrap(), ["fal"]);
        assert!(names(&[("REELAY_PROVIDERS", "none")]).unwrap().is_empty());
        let error = names(&[("REELAY_PROVIDERS", "replicate,acme")]).unwrap_err();
        assert!(error.contains("`acme`"), "{error}");
        let error = names(&[
            ("REELAY_VERTEX_LOCATION", "us-central1"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/nope.json"),
        ])
        .unwrap_err();
        assert!(error.contains("/nope.json"), "{error}");
    }
}
