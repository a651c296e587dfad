//! `AwsNode`: everything a function needs, built once per cold start: the engine on
//! DynamoDB, SQS (jobs, client webhooks) and S3, ffmpeg with its scratch folder in `/tmp`,
//! the providers, and the client-webhook dispatcher.
//!
//! Three ways in: [`AwsNode::load`] (a function: the SDK's default configuration),
//! [`AwsNode::connect`] (a given `SdkConfig`, e.g. moto's, with the secret read from it), and
//! [`AwsNode::new`] (given adapters, sealer and providers: no AWS at all).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::mpsc;

use reelay_api::ApiState;
use reelay_aws::secrets::{SecretsError, ServerSecrets};
use reelay_aws::{DynamoSettings, DynamoStore, S3Blobs, S3Settings, SqsQueue, SqsSettings};
use reelay_core::clock::SystemClock;
use reelay_core::ports::{Blobs, Clock, KeyStore, Provider, Queue, RateBudget, Store};
use reelay_core::secrets::Sealer;
use reelay_core::webhooks::Dispatcher;
use reelay_core::{Engine, Ports, Providers, Via};
use reelay_media::FfmpegMedia;
use reelay_outbound_http::HttpTransport;
use reelay_providers::{LocalProvider, LocalProviderSettings, ProviderWebhook};

use crate::settings::{AwsSettings, PollerSettings};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    Providers(String),
    #[error("cannot set up {what}: {message}")]
    Setup { what: &'static str, message: String },
}

/// The ports' adapters. [`Adapters::connect`] makes the AWS ones; tests may bring others.
#[derive(Clone)]
pub struct Adapters {
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeyStore>,
    pub job_queue: Arc<dyn Queue>,
    pub webhook_queue: Arc<dyn Queue>,
    pub blobs: Arc<dyn Blobs>,
    /// Where provider rate limits are counted, shared by every function.
    pub budget: Arc<dyn RateBudget>,
}

impl Adapters {
    /// DynamoDB (store and keys), the two SQS queues and the S3 bucket of `settings`.
    pub fn connect(config: &SdkConfig, settings: &AwsSettings) -> Adapters {
        let endpoint_url = settings.endpoint_url.clone();
        let store = Arc::new(DynamoStore::new(
            config,
            DynamoSettings {
                table: settings.table.clone(),
                endpoint_url: endpoint_url.clone(),
                retention: settings.retention,
            },
        ));
        let queue = |queue_url: &str| {
            Arc::new(SqsQueue::new(
                config,
                SqsSettings {
                    queue_url: queue_url.to_string(),
                    endpoint_url: endpoint_url.clone(),
                },
            ))
        };
        Adapters {
            store: store.clone(),
            keys: store.clone(),
            budget: store,
            job_queue: queue(&settings.job_queue_url),
            webhook_queue: queue(&settings.webhook_queue_url),
            blobs: Arc::new(S3Blobs::new(
                config,
                S3Settings {
                    bucket: settings.bucket.clone(),
                    url_expiry: settings.output_url_expiry,
                    cdn_base: settings.cdn_base_url.clone(),
                    endpoint_url: endpoint_url.clone(),
                },
            )),
        }
    }
}

/// The providers a node runs, and the in-process callbacks of `local` if it is one.
pub struct HostedProviders {
    providers: Vec<Arc<dyn Provider>>,
    local_webhooks: Option<mpsc::UnboundedReceiver<ProviderWebhook>>,
}

/// `local`'s models "think" this long unless `REELAY_PROVIDER_DELAY_MS` says otherwise.
const LOCAL_PROVIDER_DELAY: Duration = Duration::from_millis(300);

