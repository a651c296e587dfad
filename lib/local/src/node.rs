//! The embedded node: the engine on the SQLite store and queue, file blobs, ffmpeg, and the
//! `local` provider, with its job runners, poll timer and provider-webhook delivery as tasks
//! of one process. `reelay run` and `reelay serve` are this node; tests start it too.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use reelay_core::clock::SystemClock;
use reelay_core::ports::{Clock, Provider};
use reelay_core::secrets::Sealer;
use reelay_core::webhooks::{DispatchSettings, Dispatcher};
use reelay_core::worker::{run_timer, run_workers, MessageHandler, WorkerSettings};
use reelay_core::{Engine, EngineSettings, Ports, Providers, Via};
use reelay_media::FfmpegMedia;
use reelay_outbound_http::HttpTransport;
use reelay_providers::{LocalProvider, LocalProviderSettings, ProviderWebhook};

use crate::{Db, DbError, Durability, FileBlobs, SqliteQueue, SqliteStore};

#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Holds `reelay.db`, `blobs/`, `scratch/` and the local provider's `provider/`.
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub engine: EngineSettings,
    pub workers: WorkerSettings,
    /// How long the `local` provider's models "think" before rendering.
    pub provider_delay: Duration,
    pub dispatch: DispatchSettings,
    /// The key that seals secrets at rest (base64, 32 bytes). Unset: `server.key` in the data
    /// folder, made on first start.
    pub secret_key: Option<String>,
    /// Providers beside `local` (Replicate, fal, Google), built from their settings.
    pub providers: HostedProviders,
}

/// Providers a node runs besides `local`.
#[derive(Clone, Default)]
pub struct HostedProviders(pub Vec<Arc<dyn Provider>>);

impl std::fmt::Debug for HostedProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|p| p.name())).finish()
    }
}

impl NodeSettings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeSettings {
            data_dir: data_dir.into(),
            durability: Durability::Process,
            engine: EngineSettings {
                // Local renders are quick: poll soon, and fall back from webhooks soon.
                poll_first: Duration::from_millis(500),
                poll_max: Duration::from_secs(5),
                webhook_grace: Duration::from_secs(5),
                ..EngineSettings::default()
            },
            workers: WorkerSettings::default(),
            provider_delay: Duration::from_millis(300),
            dispatch: DispatchSettings::default(),
            secret_key: None,
            providers: HostedProviders::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("another reelay process is using {0}; stop it first")]
    Locked(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not recover after a restart: {0}")]
    Recovery(String),
    #[error("the server key is unusable: {0}")]
    ServerKey(String),
}

/// The sealing key: given, or the data folder's `server.key` (made once, readable by the owner only).
fn server_key(settings: &NodeSettings) -> Result<Sealer, NodeError> {
    let bad = |e: &dyn std::fmt::Display| NodeError::ServerKey(e.to_string());
    if let Some(key) = &settings.secret_key {
        return Sealer::from_base64(key).map_err(|e| bad(&e));
    }
    let path = settings.data_dir.join("server.key");
    if !path.exists() {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => file.write_all(Sealer::generate_key().as_bytes()).map_err(|e| bad(&e))?,
            // Made by a concurrent `reelay keys` call: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(bad(&e)),
        }
    }
    let key = std::fs::read_to_string(&path).map_err(|e| bad(&e))?;
    Sealer::from_base64(&key).map_err(|e| bad(&e))
}

pub struct LocalNode {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    store: Arc<SqliteStore>,
    queue: Arc<SqliteQueue>,
    webhook_queue: Arc<SqliteQueue>,
    settings: NodeSettings,
    webhooks: Option<tokio::sync::mpsc::UnboundedReceiver<ProviderWebhook>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held for the node's life: one process per data folder, which is what makes the
    /// restart recovery below (taking over every lease and in-flight message) safe.
    _lock: File,
}

