//! The settings both the embedded node and the Lambda functions read, from one environment
//! (`lookup`: the process's, a test's map, or the CLI's flags in front of the process's).
//! Each error names the variable at fault; blank counts as unset. [`Settings::default`] is the
//! one table of defaults:
//!
//! | variable                         | meaning                                             | default |
//! |----------------------------------|-----------------------------------------------------|---------|
//! | `REELAY_MAX_IN_FLIGHT`           | executions a tenant may have running (0: any)       | 100 |
//! | `REELAY_MAX_PER_MINUTE`          | submissions per tenant and minute (0: any)          | 120 |
//! | `REELAY_WEBHOOK_ALLOW`           | non-public addresses outbound requests (webhooks, downloads, media inputs) may reach, CIDRs | none |
//! | `REELAY_WEBHOOK_RETRIES`         | client-webhook retry delays, `5s,30s,2m,…`          | about a day |
//! | `REELAY_PUBLIC_URL`              | the API's base URL, where providers call back       | unset: poll |
//! | `REELAY_OUTPUT_URL_EXPIRY_SECS`  | how long signed output URLs stay valid (1 s to 7 days) | 86400 |
//! | `REELAY_MEDIA_INPUT_MAX_BYTES`   | the largest media input ffmpeg downloads by URL     | 2 GiB |
//! | `REELAY_MEDIA_WORKERS`           | media work (ffmpeg, scene renders, `local`'s renders) run at once | the number of cores |
//! | `REELAY_PROVIDERS`               | providers to run, comma-separated (`local`, `replicate`, `fal`, `google-cloud`, `elevenlabs`, `hume`, `openai`, `anthropic`, or `none`) | the hosted ones (`openai` and `anthropic` only with their key) |
//! | `REELAY_PROVIDER_DELAY_MS`       | how long the `local` models "think"                 | 300 |
//! | `REELAY_DEFAULT_MODELS`          | the model of jobs that name none, `op=provider:model,…` (`lipSync=fal:veed/lipsync`) | [`DEFAULT_MODELS`], else `local`'s |
//! | `REELAY_PYTHON`                  | the Python with `pocketsphinx` for `local`'s transcriber | `python3` |
//! | `REPLICATE_API_TOKEN`            | Replicate's account key                             | unset |
//! | `REELAY_REPLICATE_BASE_URL`      | Replicate's API                                     | Replicate's |
//! | `FAL_KEY`                        | fal's account key                                   | unset |
//! | `REELAY_FAL_QUEUE_URL`           | fal's queue API                                     | fal's |
//! | `REELAY_FAL_JWKS_URL`            | where fal's webhook signing keys are                | fal's |
//! | `GEMINI_API_KEY`                 | the Gemini API key (Veo through Gemini)             | unset |
//! | `REELAY_GEMINI_BASE_URL`         | the Gemini API                                      | Google's |
//! | `REELAY_VERTEX_LOCATION`         | Veo through Vertex AI in this region instead        | unset |
//! | `GOOGLE_APPLICATION_CREDENTIALS` | Vertex AI's service-account key file                | unset |
//! | `ELEVENLABS_API_KEY`             | ElevenLabs' account key                             | unset |
//! | `REELAY_ELEVENLABS_BASE_URL`     | ElevenLabs' API                                     | ElevenLabs' |
//! | `HUME_API_KEY`                   | Hume's account key                                  | unset |
//! | `REELAY_HUME_BASE_URL`           | Hume's API                                          | Hume's |
//! | `OPENAI_API_KEY`                 | OpenAI's account key (scene code); OpenAI runs only with it | unset |
//! | `REELAY_OPENAI_BASE_URL`         | an OpenAI-compatible Chat Completions API, with its `/v1` | OpenAI's |
//! | `REELAY_OPENAI_MODEL`            | its models, comma-separated; the first writes scene code | `gpt-4.1` |
//! | `ANTHROPIC_API_KEY`              | Anthropic's account key (scene code); Anthropic runs only with it | unset |
//! | `REELAY_ANTHROPIC_BASE_URL`      | Anthropic's Messages API                            | Anthropic's |
//! | `REELAY_ANTHROPIC_MODEL`         | its models, comma-separated; the first writes scene code | `claude-sonnet-4-5` |
//! | `REELAY_SCENE_WRITER`            | who writes workflows' scene code: `anthropic`, `openai` or `local` (templates) | the first of those with a key, else `local` |
//! | `REELAY_SCENE_REPAIRS`           | times a scene's refused code is written again, with the error as feedback | 2 |
//! | `REELAY_CODE_ATTEMPTS`           | attempts at writing a scene's code (passing failures: 5xx, timeouts) | 3 |
//! | `REELAY_RENDER_ATTEMPTS`         | attempts at rendering a scene (the machine's failures) | 5 |
//! | `REELAY_UPLOAD_ATTEMPTS`         | attempts at uploading a rendered scene              | 5 |
//! | `REELAY_WORKFLOW_RETRY_BASE_SECS`| the workflow steps' first retry delay; doubles each time | 30 |
//! | `REELAY_WORKFLOW_RETRY_CAP_SECS` | the longest of those delays                         | 300 |
//! | `REELAY_SCENE_TIMEOUT_SECS`      | wall-clock (and CPU) time of one scene render       | 300 |
//! | `REELAY_SCENE_MEMORY_MB`         | address space of one scene render                   | 4096 |
//!
//! A client may bring its own provider key with each request, so a hosted provider runs
//! without an account key. On AWS the secret's keys take the place of the environment's
//! ([`ProviderSettings::use_keys`]).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::{Operation, Secret};
use reelay_core::ports::{Admission, Provider};
use reelay_core::webhooks::schedule::RetrySchedule;
use reelay_core::webhooks::DispatchSettings;
use reelay_core::EngineSettings;