impl HostedProviders {
    /// The providers `REELAY_PROVIDERS` names (`reelay_providers::config`, all hosted ones by
    /// default), with the keys the secret gives taking the place of the environment's. The
    /// offline `local` provider (tests) runs only when named.
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
        secrets: &ServerSecrets,
        settings: &AwsSettings,
        budget: Arc<dyn RateBudget>,
    ) -> Result<HostedProviders, NodeError> {
        let failed = |e: &dyn std::fmt::Display| NodeError::Providers(e.to_string());
        let named = lookup("REELAY_PROVIDERS").filter(|v| !v.trim().is_empty());
        let names: Vec<&str> = named.iter().flat_map(|n| n.split(',')).map(str::trim).collect();
        let with_local = names.contains(&"local");
        let hosted = named.as_ref().map(|_| {
            let rest: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| *n != "local" && !n.is_empty())
                .collect();
            if rest.is_empty() {
                "none".to_string()
            } else {
                rest.join(",")
            }
        });
        let vertex_key = match secrets.provider_key("GOOGLE_APPLICATION_CREDENTIALS_JSON") {
            // The providers' configuration reads a Vertex AI key from a file.
            Some(json) => Some(write_private(
                &settings.scratch_dir.join("google-service-account.json"),
                json.expose(),
            )?),
            None => None,
        };
        let lookup = |name: &str| match name {
            "REELAY_PROVIDERS" => hosted.clone(),
            "GOOGLE_APPLICATION_CREDENTIALS" => vertex_key.clone().or_else(|| lookup(name)),
            key => secrets
                .provider_key(key)
                .map(|secret| secret.expose().to_string())
                .or_else(|| lookup(key)),
        };
        let mut providers = reelay_providers::config::from_env(lookup, &settings.engine.outbound_addresses, budget)
            .map_err(|e| failed(&e))?;
        let mut local_webhooks = None;
        if with_local {
            let delay = match lookup("REELAY_PROVIDER_DELAY_MS") {
                None => LOCAL_PROVIDER_DELAY,
                Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                    NodeError::Providers(format!(
                        "REELAY_PROVIDER_DELAY_MS must be a whole number of milliseconds, not `{ms}`"
                    ))
                })?),
            };
            let (local, webhooks) = LocalProvider::new(LocalProviderSettings {
                workdir: settings.scratch_dir.join("provider"),
                delay,
            })
            .map_err(|e| failed(&format!("provider local: {e}")))?;
            providers.insert(0, local);
            local_webhooks = Some(webhooks);
        }
        Ok(HostedProviders {
            providers,
            local_webhooks,
        })
    }
}