impl LocalNode {
    /// Opens (or creates) the node's state and recovers from a previous process's crash.
    pub fn open(settings: NodeSettings) -> Result<LocalNode, NodeError> {
        let dir = &settings.data_dir;
        let data_dir_err = |source| NodeError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_err)?;
        let lock = File::create(dir.join("reelay.lock")).map_err(data_dir_err)?;
        if lock.try_lock().is_err() {
            return Err(NodeError::Locked(dir.clone()));
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = Db::open(&dir.join("reelay.db"), settings.durability)?;
        let store = Arc::new(SqliteStore::new(db.clone()));
        let queue = Arc::new(SqliteQueue::new(db.clone(), clock.clone()));
        let webhook_queue = Arc::new(SqliteQueue::webhooks(db, clock.clone()));
        let sealer = server_key(&settings)?;
        let leases = store
            .release_all_leases()
            .map_err(|e| NodeError::Recovery(e.to_string()))?;
        let in_flight = queue
            .recover_in_flight()
            .and_then(|n| Ok(n + webhook_queue.recover_in_flight()?))
            .map_err(|e| NodeError::Recovery(e.to_string()))?;
        if leases + in_flight > 0 {
            tracing::info!(leases, in_flight, "took over work left by a previous process");
        }
        let blobs = Arc::new(FileBlobs::new(dir.join("blobs")).map_err(|e| NodeError::Recovery(e.to_string()))?);
        let (local, webhooks) = LocalProvider::new(LocalProviderSettings {
            workdir: dir.join("provider"),
            delay: settings.provider_delay,
        })
        .map_err(data_dir_err)?;
        let transport = HttpTransport::new(
            settings.engine.outbound_addresses.clone(),
            settings.dispatch.attempt_timeout,
        )
        .map_err(|e| NodeError::Recovery(format!("cannot build the webhook client: {e}")))?;
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            webhook_queue.clone(),
            Arc::new(transport),
            sealer.clone(),
            clock.clone(),
            settings.dispatch.clone(),
        ));
        let ports = Ports {
            store: store.clone(),
            queue: queue.clone(),
            webhook_queue: webhook_queue.clone(),
            sealer,
            blobs,
            media: Arc::new(FfmpegMedia::new(dir.join("scratch"))),
            providers: settings
                .providers
                .0
                .iter()
                .fold(Providers::new().with(local), |all, p| all.with(p.clone())),
            clock,
        };
        let engine = Arc::new(Engine::new(ports, settings.engine.clone()));
        let (shutdown, _) = watch::channel(false);
        Ok(LocalNode {
            engine,
            dispatcher,
            store,
            queue,
            webhook_queue,
            settings,
            webhooks: Some(webhooks),
            shutdown,
            tasks: JoinSet::new(),
            _lock: lock,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn queue(&self) -> &Arc<SqliteQueue> {
        &self.queue
    }

    /// The store, also as the API-key store.
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Starts the job runners, the timer, and delivery of provider webhooks.
    pub fn start(&mut self) {
        let queues: [(Arc<dyn MessageHandler>, Arc<SqliteQueue>); 2] = [
            (self.engine.clone(), self.queue.clone()),
            (self.dispatcher.clone(), self.webhook_queue.clone()),
        ];
        for (handler, queue) in queues {
            self.tasks.spawn(run_workers(
                handler,
                queue,
                self.settings.workers.clone(),
                self.shutdown.subscribe(),
            ));
        }
        self.tasks.spawn(run_timer(
            self.engine.clone(),
            self.dispatcher.clone(),
            self.settings.workers.clone(),
            self.shutdown.subscribe(),
        ));
        if let Some(mut webhooks) = self.webhooks.take() {
            let engine = self.engine.clone();
            let mut stop = self.shutdown.subscribe();
            self.tasks.spawn(async move {
                loop {
                    let hook = tokio::select! {
                        hook = webhooks.recv() => hook,
                        _ = stop.changed() => None,
                    };
                    let Some(hook) = hook else { break };
                    let via = Via::Webhook { token: &hook.token };
                    if let Err(e) = engine.provider_update(&hook.job, via, hook.status).await {
                        // A lost webhook is what polling is for.
                        tracing::warn!(error = %e, "provider webhook not recorded");
                    }
                }
            });
        }
    }

    /// Stops the tasks; work in flight is left for the next start to take over.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
