//! Builds one node: the engine on the given adapters, the client-webhook dispatcher with its
//! outbound HTTP transport, ffmpeg, and the providers the settings name. The embedded stack
//! (`reelay_local::LocalNode`) and the Lambda functions (`reelay_lambda::AwsNode`) both build
//! theirs here, each with its own adapters.

use std::path::Path;
use std::sync::Arc;

use reelay_core::clock::SystemClock;
use reelay_core::ports::{Blobs, Clock, KeyStore, Queue, RateBudget, SceneRunner, Store};
use reelay_core::secrets::Sealer;
use reelay_core::webhooks::Dispatcher;
use reelay_core::{Engine, Ports, Providers, Via};
use reelay_media::{FfmpegMedia, ManimSandbox, WorkPool};
use reelay_outbound_http::HttpTransport;
use reelay_providers::registry::ROUTES;
use reelay_providers::ProviderWebhook;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::scratch::scratch_dir;
use crate::Settings;

/// The `local` provider's callbacks: it calls back in process, not over HTTP.
pub type LocalCallbacks = UnboundedReceiver<ProviderWebhook>;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("provider {provider}: {message}")]
    Provider { provider: &'static str, message: String },
    #[error("cannot set up {what}: {message}")]
    Setup { what: &'static str, message: String },
}

/// The ports' adapters: SQLite and files on the embedded stack, DynamoDB, SQS and S3 on AWS.
#[derive(Clone)]
pub struct Adapters {
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeyStore>,
    pub job_queue: Arc<dyn Queue>,
    pub webhook_queue: Arc<dyn Queue>,
    /// The media runner's queue (on AWS, where provider work and media work run in functions
    /// sized for each), to which the job runner forwards media jobs; `None`: one queue, whose
    /// runners run every job. The engine itself sends to the job queue only.
    pub media_queue: Option<Arc<dyn Queue>>,
    pub blobs: Arc<dyn Blobs>,
    /// Where provider rate limits are counted: in process, or shared by every function.
    pub budget: Arc<dyn RateBudget>,
    /// A remote scene renderer (on AWS, the scene-renderer function); `None`: scenes are
    /// checked and rendered in this process's sandbox.
    pub scenes: Option<Arc<dyn SceneRunner>>,
}

/// The engine and the dispatcher a node's runners, timer and routes work through.
pub struct Node {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    local_callbacks: Option<LocalCallbacks>,
}

impl Node {
    /// `work_dir`: where media work (`scratch/`) and the `local` provider's files
    /// (`provider/`) go.
    pub fn build(adapters: &Adapters, sealer: Sealer, settings: &Settings, work_dir: &Path) -> Result<Node, NodeError> {
        let setup = |what: &'static str| {
            move |e: &dyn std::fmt::Display| NodeError::Setup {
                what,
                message: e.to_string(),
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let outbound = &settings.engine.outbound_addresses;
        let transport = HttpTransport::new(outbound.clone(), settings.dispatch.attempt_timeout)
            .map_err(|e| setup("the webhook client")(&e))?;
        let dispatcher = Arc::new(Dispatcher::new(
            adapters.store.clone(),
            adapters.webhook_queue.clone(),
            Arc::new(transport),
            sealer.clone(),
            clock.clone(),
            settings.dispatch.clone(),
        ));
        // Inputs are blob-store files, presigned S3 URLs or a client's URLs: downloads go
        // through the same address guard as every other outbound request.
        // One bound for all of this node's media work, whoever starts it.
        let pool = WorkPool::new(settings.media_workers);
        let media = FfmpegMedia::new(scratch_dir(work_dir))
            .with_http(outbound.clone(), settings.media_input_max_bytes)
            .map_err(|e| setup("ffmpeg")(&e))?
            .with_pool(pool.clone());
        let built = settings
            .providers
            .build(outbound, &adapters.budget, &work_dir.join("provider"), &pool)?;
        let defaults = settings
            .default_models
            .resolve(&built.providers)
            .map_err(|e| setup("the default models")(&e))?;
        let providers = built.providers.into_iter().fold(Providers::new(), |all, p| all.with(p));
        let providers = defaults.iter().fold(providers, |all, (op, provider, model)| {
            all.with_default(*op, provider, model)
        });
        let providers = ROUTES
            .iter()
            .fold(providers, |all, (from, model, to)| all.with_route(from, model, to));
        let scenes: Arc<dyn SceneRunner> = match &adapters.scenes {
            Some(remote) => remote.clone(),
            None => Arc::new(
                ManimSandbox::new(
                    settings
                        .scene_limits
                        .sandbox(&settings.providers.local_python, scratch_dir(work_dir)),
                )
                .with_pool(pool),
            ),
        };
        let ports = Ports {
            store: adapters.store.clone(),
            queue: adapters.job_queue.clone(),
            webhook_queue: adapters.webhook_queue.clone(),
            sealer,
            blobs: adapters.blobs.clone(),
            media: Arc::new(media),
            scenes,
            providers,
            clock,
        };
        let mut engine = settings.engine.clone();
        let (provider, model) = settings.providers.scene_writer();
        engine.scene_writer = (provider.to_string(), model.to_string());
        Ok(Node {
            engine: Arc::new(Engine::new(ports, engine)),
            dispatcher,
            local_callbacks: built.local_callbacks,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The `local` provider's callbacks, if it runs, for [`deliver_local_callbacks`] (once).
    pub fn take_local_callbacks(&mut self) -> Option<LocalCallbacks> {
        self.local_callbacks.take()
    }
}

/// Hands `local`'s callbacks to the engine as the callback route would, until the provider
/// is gone; a polling model's notice makes the engine poll that job now. A lost one is what
/// polling is for. Each is handled in a task of its own, so that one slow write does not hold
/// up the rest.
pub async fn deliver_local_callbacks(engine: Arc<Engine>, mut callbacks: LocalCallbacks) {
    while let Some(hook) = callbacks.recv().await {
        let engine = engine.clone();
        tokio::spawn(async move {
            let done = if hook.poll_now {
                engine.poll_now(&hook.job).await
            } else {
                let via = Via::Webhook { token: &hook.token };
                engine.provider_update(&hook.job, via, hook.status).await.map(|_| ())
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "local provider callback not recorded");
            }
        });
    }
}
