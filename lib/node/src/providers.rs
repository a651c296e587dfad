//! Which providers a node runs, and with what settings: read from the environment by
//! [`ProviderSettings::read`], built into the engine's providers by [`ProviderSettings::build`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::Secret;
use reelay_core::ports::{Provider, RateBudget};
use reelay_providers::fal::{FalProvider, FalSettings};
use reelay_providers::google::{GoogleApi, GoogleProvider, GoogleSettings};
use reelay_providers::replicate::{ReplicateProvider, ReplicateSettings};
use reelay_providers::{LocalProvider, LocalProviderSettings, ProviderWebhook};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::settings::{invalid, SettingsError, Vars};
use crate::NodeError;

/// The `local` provider's callbacks: it calls back in process, not over HTTP.
pub type LocalCallbacks = UnboundedReceiver<ProviderWebhook>;

/// The providers a node runs, built, `local` first, with `local`'s callbacks if it runs.
pub(crate) struct ProviderSet {
    pub providers: Vec<Arc<dyn Provider>>,
    pub local_callbacks: Option<LocalCallbacks>,
}

/// The providers a node runs. `None`: that provider is off.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The offline `local` provider (ffmpeg renders): always on the embedded node; on AWS
    /// only when `REELAY_PROVIDERS` names it (tests).
    pub local: bool,
    /// How long `local`'s models "think" before rendering.
    pub local_delay: Duration,
    pub replicate: Option<ReplicateSettings>,
    pub fal: Option<FalSettings>,
    pub google: Option<GoogleSettings>,
}

impl Default for ProviderSettings {
    /// Every hosted provider, with no account key: clients may bring theirs with each request.
    fn default() -> Self {
        ProviderSettings {
            local: false,
            local_delay: Duration::from_millis(300),
            replicate: Some(ReplicateSettings::new(None)),
            fal: Some(FalSettings::new(None)),
            google: Some(GoogleSettings::gemini(None)),
        }
    }
}

impl ProviderSettings {
    /// No provider at all; tests turn on the ones they drive.
    pub fn none() -> Self {
        ProviderSettings {
            local: false,
            replicate: None,
            fal: None,
            google: None,
            ..ProviderSettings::default()
        }
    }