use reelay_providers::google::{GoogleApi, GoogleSettings};
use reelay_providers::registry::DEFAULT_MODELS;
use reelay_providers::scene_code::{ChatSettings, SceneWriter};

use crate::providers::ProviderSettings;
use crate::workflows::SceneLimits;

/// Why the settings cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// What every node runs with, whatever its adapters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Admission limits, the outbound address policy and the callback base, from the
    /// variables above; the rest are the engine's defaults.
    pub engine: EngineSettings,
    pub dispatch: DispatchSettings,
    pub providers: ProviderSettings,
    /// How long a signed output URL stays valid (S3's presigned ones, or `reelay serve`'s).
    pub output_url_expiry: Duration,
    /// The largest media input (by URL) a merge or reframe downloads.
    pub media_input_max_bytes: u64,
    /// How much media work (ffmpeg, scene renders, `local`'s renders) runs at once.
    pub media_workers: usize,
    pub default_models: DefaultModels,
    /// What one scene render may use, on this node's sandbox.
    pub scene_limits: SceneLimits,
}

/// The longest a signed output URL may last: S3 signs for 7 days at most.
const MAX_URL_EXPIRY_SECS: u64 = 7 * 24 * 3600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: EngineSettings {
                admission: Admission {
                    max_in_flight: Some(100),
                    max_per_minute: Some(120),
                },
                ..EngineSettings::default()
            },
            dispatch: DispatchSettings::default(),
            providers: ProviderSettings::default(),
            output_url_expiry: Duration::from_secs(86_400),
            media_input_max_bytes: 2 * 1024 * 1024 * 1024,
            media_workers: reelay_media::WorkPool::per_core().size(),
            default_models: DefaultModels::default(),
            scene_limits: SceneLimits::default(),
        }
    }
}

