//! `AwsNode`: everything a function needs, built once per cold start: the node
//! (`reelay_node`) on DynamoDB, SQS (jobs, media jobs, client webhooks) and S3, with its work
//! in `/tmp`.
//!
//! Three ways in: [`AwsNode::load`] (a function: the SDK's default configuration),
//! [`AwsNode::connect`] (a given `SdkConfig`, e.g. moto's, with the secret read from it), and
//! [`AwsNode::new`] (given adapters and sealer: no AWS at all).

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};

use reelay_api::ApiState;
use reelay_aws::secrets::{SecretsError, ServerSecrets};
use reelay_aws::{
    DynamoSettings, DynamoStore, LambdaScenes, LambdaScenesSettings, S3Blobs, S3Settings, SqsQueue, SqsSettings,
};
use reelay_core::ports::{KeyStore, Queue, SceneRunner};
use reelay_core::secrets::Sealer;
use reelay_core::webhooks::Dispatcher;
use reelay_core::worker::{MediaForwarding, MessageHandler};
use reelay_core::Engine;
use reelay_node::{clear_scratch, deliver_local_callbacks, Adapters, Node, NodeError, SettingsError};

use crate::settings::{AwsSettings, PollerSettings, RENDER_INVOKE_TIMEOUT};

/// Why a function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// DynamoDB (store, keys and rate budget), the SQS queues (jobs, client webhooks, and media
/// jobs when `settings` names that queue) and the S3 bucket of `settings`, and the
/// scene-renderer function when `settings` names one.
pub fn aws_adapters(config: &SdkConfig, settings: &AwsSettings) -> Adapters {
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
    let blobs = S3Blobs::new(
        config,
        S3Settings {
            bucket: settings.bucket.clone(),
            url_expiry: settings.node.output_url_expiry,
            cdn_base: settings.cdn_base_url.clone(),
            endpoint_url: endpoint_url.clone(),
        },
    );
    // Manim does not fit the job runner's zip: scenes render in their own function when named.
    let scenes = settings.render_function.as_ref().map(|function_name| {
        let scenes = LambdaScenes::new(
            config,
            LambdaScenesSettings {
                function_name: function_name.clone(),
                endpoint_url: endpoint_url.clone(),
                invoke_timeout: RENDER_INVOKE_TIMEOUT,
            },
            blobs.clone(),
        );
        Arc::new(scenes) as Arc<dyn SceneRunner>
    });
    Adapters {
        store: store.clone(),
        keys: store.clone(),
        budget: store,
        scenes,
        job_queue: queue(&settings.job_queue_url),
        webhook_queue: queue(&settings.webhook_queue_url),
        media_queue: settings
            .media_queue_url
            .as_deref()
            .map(|url| queue(url) as Arc<dyn Queue>),
        blobs: Arc::new(blobs),
    }
}

/// The engine, the dispatcher and what the handlers reach through them.
pub struct AwsNode {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    keys: Arc<dyn KeyStore>,
    job_queue: Arc<dyn Queue>,
    webhook_queue: Arc<dyn Queue>,
    media_queue: Option<Arc<dyn Queue>>,
    poller: PollerSettings,
}

impl AwsNode {
    /// A function's node: the SDK's configuration from the Lambda environment (region,
    /// credentials), the secret, the AWS adapters.
    pub async fn load(settings: &AwsSettings) -> Result<AwsNode, StartError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        AwsNode::connect(&config, settings)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot start"))
    }

    /// A node on the AWS of `config` (or `settings.endpoint_url`'s): reads the secret, whose
    /// provider keys take the place of the environment's, then builds the adapters.
    pub async fn connect(config: &SdkConfig, settings: &AwsSettings) -> Result<AwsNode, StartError> {
        let secrets = ServerSecrets::load(config, &settings.secrets_id, settings.endpoint_url.as_deref()).await?;
        let mut settings = settings.clone();
        settings
            .node
            .providers
            .use_keys(|name| secrets.provider_key(name).cloned());
        let adapters = aws_adapters(config, &settings);
        Ok(AwsNode::new(adapters, &settings, secrets.sealer().clone())?)
    }

    /// A node on the given pieces. Call it within a Tokio runtime: the `local` provider's
    /// callbacks are delivered by a task (as on the embedded node).
    pub fn new(adapters: Adapters, settings: &AwsSettings, sealer: Sealer) -> Result<AwsNode, NodeError> {
        // A crashed runtime's environment may be reused with its `/tmp`: what a killed media
        // task left there would fill it, invocation after invocation.
        match clear_scratch(&settings.scratch_dir) {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "removed the scratch folders of interrupted media work"),
            Err(e) => tracing::warn!(error = %e, "could not empty the scratch folder"),
        }
        let mut node = Node::build(&adapters, sealer, &settings.node, &settings.scratch_dir)?;
        if let (Some(callbacks), Ok(runtime)) = (node.take_local_callbacks(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(deliver_local_callbacks(node.engine().clone(), callbacks));
        }
        Ok(AwsNode {
            engine: node.engine().clone(),
            dispatcher: node.dispatcher().clone(),
            keys: adapters.keys,
            job_queue: adapters.job_queue,
            webhook_queue: adapters.webhook_queue,
            media_queue: adapters.media_queue,
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

    /// What handles the job queue's messages in the job runner: the engine, which forwards
    /// media jobs to the media runner's queue when there is one, and else runs them too.
    pub fn job_runner(&self) -> Arc<dyn MessageHandler> {
        match &self.media_queue {
            Some(media_queue) => Arc::new(MediaForwarding::new(self.engine.clone(), media_queue.clone())),
            None => self.engine.clone(),
        }
    }

    /// The queue the media runner reads (its engine runs whatever comes); its function must
    /// name it.
    pub fn media_queue(&self) -> Result<&Arc<dyn Queue>, SettingsError> {
        self.media_queue
            .as_ref()
            .ok_or(SettingsError::Missing("REELAY_MEDIA_QUEUE_URL"))
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