    pub(crate) fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<ProviderSettings, SettingsError> {
        let mut settings = ProviderSettings::default();
        if let Some(names) = vars.get("REELAY_PROVIDERS") {
            settings = ProviderSettings::none();
            for name in names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && *n != "none")
            {
                let defaults = ProviderSettings::default();
                match name {
                    "local" => settings.local = true,
                    "replicate" => settings.replicate = defaults.replicate,
                    "fal" => settings.fal = defaults.fal,
                    "google-cloud" => settings.google = defaults.google,
                    other => {
                        return Err(invalid(
                            "REELAY_PROVIDERS",
                            format!("`{other}` is no provider; known: local, replicate, fal, google-cloud (or none)"),
                        ))
                    }
                }
            }
        }
        settings.local_delay = vars.millis("REELAY_PROVIDER_DELAY_MS", settings.local_delay)?;
        if let Some(replicate) = &mut settings.replicate {
            if let Some(base) = vars.base_url("REELAY_REPLICATE_BASE_URL")? {
                replicate.base_url = base;
            }
        }
        if let Some(fal) = &mut settings.fal {
            if let Some(base) = vars.base_url("REELAY_FAL_QUEUE_URL")? {
                fal.queue_base = base;
            }
            if let Some(jwks) = vars.base_url("REELAY_FAL_JWKS_URL")? {
                fal.jwks_url = jwks;
            }
        }
        if let Some(google) = &mut settings.google {
            if let Some(location) = vars.get("REELAY_VERTEX_LOCATION") {
                let key = match vars.get("GOOGLE_APPLICATION_CREDENTIALS") {
                    Some(path) => Some(Secret::new(std::fs::read_to_string(&path).map_err(|e| {
                        invalid("GOOGLE_APPLICATION_CREDENTIALS", format!("cannot read {path}: {e}"))
                    })?)),
                    None => None,
                };
                *google = GoogleSettings::vertex(&location, key);
            } else if let (Some(base), GoogleApi::Gemini { base: b }) =
                (vars.base_url("REELAY_GEMINI_BASE_URL")?, &mut google.api)
            {
                *b = base;
            }
        }
        settings.use_keys(|name| vars.secret(name));
        Ok(settings)
    }

    /// Sets the account keys that `key` gives, by their variable's name (`REPLICATE_API_TOKEN`,
    /// `FAL_KEY`, `GEMINI_API_KEY`, and `GOOGLE_APPLICATION_CREDENTIALS_JSON`: a Vertex AI
    /// service account key itself). On AWS, the secret's keys take the place of the
    /// environment's this way.
    pub fn use_keys(&mut self, key: impl Fn(&str) -> Option<Secret>) {
        if let Some(replicate) = &mut self.replicate {
            replicate.api_key = key("REPLICATE_API_TOKEN").or(replicate.api_key.take());
        }
        if let Some(fal) = &mut self.fal {
            fal.key = key("FAL_KEY").or(fal.key.take());
        }
        if let Some(google) = &mut self.google {
            let name = match google.api {
                GoogleApi::Gemini { .. } => "GEMINI_API_KEY",
                GoogleApi::Vertex(_) => "GOOGLE_APPLICATION_CREDENTIALS_JSON",
            };
            google.key = key(name).or(google.key.take());
        }
    }

    /// The providers. `outbound`: where providers that fetch a client's input
    /// media themselves may reach; `budget`: where rate limits are counted (shared by every
    /// process on AWS); `local_dir`: the `local` provider's work folder.
    pub(crate) fn build(
        &self,
        outbound: &AddressPolicy,
        budget: &Arc<dyn RateBudget>,
        local_dir: &Path,
    ) -> Result<ProviderSet, NodeError> {
        let failed = |provider: &'static str| {
            move |e: &dyn std::fmt::Display| NodeError::Provider {
                provider,
                message: e.to_string(),
            }
        };
        let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
        let mut local_callbacks = None;
        if self.local {
            let (local, webhooks) = LocalProvider::new(LocalProviderSettings {
                workdir: local_dir.to_path_buf(),
                delay: self.local_delay,
            })
            .map_err(|e| failed("local")(&e))?;
            providers.push(local);
            local_callbacks = Some(webhooks);
        }
        if let Some(settings) = &self.replicate {
            let provider = ReplicateProvider::new(settings.clone()).map_err(|e| failed("replicate")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        if let Some(settings) = &self.fal {
            let provider = FalProvider::new(settings.clone()).map_err(|e| failed("fal")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        if let Some(settings) = &self.google {
            let settings = GoogleSettings {
                media_addresses: outbound.clone(),
                ..settings.clone()
            };
            let provider = GoogleProvider::new(settings).map_err(|e| failed("google-cloud")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        Ok(ProviderSet {
            providers,
            local_callbacks,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use reelay_providers::InProcessBudget;

    use super::*;
    use crate::Settings;

    fn names(env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = Settings::from_env(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().unwrap();
        let budget: Arc<dyn RateBudget> = Arc::new(InProcessBudget::default());
        let built = settings
            .providers
            .build(&AddressPolicy::strict(), &budget, dir.path())
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = built.providers.iter().map(|p| p.name().to_string()).collect();
        assert_eq!(built.local_callbacks.is_some(), names.iter().any(|n| n == "local"));
        Ok(names)
    }

    #[tokio::test]
    async fn all_hosted_providers_by_default_or_the_ones_named() {
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

    #[tokio::test]
    async fn local_runs_only_when_named() {
        assert_eq!(names(&[("REELAY_PROVIDERS", "local")]).unwrap(), ["local"]);
        assert_eq!(names(&[("REELAY_PROVIDERS", "fal, local")]).unwrap(), ["local", "fal"]);
        let err = names(&[("REELAY_PROVIDERS", "local,acme")]).unwrap_err();
        assert!(err.contains("`acme`"), "{err}");
        let err = names(&[("REELAY_PROVIDERS", "local"), ("REELAY_PROVIDER_DELAY_MS", "soon")]).unwrap_err();
        assert!(err.contains("REELAY_PROVIDER_DELAY_MS"), "{err}");
    }

    #[test]
    fn keys_from_another_source_take_the_place_of_the_environments() {
        let env: HashMap<&str, &str> = [
            ("REPLICATE_API_TOKEN", "r-env"),
            ("FAL_KEY", "f-env"),
            ("REELAY_VERTEX_LOCATION", "us-central1"),
        ]
        .into();
        let mut settings = Settings::from_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap()
            .providers;
        let secret: HashMap<&str, &str> = [
            ("REPLICATE_API_TOKEN", "r-secret"),
            ("GOOGLE_APPLICATION_CREDENTIALS_JSON", r#"{"type":"service_account"}"#),
        ]
        .into();
        settings.use_keys(|k| secret.get(k).map(|v| Secret::new(*v)));
        let key = |k: Option<&Secret>| k.map(|s| s.expose().to_string());
        assert_eq!(
            key(settings.replicate.unwrap().api_key.as_ref()).as_deref(),
            Some("r-secret")
        );
        assert_eq!(key(settings.fal.unwrap().key.as_ref()).as_deref(), Some("f-env"));
        let google = settings.google.unwrap();
        assert!(matches!(google.api, GoogleApi::Vertex(_)));
        assert_eq!(
            key(google.key.as_ref()).as_deref(),
            Some(r#"{"type":"service_account"}"#)
        );
    }
}