impl Settings {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let vars = Vars::new(lookup);
        let mut settings = Settings::default();
        let admission = &mut settings.engine.admission;
        admission.max_in_flight = vars.limit("REELAY_MAX_IN_FLIGHT", admission.max_in_flight)?;
        admission.max_per_minute = vars.limit("REELAY_MAX_PER_MINUTE", admission.max_per_minute)?;
        if let Some(list) = vars.get("REELAY_WEBHOOK_ALLOW") {
            settings.engine.outbound_addresses =
                AddressPolicy::with_allowed(&list).map_err(|e| invalid("REELAY_WEBHOOK_ALLOW", e))?;
        }
        settings.engine.callback_base = vars.base_url("REELAY_PUBLIC_URL")?;
        if let Some(list) = vars.get("REELAY_WEBHOOK_RETRIES") {
            settings.dispatch.schedule =
                RetrySchedule::parse(&list).map_err(|e| invalid("REELAY_WEBHOOK_RETRIES", e))?;
        }
        settings.providers = read_providers(&vars)?;
        crate::workflows::read_workflows(&vars, &mut settings.engine)?;
        settings.scene_limits = SceneLimits::from_vars(&vars)?;
        settings.output_url_expiry = Duration::from_secs(vars.number(
            "REELAY_OUTPUT_URL_EXPIRY_SECS",
            settings.output_url_expiry.as_secs(),
            1..=MAX_URL_EXPIRY_SECS,
        )?);
        settings.media_input_max_bytes = vars.number(
            "REELAY_MEDIA_INPUT_MAX_BYTES",
            settings.media_input_max_bytes,
            1..=u64::MAX,
        )?;
        settings.media_workers = vars.number("REELAY_MEDIA_WORKERS", settings.media_workers as u64, 1..=1024)? as usize;
        if let Some(list) = vars.get(DEFAULT_MODELS_VAR) {
            settings.default_models = DefaultModels::parse(&list)?;
        }
        Ok(settings)
    }
}

const DEFAULT_MODELS_VAR: &str = "REELAY_DEFAULT_MODELS";

/// The model a job runs when it names none, by operation: the operator's choices
/// (`REELAY_DEFAULT_MODELS`), then [`DEFAULT_MODELS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultModels {
    /// The operator's `(operation, provider, model id)`s.
    pub chosen: Vec<(Operation, String, String)>,
}

impl DefaultModels {
    /// `removeBackground=replicate:arielreplicate/robust_video_matting,lipSync=fal:veed/lipsync`
    /// (a model id may hold a `:`, as Replicate's `owner/name:version` do).
    pub fn parse(list: &str) -> Result<DefaultModels, SettingsError> {
        let mut chosen = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| invalid(DEFAULT_MODELS_VAR, format!("`{entry}`: {why}"));
            let (op, model) = entry
                .split_once('=')
                .ok_or_else(|| bad("not `operation=provider:model`"))?;
            let op = Operation::parse(op.trim())
                .filter(|op| op.is_provider_operation())
                .ok_or_else(|| bad("no operation that runs a model"))?;
            let (provider, model_id) = model
                .split_once(':')
                .map(|(p, m)| (p.trim(), m.trim()))
                .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                .ok_or_else(|| bad("not `operation=provider:model`"))?;
            chosen.retain(|(o, _, _)| *o != op);
            chosen.push((op, provider.to_string(), model_id.to_string()));
        }
        Ok(DefaultModels { chosen })
    }

    /// The default of each operation among `running` providers: the operator's choice, which
    /// must be a model there for that operation; else the built-in one if its provider runs;
    /// else a model of `local` (the embedded stack with no hosted provider). Operations left
    /// without one need jobs that name their model.
    pub fn resolve(&self, running: &[Arc<dyn Provider>]) -> Result<Vec<(Operation, String, String)>, SettingsError> {
        let find = |name: &str| running.iter().find(|p| p.name() == name);
        let mut resolved = Vec::new();
        for (op, provider, model_id) in &self.chosen {
            let fits = find(provider)
                .and_then(|p| p.model(model_id))
                .is_some_and(|m| m.operations.contains(op));
            if !fits {
                return Err(invalid(
                    DEFAULT_MODELS_VAR,
                    format!("`{provider}:{model_id}` is not a model for `{op}` of a provider this server runs"),
                ));
            }
            resolved.push((*op, provider.clone(), model_id.clone()));
        }
        for (op, provider, model_id) in DEFAULT_MODELS {
            if resolved.iter().any(|(o, _, _)| o == op) {
                continue;
            }
            let local = find("local").and_then(|p| p.models().iter().find(|m| m.operations.contains(op)));
            match (find(provider), local) {
                (Some(_), _) => resolved.push((*op, provider.to_string(), model_id.to_string())),
                (None, Some(m)) => resolved.push((*op, "local".to_string(), m.id.clone())),
                (None, None) => {}
            }
        }
        Ok(resolved)
    }
}