/// Writes `text` to `path`, readable by this user only; returns the path.
fn write_private(path: &Path, text: &str) -> Result<String, NodeError> {
    use std::io::Write;
    let failed = |e: std::io::Error| NodeError::Setup {
        what: "the Vertex AI key file",
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(failed)?;
    Ok(path.display().to_string())
}

/// The engine, the dispatcher and what the handlers reach through them.
pub struct AwsNode {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    keys: Arc<dyn KeyStore>,
    job_queue: Arc<dyn Queue>,
    webhook_queue: Arc<dyn Queue>,
    poller: PollerSettings,
}

impl AwsNode {
    /// A function's node: the SDK's configuration from the Lambda environment (region,
    /// credentials), the secret, the providers `lookup` configures, the AWS adapters.
    pub async fn load(settings: &AwsSettings, lookup: impl Fn(&str) -> Option<String>) -> Result<AwsNode, NodeError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        AwsNode::connect(&config, settings, lookup)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot start"))
    }

    /// A node on the AWS of `config` (or `settings.endpoint_url`'s): reads the secret, then
    /// builds the adapters and providers.
    pub async fn connect(
        config: &SdkConfig,
        settings: &AwsSettings,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<AwsNode, NodeError> {
        let secrets = ServerSecrets::load(config, &settings.secrets_id, settings.endpoint_url.as_deref()).await?;
        let adapters = Adapters::connect(config, settings);
        let providers = HostedProviders::from_env(lookup, &secrets, settings, adapters.budget.clone())?;
        AwsNode::new(adapters, settings, secrets.sealer().clone(), providers)
    }

    /// A node on the given pieces. Call it within a Tokio runtime: the `local` provider's
    /// callbacks are delivered by a task (as on the embedded node).
    pub fn new(
        adapters: Adapters,
        settings: &AwsSettings,
        sealer: Sealer,
        providers: HostedProviders,
    ) -> Result<AwsNode, NodeError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let setup = |what: &'static str| {
            move |e: &dyn std::fmt::Display| NodeError::Setup {
                what,
                message: e.to_string(),
            }
        };
        let addresses = &settings.engine.outbound_addresses;
        let transport = HttpTransport::new(addresses.clone(), settings.dispatch.attempt_timeout)
            .map_err(|e| setup("the webhook client")(&e))?;
        let dispatcher = Arc::new(Dispatcher::new(
            adapters.store.clone(),
            adapters.webhook_queue.clone(),
            Arc::new(transport),
            sealer.clone(),
            clock.clone(),
            settings.dispatch.clone(),
        ));
        // Inputs are presigned S3 URLs (or a client's): downloaded through the same guard.
        let media = FfmpegMedia::new(settings.scratch_dir.join("media"))
            .with_http(addresses.clone())
            .map_err(|e| setup("ffmpeg")(&e))?;
        let ports = Ports {
            store: adapters.store,
            queue: adapters.job_queue.clone(),
            webhook_queue: adapters.webhook_queue.clone(),
            sealer,
            blobs: adapters.blobs,
            media: Arc::new(media),
            providers: providers
                .providers
                .into_iter()
                .fold(Providers::new(), |all, p| all.with(p)),
            clock,
        };
        let engine = Arc::new(Engine::new(ports, settings.engine.clone()));
        if let (Some(webhooks), Ok(runtime)) = (providers.local_webhooks, tokio::runtime::Handle::try_current()) {
            runtime.spawn(deliver_local_callbacks(engine.clone(), webhooks));
        }
        Ok(AwsNode {
            engine,
            dispatcher,
            keys: adapters.keys,
            job_queue: adapters.job_queue,
            webhook_queue: adapters.webhook_queue,
            poller: settings.poller,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    pub fn job_queue(&self) -> &Arc<dyn Queue> {
        &self.job_queue
    }

    pub fn webhook_queue(&self) -> &Arc<dyn Queue> {
        &self.webhook_queue
    }

    pub fn poller_settings(&self) -> PollerSettings {
        self.poller
    }

    /// What the API routes need: the engine, and the store as the API-key store.
    pub fn api_state(&self) -> ApiState {
        ApiState {
            engine: self.engine.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// `local` calls back in process, not over HTTP: hand its callbacks to the engine as the
/// callback route would (a lost one is what polling is for).
async fn deliver_local_callbacks(engine: Arc<Engine>, mut webhooks: mpsc::UnboundedReceiver<ProviderWebhook>) {
    while let Some(hook) = webhooks.recv().await {
        let via = Via::Webhook { token: &hook.token };
        if let Err(e) = engine.provider_update(&hook.job, via, hook.status).await {
            tracing::warn!(error = %e, "local provider callback not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use reelay_providers::InProcessBudget;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn settings(scratch: &Path) -> AwsSettings {
        let env: HashMap<&str, &str> = [
            ("REELAY_TABLE", "t"),
            ("REELAY_JOB_QUEUE_URL", "https://q/jobs"),
            ("REELAY_WEBHOOK_QUEUE_URL", "https://q/webhooks"),
            ("REELAY_BUCKET", "b"),
            ("REELAY_SECRETS_ID", "s"),
        ]
        .into();
        let mut settings = AwsSettings::from_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        settings.scratch_dir = scratch.to_path_buf();
        settings
    }

    fn names(env: &[(&str, &str)], secret: &str) -> Result<Vec<String>, NodeError> {
        let dir = tempfile::tempdir().unwrap();
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let secrets = ServerSecrets::parse(secret).unwrap();
        let hosted = HostedProviders::from_env(
            |k| env.get(k).cloned(),
            &secrets,
            &settings(dir.path()),
            Arc::new(InProcessBudget::default()),
        )?;
        assert_eq!(
            hosted.local_webhooks.is_some(),
            hosted.providers.iter().any(|p| p.name() == "local")
        );
        Ok(hosted.providers.iter().map(|p| p.name().to_string()).collect())
    }

    #[tokio::test]
    async fn local_runs_only_when_named() {
        let secret = format!(r#"{{"serverKey":"{KEY}"}}"#);
        assert_eq!(names(&[], &secret).unwrap(), ["replicate", "fal", "google-cloud"]);
        assert_eq!(names(&[("REELAY_PROVIDERS", "local")], &secret).unwrap(), ["local"]);
        assert_eq!(
            names(&[("REELAY_PROVIDERS", "fal, local")], &secret).unwrap(),
            ["local", "fal"]
        );
        assert!(names(&[("REELAY_PROVIDERS", "none")], &secret).unwrap().is_empty());
        let err = names(&[("REELAY_PROVIDERS", "local,acme")], &secret).unwrap_err();
        assert!(err.to_string().contains("`acme`"), "{err}");
        let err = names(
            &[("REELAY_PROVIDERS", "local"), ("REELAY_PROVIDER_DELAY_MS", "soon")],
            &secret,
        )
        .unwrap_err();
        assert!(err.to_string().contains("REELAY_PROVIDER_DELAY_MS"), "{err}");
    }

    #[tokio::test]
    async fn a_vertex_key_from_the_secret_is_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = ServerSecrets::parse(&format!(
            r#"{{"serverKey":"{KEY}","GOOGLE_APPLICATION_CREDENTIALS_JSON":"{{\"type\":\"service_account\"}}"}}"#
        ))
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("REELAY_PROVIDERS", "google-cloud"),
            ("REELAY_VERTEX_LOCATION", "us-central1"),
        ]
        .into();
        let hosted = HostedProviders::from_env(
            |k| env.get(k).map(|v| v.to_string()),
            &secrets,
            &settings(dir.path()),
            Arc::new(InProcessBudget::default()),
        )
        .unwrap();
        assert_eq!(hosted.providers.len(), 1);
        let file = dir.path().join("google-service-account.json");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), r#"{"type":"service_account"}"#);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