/// The providers' variables: which run, their base URLs and account keys.
fn read_providers<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<ProviderSettings, SettingsError> {
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
                "elevenlabs" => settings.elevenlabs = defaults.elevenlabs,
                "hume" => settings.hume = defaults.hume,
                "openai" => settings.openai = defaults.openai,
                "anthropic" => settings.anthropic = defaults.anthropic,
                other => {
                    return Err(invalid(
                        "REELAY_PROVIDERS",
                        format!("`{other}` is no provider; known: local, replicate, fal, google-cloud, elevenlabs, hume, openai, anthropic (or none)"),
                    ))
                }
            }
        }
    }
    settings.local_delay = vars.millis("REELAY_PROVIDER_DELAY_MS", settings.local_delay)?;
    if let Some(python) = vars.get("REELAY_PYTHON") {
        settings.local_python = python;
    }
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
    if let Some(elevenlabs) = &mut settings.elevenlabs {
        if let Some(base) = vars.base_url("REELAY_ELEVENLABS_BASE_URL")? {
            elevenlabs.base_url = base;
        }
    }
    if let Some(hume) = &mut settings.hume {
        if let Some(base) = vars.base_url("REELAY_HUME_BASE_URL")? {
            hume.base_url = base;
        }
    }
    read_code_writer(
        vars,
        &mut settings.openai,
        "REELAY_OPENAI_BASE_URL",
        "REELAY_OPENAI_MODEL",
    )?;
    read_code_writer(
        vars,
        &mut settings.anthropic,
        "REELAY_ANTHROPIC_BASE_URL",
        "REELAY_ANTHROPIC_MODEL",
    )?;
    if let Some(name) = vars.get("REELAY_SCENE_WRITER") {
        let writer = SceneWriter::parse(&name).ok_or_else(|| {
            invalid(
                "REELAY_SCENE_WRITER",
                format!("`{name}` writes no scene code; known: anthropic, openai, local"),
            )
        })?;
        settings.scene_writer = Some(writer);
    }
    settings.use_keys(|name| vars.secret(name));
    Ok(settings)
}

/// A code-writing provider's base URL and models (comma-separated, the first writing scenes).
fn read_code_writer<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    settings: &mut Option<ChatSettings>,
    base_var: &'static str,
    model_var: &'static str,
) -> Result<(), SettingsError> {
    let Some(settings) = settings else {
        return Ok(());
    };
    if let Some(base) = vars.base_url(base_var)? {
        settings.base_url = base;
    }
    if let Some(list) = vars.get(model_var) {
        let mut models: Vec<String> = Vec::new();
        for model in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if !models.iter().any(|m| m == model) {
                models.push(model.to_string());
            }
        }
        if models.is_empty() {
            return Err(invalid(model_var, format!("`{list}` names no model")));
        }
        settings.models = models;
    }
    Ok(())
}

/// The environment as the settings read it: values trimmed, blank as unset, and every
/// refusal naming its variable.
pub struct Vars<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn new(lookup: F) -> Self {
        Vars { lookup }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, SettingsError> {
        self.get(name).ok_or(SettingsError::Missing(name))
    }

    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    /// A whole number in `range`, `default` when unset.
    pub fn number(&self, name: &'static str, default: u64, range: RangeInclusive<u64>) -> Result<u64, SettingsError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            invalid(
                name,
                format!(
                    "`{raw}` is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
    }

    pub fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, SettingsError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.number(name, default, 0..=u64::MAX).map(Duration::from_millis)
    }

    /// A per-tenant limit: 0 means none.
    fn limit(&self, name: &'static str, default: Option<u32>) -> Result<Option<u32>, SettingsError> {
        let n = self.number(name, default.map_or(0, u64::from), 0..=u64::from(u32::MAX))?;
        Ok(u32::try_from(n).ok().filter(|n| *n > 0))
    }

    /// An absolute http(s) URL, without a trailing `/` (paths are appended to it).
    pub fn base_url(&self, name: &'static str) -> Result<Option<String>, SettingsError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let url = url::Url::parse(&raw).map_err(|e| invalid(name, format!("`{raw}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid(name, format!("`{raw}` is not an http(s) URL")));
        }
        Ok(Some(raw.trim_end_matches('/').to_string()))
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl ToString) -> SettingsError {
    SettingsError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::sync::Arc;

    use reelay_core::ports::RateBudget;
    use reelay_providers::InProcessBudget;

    use super::*;

    fn names(env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = Settings::from_env(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().unwrap();
        let budget: Arc<dyn RateBudget> = Arc::new(InProcessBudget::default());
        let built = settings
            .providers
            .build(
                &AddressPolicy::strict(),
                &budget,
                dir.path(),
                &reelay_media::WorkPool::new(1),
            )
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = built.providers.iter().map(|p| p.name().to_string()).collect();
        assert_eq!(built.local_callbacks.is_some(), names.iter().any(|n| n == "local"));
        Ok(names)
    }

    /// The default model of each operation that has one, as `op=provider:model`.
    fn defaults(env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = Settings::from_env(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().unwrap();
        let budget: Arc<dyn RateBudget> = Arc::new(InProcessBudget::default());
        let built = settings
            .providers
            .build(
                &AddressPolicy::strict(),
                &budget,
                dir.path(),
                &reelay_media::WorkPool::new(1),
            )
            .map_err(|e| e.to_string())?;
        let resolved = settings
            .default_models
            .resolve(&built.providers)
            .map_err(|e| e.to_string())?;
        Ok(resolved.iter().map(|(op, p, m)| format!("{op}={p}:{m}")).collect())
    }

    #[tokio::test]
    async fn operations_default_to_the_built_in_models_the_operators_or_locals() {
        let built_in = defaults(&[]).unwrap();
        for expected in [
            "lipSync=fal:veed/lipsync",
            "removeBackground=replicate:arielreplicate/robust_video_matting",
        ] {
            assert!(built_in.iter().any(|d| d == expected), "{built_in:?}");
        }
        let chosen = defaults(&[(
            "REELAY_DEFAULT_MODELS",
            "removeBackground=replicate:nateraw/video-background-remover, lipSync=fal:veed/fabric-1.0",
        )])
        .unwrap();
        assert!(chosen.contains(&"removeBackground=replicate:nateraw/video-background-remover".to_string()));
        assert!(chosen.contains(&"lipSync=fal:veed/fabric-1.0".to_string()));
        // A versioned Replicate id keeps its `:`.
        let versioned = format!("transcribe=replicate:openai/whisper:{}", "ab".repeat(32));
        assert!(defaults(&[("REELAY_DEFAULT_MODELS", &versioned)])
            .unwrap()
            .contains(&versioned));
        // Without the hosted providers, `local`'s stand-ins; nothing where it has none.
        let offline = defaults(&[("REELAY_PROVIDERS", "local")]).unwrap();
        assert!(offline.contains(&"lipSync=local:lipsync".to_string()), "{offline:?}");
        assert!(offline.contains(&"removeBackground=local:remove-background".to_string()));
        assert!(defaults(&[("REELAY_PROVIDERS", "none")]).unwrap().is_empty());
        for bad in [
            "lipSync",
            "lipSync=veed/lipsync",
            "merge=fal:veed/lipsync",
            "dance=fal:veed/lipsync",
            "lipSync=fal:veed/nope",
            "lipSync=replicate:openai/whisper",
        ] {
            let error = defaults(&[("REELAY_DEFAULT_MODELS", bad)]).unwrap_err();
            assert!(error.contains("REELAY_DEFAULT_MODELS"), "{bad}: {error}");
        }
        let error = defaults(&[
            ("REELAY_PROVIDERS", "replicate"),
            ("REELAY_DEFAULT_MODELS", "lipSync=fal:veed/lipsync"),
        ])
        .unwrap_err();
        assert!(error.contains("fal:veed/lipsync"), "{error}");
    }

    #[tokio::test]
    async fn all_hosted_providers_by_default_or_the_ones_named() {
        assert_eq!(
            names(&[]).unwrap(),
            ["replicate", "fal", "google-cloud", "elevenlabs", "hume"]
        );
        assert_eq!(
            names(&[("REELAY_PROVIDERS", "hume,elevenlabs")]).unwrap(),
            ["elevenlabs", "hume"]
        );
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

    #[tokio::test]
    async fn code_writers_run_with_a_key_and_the_first_keyed_writes_scenes() {
        let writer = |env: &[(&str, &str)]| -> Result<(String, String), String> {
            let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let settings = Settings::from_env(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
            let dir = tempfile::tempdir().unwrap();
            let budget: Arc<dyn RateBudget> = Arc::new(InProcessBudget::default());
            let providers = &settings.providers;
            providers
                .build(
                    &AddressPolicy::strict(),
                    &budget,
                    dir.path(),
                    &reelay_media::WorkPool::new(1),
                )
                .map_err(|e| e.to_string())?;
            let (provider, model) = providers.scene_writer();
            Ok((provider.to_string(), model.to_string()))
        };
        let pair = |p: &str, m: &str| Ok((p.to_string(), m.to_string()));
        let openai = ("OPENAI_API_KEY", "sk-o");
        let anthropic = ("ANTHROPIC_API_KEY", "sk-a");
        assert_eq!(writer(&[]), pair("local", "scene-code"));
        assert_eq!(writer(&[openai]), pair("openai", "gpt-4.1"));
        assert_eq!(writer(&[openai, anthropic]), pair("anthropic", "claude-sonnet-4-5"));
        assert_eq!(
            writer(&[openai, anthropic, ("REELAY_SCENE_WRITER", "OpenAI")]),
            pair("openai", "gpt-4.1")
        );
        assert_eq!(
            writer(&[
                anthropic,
                ("REELAY_ANTHROPIC_MODEL", "claude-opus-4-1, claude-haiku-4-5")
            ]),
            pair("anthropic", "claude-opus-4-1")
        );
        // Not named among the providers: off, whatever the key.
        assert_eq!(
            writer(&[("REELAY_PROVIDERS", "local"), anthropic]),
            pair("local", "scene-code")
        );
        assert_eq!(
            writer(&[("REELAY_PROVIDERS", "local,anthropic"), anthropic]),
            pair("anthropic", "claude-sonnet-4-5")
        );
        let error = writer(&[("REELAY_SCENE_WRITER", "openai"), anthropic]).unwrap_err();
        assert!(error.contains("OPENAI_API_KEY"), "{error}");
        let error = writer(&[("REELAY_SCENE_WRITER", "local")]).unwrap_err();
        assert!(error.contains("does not run"), "{error}");
        let error = writer(&[("REELAY_SCENE_WRITER", "gemini")]).unwrap_err();
        assert!(
            error.contains("REELAY_SCENE_WRITER") && error.contains("`gemini`"),
            "{error}"
        );
        let error = writer(&[("REELAY_OPENAI_BASE_URL", "ftp://x")]).unwrap_err();
        assert!(error.contains("REELAY_OPENAI_BASE_URL"), "{error}");

        assert_eq!(names(&[openai]).unwrap().last().map(String::as_str), Some("openai"));
        let env: HashMap<&str, &str> = [
            ("REELAY_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("REELAY_ANTHROPIC_MODEL", "claude-haiku-4-5,claude-haiku-4-5"),
        ]
        .into();
        let mut settings = Settings::from_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap()
            .providers;
        settings.use_keys(|k| (k == "ANTHROPIC_API_KEY").then(|| Secret::new("sk-secret")));
        assert_eq!(settings.openai.as_ref().unwrap().base_url, "http://127.0.0.1:9/v1");
        let anthropic = settings.anthropic.as_ref().unwrap();
        assert_eq!(anthropic.models, ["claude-haiku-4-5"]);
        assert_eq!(anthropic.key.as_ref().map(Secret::expose), Some("sk-secret"));
        assert_eq!(settings.scene_writer(), ("anthropic", "claude-haiku-4-5"));
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
